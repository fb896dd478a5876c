// An OpenAI-compatible HTTP API in front of the coordinator's Engine:
//   POST /v1/completions, POST /v1/chat/completions (each with
//   `"stream": true` as server-sent events ending in `data: [DONE]`),
//   GET /v1/models, GET /health; and the chat page, GET / (web_ui.h), with
//   GET /v1/pipeline (the model and its stages) for it.
// A thin layer: requests are parsed by openai_api.h and submitted through
// the SAME FrontDoor the gRPC API uses; a TokenStream queues the engine's
// events (the engine thread never waits for a client) and wakes the
// request's connection, whose event thread formats them into the response.
// A client that disconnects mid-stream cancels its engine request, which
// frees its KV on every worker. HTTP is served by common/base/http_server.h
// (libmicrohttpd, event-driven: slow or idle clients hold no thread; the key
// is checked before any body byte is read; plain HTTP: terminate TLS in
// front of it for now).
#ifndef SHARDLM_COORDINATOR_OPENAI_HTTP_H_
#define SHARDLM_COORDINATOR_OPENAI_HTTP_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/http_server.h"
#include "coordinator/front_door.h"
#include "nlohmann/json.hpp"

namespace shardlm {

struct OpenAiHttpOptions {
  std::string listen = "127.0.0.1:8080";  // HOST:PORT; port 0 picks a free one
  // Accepted bearer tokens (`Authorization: Bearer KEY`); empty: no auth.
  // /health is always open (for probes).
  std::vector<std::string> api_keys;
  std::string model_id = "shardlm";  // reported by /v1/models and in responses
  HttpLimits limits;                 // connections, header/body caps, read deadline, threads
  int max_json_depth = 64;           // arrays/objects nested in a request body
  absl::Duration request_timeout = absl::Minutes(10);
  absl::Duration heartbeat = absl::Seconds(2);  // SSE comment when a stream is idle
  // GET /v1/pipeline: the model and its stages (web_ui.h's PipelineJson),
  // called on an event thread; unset: the model id only.
  std::function<nlohmann::json()> pipeline_info;
  // When set, GET /metrics on this port too (open like /health): the
  // Inference Extension's endpoint picker scrapes the serving port.
  std::function<std::string()> metrics;
};

class OpenAiHttpServer {
 public:
  // Binds and starts serving. `door` must outlive the server. The process ignores SIGPIPE from then
  // on: a write to a client that went away must fail with EPIPE, not kill the process.
  static absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> Start(const OpenAiHttpOptions& options,
                                                                 FrontDoor* door);
  ~OpenAiHttpServer();

  // The address actually bound (port 0 resolved).
  const std::string& address() const;
  // Stops accepting, ends open streams (their engine requests are
  // cancelled) and joins the server thread. Idempotent.
  void Shutdown();

  struct Impl;

 private:
  explicit OpenAiHttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_OPENAI_HTTP_H_
