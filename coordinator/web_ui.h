// The chat page served at `GET /` of the OpenAI-compatible HTTP port, and
// the small JSON document it shows the model and pipeline from
// (`GET /v1/pipeline`).
//
// The page is one self-contained file, coordinator/web/chat.html, put into
// the binary at build time (web_ui_page.cc, .incbin): no CDN, no build step
// that downloads, nothing read from disk at run time. Its inline <style> and
// <script> run under a Content-Security-Policy that allows only them (a
// fresh nonce per response) and connections to this origin, so even text
// that slipped into the DOM as markup could not run script. The page itself
// needs no API key; its API calls carry the key the user typed (kept in the
// browser's localStorage).
#ifndef SHARDLM_COORDINATOR_WEB_UI_H_
#define SHARDLM_COORDINATOR_WEB_UI_H_

#include <string>
#include <string_view>

#include "common/base/http_server.h"
#include "nlohmann/json.hpp"

namespace shardlm {

class Pipeline;

// The page's bytes as built into the binary (with the nonce placeholder).
std::string_view ChatPageSource();

// `GET /`: the page with a fresh CSP nonce, its security headers and
// `Cache-Control: no-store` (the nonce must not be reused from a cache).
HttpResponse ChatPageResponse();

// The Content-Security-Policy for a page whose inline script and style
// carry `nonce`.
std::string ChatPageCsp(std::string_view nonce);

// What the page's info panel shows: the model and every stage (address,
// layer range, health as the engine's probes last saw it), e.g.
//   {"model": "stories260K", "chat_template": "chatml (...)", "n_ctx": 512,
//    "n_layer": 5, "stages": [{"address": "127.0.0.1:7001",
//    "first_layer": 0, "last_layer": 3, "healthy": true}, ...]}
// `pipeline` must outlive every call (it is read while serving).
nlohmann::json PipelineJson(const Pipeline& pipeline, std::string_view model_id,
                            std::string_view chat_template);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_WEB_UI_H_
