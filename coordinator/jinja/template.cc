// Template::Parse/Render and the globals HF's environment defines.
#include "coordinator/jinja/template.h"

#include <ctime>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/jinja/interpreter.h"
#include "coordinator/jinja/parser.h"

namespace shardlm::jinja {
namespace {

// range() longer than this is refused rather than materialized.
constexpr int64_t kMaxRange = 100'000;

absl::StatusOr<Value> Range(const CallArgs& args) {
  int64_t start = 0, stop = 0, step = 1;
  const auto& p = args.positional;
  for (const Value& v : p) {
    if (!v.is_number() || v.kind() == Value::Kind::kFloat) {
      return absl::InvalidArgumentError("TypeError: range() takes integers");
    }
  }
  if (p.size() == 1) {
    stop = p[0].int_value();
  } else if (p.size() == 2 || p.size() == 3) {
    start = p[0].int_value();
    stop = p[1].int_value();
    if (p.size() == 3) step = p[2].int_value();
  } else {
    return absl::InvalidArgumentError("TypeError: range() takes 1 to 3 arguments");
  }
  if (step == 0) return absl::InvalidArgumentError("ValueError: range() arg 3 must not be zero");
  std::vector<Value> out;
  for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
    if (static_cast<int64_t>(out.size()) >= kMaxRange) {
      return absl::ResourceExhaustedError(absl::StrCat("range() over ", kMaxRange, " items"));
    }
    out.push_back(Value::Int(i));
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  return Value::List(std::move(out));
}

// namespace(d, k=v, ...) and dict(d, k=v, ...): a mapping argument, then
// keywords.
absl::StatusOr<Dict> DictFromArgs(const CallArgs& args, const char* what) {
  Dict d;
  if (args.positional.size() > 1 ||
      (args.positional.size() == 1 && !args.positional[0].is_dict())) {
    return absl::InvalidArgumentError(absl::StrCat(what, "() takes one mapping and keywords"));
  }
  if (!args.positional.empty()) d = args.positional[0].dict();
  for (const auto& [k, v] : args.keyword) d.Set(k, v);
  return d;
}

}  // namespace

void Interpreter::AddGlobals() {
  globals_.vars["range"] = Value::MakeFunction("range", Range);
  globals_.vars["namespace"] = Value::MakeFunction("namespace", [](const CallArgs& a) {
    absl::StatusOr<Dict> d = DictFromArgs(a, "namespace");
    if (!d.ok()) return absl::StatusOr<Value>(d.status());
    return absl::StatusOr<Value>(Value::Namespace(*std::move(d)));
  });
  globals_.vars["dict"] = Value::MakeFunction("dict", [](const CallArgs& a) {
    absl::StatusOr<Dict> d = DictFromArgs(a, "dict");
    if (!d.ok()) return absl::StatusOr<Value>(d.status());
    return absl::StatusOr<Value>(Value::MakeDict(*std::move(d)));
  });
  // HF raises jinja2.exceptions.TemplateError(message): the template's own
  // refusal of the conversation, so the caller's request is what is wrong.
  globals_.vars["raise_exception"] = Value::MakeFunction("raise_exception", [](const CallArgs& a) {
    const Value* msg = a.Get(0, "message");
    return absl::StatusOr<Value>(
        absl::InvalidArgumentError(msg != nullptr ? ToStr(*msg) : "raise_exception()"));
  });
  // timegm() normalizes the fields and fills in the weekday and day of the
  // year (%A, %j), so callers need only set the date and time.
  std::tm now = options_.now;
  timegm(&now);
  globals_.vars["strftime_now"] = Value::MakeFunction("strftime_now", [now](const CallArgs& a) {
    const Value* fmt = a.Get(0, "format");
    if (fmt == nullptr || !fmt->is_string()) {
      return absl::StatusOr<Value>(absl::InvalidArgumentError("strftime_now() needs a format"));
    }
    // std::strftime in the C locale (the process never calls setlocale),
    // what Python's strftime does in the reference renderer.
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), fmt->str().c_str(), &now);
    if (n == 0 && !fmt->str().empty()) {
      return absl::StatusOr<Value>(absl::InvalidArgumentError("strftime_now(): format too long"));
    }
    return absl::StatusOr<Value>(Value::String(std::string(buf, n)));
  });
}

RenderOptions DefaultRenderOptions() {
  RenderOptions options;
  const std::time_t t = std::time(nullptr);
  localtime_r(&t, &options.now);
  return options;
}

absl::StatusOr<Template> Template::Parse(std::string_view source) {
  absl::StatusOr<Body> body = jinja::Parse(source);
  if (!body.ok()) return body.status();
  return Template(std::make_shared<const Body>(*std::move(body)));
}

absl::StatusOr<std::string> Template::Render(const Dict& variables,
                                             const RenderOptions& options) const {
  Interpreter interpreter(variables, options);
  return interpreter.Run(*body_);
}

}  // namespace shardlm::jinja
