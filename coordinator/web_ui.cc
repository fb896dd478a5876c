#include "coordinator/web_ui.h"

#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/tokenizer/utf8.h"
#include "coordinator/pipeline.h"

namespace shardlm {
namespace {

// Where chat.html spells the nonce of its <style> and <script>.
constexpr char kNoncePlaceholder[] = "{{CSP_NONCE}}";

// 128 random bits, base64. A CSP nonce must be unguessable, so it comes
// from the OS (std::random_device: getrandom / /dev/urandom on Linux), not
// from a seeded engine whose outputs predict the next ones.
std::string NewNonce() {
  std::random_device os;
  char bytes[16];
  for (int i = 0; i < 16; i += 4) {
    const uint32_t r = os();
    for (int b = 0; b < 4; ++b) bytes[i + b] = static_cast<char>(r >> (8 * b));
  }
  return absl::Base64Escape(absl::string_view(bytes, sizeof(bytes)));
}

}  // namespace

std::string ChatPageCsp(std::string_view nonce) {
  // Nothing but the page's own inline script and style, fetches to this
  // origin (the API), and the data: favicon; no framing, no forms posting
  // elsewhere, no <base> rewriting relative URLs.
  const absl::string_view n(nonce.data(), nonce.size());
  return absl::StrCat("default-src 'none'; script-src 'nonce-", n, "'; style-src 'nonce-", n,
                      "'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                      "frame-ancestors 'none'");
}

HttpResponse ChatPageResponse() {
  const std::string nonce = NewNonce();
  HttpResponse r;
  r.content_type = "text/html; charset=utf-8";
  const std::string_view page = ChatPageSource();
  r.body = absl::StrReplaceAll(absl::string_view(page.data(), page.size()),
                               {{kNoncePlaceholder, nonce}});
  r.headers.emplace_back("Content-Security-Policy", ChatPageCsp(nonce));
  r.headers.emplace_back("Cache-Control", "no-store");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  return r;
}

nlohmann::json PipelineJson(const Pipeline& pipeline, std::string_view model_id,
                            std::string_view chat_template) {
  nlohmann::json stages = nlohmann::json::array();
  for (int range = 0; range < pipeline.n_ranges(); ++range) {
    for (int replica = 0; replica < pipeline.n_replicas(range); ++replica) {
      const Stage& stage = pipeline.stage(range, replica);
      stages.push_back({{"address", SanitizeUtf8(stage.name())},
                        {"first_layer", stage.info().first_layer},
                        {"last_layer", stage.info().last_layer},
                        {"replica", replica},
                        {"healthy", pipeline.healthy(range, replica)}});
    }
  }
  const ShardInfo& model = pipeline.model();
  return {{"model", std::string(model_id)}, {"chat_template", SanitizeUtf8(chat_template)},
          {"n_ctx", model.n_ctx},           {"n_layer", model.n_layer},
          {"n_vocab", model.n_vocab},       {"stages", std::move(stages)}};
}

}  // namespace shardlm
