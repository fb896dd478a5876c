// A chat template compiled once and rendered per request, exactly as
// Python's Jinja2 renders it under Hugging Face's apply_chat_template
// environment: trim_blocks, lstrip_blocks, loopcontrols, the {% generation %}
// tag, HF's `tojson`, and the globals `raise_exception(msg)` (an error
// carrying msg), `strftime_now(fmt)` (the injected clock, C locale),
// `namespace(...)`, `range(...)` and `dict(...)`.
//
// Rendering is bounded: statement/iteration steps, macro call depth and
// output size have limits, so a hostile template fails with an absl::Status
// instead of hanging or exhausting memory. Every error names the template
// line ("chat template line N: ...").
#ifndef SHARDLM_COORDINATOR_JINJA_TEMPLATE_H_
#define SHARDLM_COORDINATOR_JINJA_TEMPLATE_H_

#include <ctime>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/jinja/ast.h"
#include "coordinator/jinja/value.h"

namespace shardlm::jinja {

struct RenderOptions {
  // What strftime_now() formats: local time in production (as HF and
  // llama.cpp do), pinned by tests.
  std::tm now = {};
  // Statements run plus loop iterations: real templates take a few per
  // message; this bounds a hostile one to well under a second.
  int64_t max_steps = 250'000;
  int max_call_depth = 64;
  size_t max_output_bytes = size_t{32} << 20;
};

// RenderOptions with `now` from the system clock, in local time.
RenderOptions DefaultRenderOptions();

class Template {
 public:
  // FAILED_PRECONDITION naming the line for a syntax error or a construct
  // this interpreter does not support.
  static absl::StatusOr<Template> Parse(std::string_view source);

  // `variables` are the template's globals (messages, add_generation_prompt,
  // bos_token, ...); a name absent from it is undefined. INVALID_ARGUMENT
  // for raise_exception() (its message included) and for what Jinja2 would
  // raise (undefined values in arithmetic, type errors); RESOURCE_EXHAUSTED
  // past a limit.
  absl::StatusOr<std::string> Render(const Dict& variables, const RenderOptions& options) const;

 private:
  explicit Template(std::shared_ptr<const Body> body) : body_(std::move(body)) {}
  std::shared_ptr<const Body> body_;
};

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_TEMPLATE_H_
