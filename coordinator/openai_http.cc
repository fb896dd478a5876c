#include "coordinator/openai_http.h"

#include <atomic>
#include <csignal>
#include <mutex>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/metrics_server.h"
#include "common/rpc/credentials.h"
#include "coordinator/json_depth.h"
#include "coordinator/openai_api.h"
#include "coordinator/token_stream.h"
#include "coordinator/web_ui.h"

namespace shardlm {
namespace {

using nlohmann::json;

struct Counters {
  std::atomic<int64_t> requests{0};            // generations submitted
  std::atomic<int64_t> completed{0};           // finished normally (stop / length)
  std::atomic<int64_t> cancelled{0};           // ended by a cancel (client gone, shutdown)
  std::atomic<int64_t> failed{0};              // deadline or error
  std::atomic<int64_t> client_disconnects{0};  // streams whose client went away first
};

// The shared TokenStream, counting how requests end for /health (on the
// engine thread: a stream whose client left is never read to its end).
class CountingStream : public TokenStream {
 public:
  CountingStream(std::shared_ptr<Counters> counters, std::function<void()> notify)
      : TokenStream(std::move(notify)), counters_(std::move(counters)) {}

  void OnFinish(FinishReason reason, const GenerationStats& stats,
                const absl::Status& error) override {
    switch (reason) {
      case FinishReason::kCancelled:
        ++counters_->cancelled;
        break;
      case FinishReason::kDeadline:
      case FinishReason::kError:
        ++counters_->failed;
        break;
      default:
        ++counters_->completed;
        break;
    }
    TokenStream::OnFinish(reason, stats, error);
  }

 private:
  std::shared_ptr<Counters> counters_;
};

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.content_type = "application/json";
  r.body = JsonText(body);
  return r;
}

HttpResponse ErrorResponse(const OpenAiError& e) {
  HttpResponse r = JsonResponse(e.http_status, e.ToJson());
  if (e.http_status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

std::string RandomId(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(prefix, absl::Hex(rng(), absl::kZeroPad16));
}

// kChatPage and kPipeline: the chat page (web_ui.h).
enum class ApiRoute {
  kNone, kCompletions, kChat, kModels, kModel, kHealth, kMetrics, kChatPage, kPipeline
};

ApiRoute RouteOf(const HttpRequest& req) {
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (req.method == "POST" && req.path == "/v1/completions") return ApiRoute::kCompletions;
  if (req.method == "POST" && req.path == "/v1/chat/completions") return ApiRoute::kChat;
  if (get && req.path == "/v1/models") return ApiRoute::kModels;
  if (get && absl::StartsWith(req.path, "/v1/models/") && req.path.size() > 11) return ApiRoute::kModel;
  if (get && req.path == "/health") return ApiRoute::kHealth;
  if (get && req.path == "/") return ApiRoute::kChatPage;
  if (get && req.path == "/v1/pipeline") return ApiRoute::kPipeline;
  if (get && req.path == "/metrics") return ApiRoute::kMetrics;
  return ApiRoute::kNone;
}

// One generation, from its body to its last event. Parsing and submitting
// run on a oneTBB task (a 8 MiB body or a long prompt must not hold an
// event thread); the engine's events wake the connection, whose event
// thread turns them into the JSON response or the SSE events.
class GenerateExchange : public HttpExchange {
 public:
  // What the submitting task hands over (guarded by mu).
  struct Submitted {
    std::mutex mu;
    bool ready = false;
    bool closed = false;  // the client left before the submission was done
    absl::Status error;
    uint64_t engine_id = 0;
    std::shared_ptr<CountingStream> stream;
    std::shared_ptr<OpenAiResponder> responder;
    bool streaming = false;
  };

  GenerateExchange(FrontDoor* door, const std::atomic<bool>* stopping, absl::Duration heartbeat)
      : door_(door), stopping_(stopping), heartbeat_(heartbeat),
        submitted_(std::make_shared<Submitted>()) {}

  std::shared_ptr<Submitted> submitted() const { return submitted_; }

  std::optional<HttpResponse> Respond() override {
    if (!TakeSubmission()) return std::nullopt;
    if (!error_.ok()) return ErrorResponse(ErrorFromStatus(error_));
    if (streaming_) {
      HttpResponse r;
      r.streamed = true;
      r.content_type = "text/event-stream";
      r.headers.emplace_back("Cache-Control", "no-cache");
      r.headers.emplace_back("X-Accel-Buffering", "no");
      return r;
    }
    // Not streaming: collect every token, answer once the request ended.
    std::vector<GeneratedToken> tokens;
    StreamEnd end;
    const bool finished = stream_->Take(&tokens, &end);
    for (const GeneratedToken& t : tokens) responder_->AddToken(t);
    if (!finished) {
      if (stopping_->load() && !cancel_sent_) {
        cancel_sent_ = true;
        door_->Cancel(engine_id_);  // ends with kCancelled -> 503
      }
      return std::nullopt;
    }
    done_ = true;
    json body;
    const int status = responder_->Finish(end.reason, end.stats, end.error, &body);
    return JsonResponse(status, body);
  }

  bool ReadBody(std::string* out) override {
    if (!started_) {
      started_ = true;
      *out = responder_->StreamStart();
    }
    std::vector<GeneratedToken> tokens;
    StreamEnd end;
    const bool finished = stream_->Take(&tokens, &end);
    for (const GeneratedToken& t : tokens) *out += responder_->StreamToken(t);
    if (finished) {
      *out += responder_->StreamFinish(end.reason, end.stats, end.error);
      done_ = true;
      return true;
    }
    const absl::Time now = absl::Now();
    // An idle stream still writes now and then: that is how a client that
    // went away is noticed (the write fails) while we wait.
    if (out->empty() && now - last_write_ >= heartbeat_) *out = ": keep-alive\n\n";
    if (!out->empty()) last_write_ = now;
    if (stopping_->load()) {
      // Tell the client why its stream ends (Closed cancels the request).
      *out += absl::StrCat(
          "data: ",
          JsonText(ErrorFromStatus(absl::UnavailableError("the server is shutting down")).ToJson()),
          "\n\n");
      return true;
    }
    return false;
  }

  void Closed(bool /*completed*/) override {
    uint64_t cancel = 0;
    bool have = false;
    {
      std::lock_guard<std::mutex> lock(submitted_->mu);
      submitted_->closed = true;
      if (submitted_->ready && submitted_->error.ok()) {
        have = true;
        cancel = submitted_->engine_id;
      }
    }
    // Unless the request reached its end, the client went away (or we are
    // stopping): free the sequence.
    if (have && !done_) {
      if (streaming_) ++*disconnects_;
      door_->Cancel(cancel);
    }
  }

  void set_disconnect_counter(std::atomic<int64_t>* c) { disconnects_ = c; }

 private:
  // True once the submission is done (its outcome copied here).
  bool TakeSubmission() {
    if (taken_) return true;
    std::lock_guard<std::mutex> lock(submitted_->mu);
    if (!submitted_->ready) return false;
    taken_ = true;
    error_ = submitted_->error;
    engine_id_ = submitted_->engine_id;
    stream_ = submitted_->stream;
    responder_ = submitted_->responder;
    streaming_ = submitted_->streaming;
    return true;
  }

  FrontDoor* door_;
  const std::atomic<bool>* stopping_;
  const absl::Duration heartbeat_;
  std::shared_ptr<Submitted> submitted_;
  std::atomic<int64_t>* disconnects_ = nullptr;
  // Event-thread state.
  bool taken_ = false;
  absl::Status error_;
  uint64_t engine_id_ = 0;
  std::shared_ptr<CountingStream> stream_;
  std::shared_ptr<OpenAiResponder> responder_;
  bool streaming_ = false;
  bool started_ = false;
  bool done_ = false;  // the request's end was formatted
  bool cancel_sent_ = false;
  absl::Time last_write_ = absl::Now();
};

}  // namespace

struct OpenAiHttpServer::Impl {
  OpenAiHttpOptions options;
  BearerAuthenticator authenticator;  // options.api_keys
  FrontDoor* door = nullptr;
  std::unique_ptr<HttpServer> server;
  std::atomic<bool> stopping{false};
  bool shut_down = false;
  // Shared with submitting tasks and engine streams, which may outlive us.
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();
  int64_t started = absl::ToUnixSeconds(absl::Now());

  // A 401 when keys are configured and the request has none of them: the
  // gRPC API's check (common/rpc/credentials.h). Runs before the body is
  // read.
  std::optional<HttpResponse> Admit(const HttpRequest& req) const {
    const ApiRoute route = RouteOf(req);
    if (route == ApiRoute::kNone) return NotFound(req);
    // Probes, metrics and the chat page need no key (the page's API calls carry it).
    if (route == ApiRoute::kHealth || route == ApiRoute::kMetrics || route == ApiRoute::kChatPage) {
      return std::nullopt;
    }
    const std::string* value = req.Header("Authorization");
    absl::Status st = authenticator.CheckHeader(value != nullptr, value ? *value : "");
    if (!st.ok()) return ErrorResponse(ErrorFromStatus(st));
    return std::nullopt;
  }

  static HttpResponse NotFound(const HttpRequest& req) {
    OpenAiError e = ErrorFromStatus(absl::NotFoundError(""));
    e.type = "invalid_request_error";
    e.message = absl::StrCat("Invalid URL (", req.method, " ", req.path, ")");
    return ErrorResponse(e);
  }

  std::unique_ptr<HttpExchange> Handle(HttpRequest req, HttpWake wake) {
    switch (RouteOf(req)) {
      case ApiRoute::kCompletions:
        return Generate(OpenAiKind::kCompletion, std::move(req.body), std::move(wake));
      case ApiRoute::kChat:
        return Generate(OpenAiKind::kChat, std::move(req.body), std::move(wake));
      case ApiRoute::kModels:
        return ReadyExchange(
            JsonResponse(200, json{{"object", "list"}, {"data", json::array({ModelJson()})}}));
      case ApiRoute::kModel: {
        const std::string name = req.path.substr(11);
        if (name != options.model_id) {
          OpenAiError e = ErrorFromStatus(
              absl::NotFoundError(absl::StrCat("The model '", name, "' does not exist")));
          e.code = "model_not_found";
          return ReadyExchange(ErrorResponse(e));
        }
        return ReadyExchange(JsonResponse(200, ModelJson()));
      }
      case ApiRoute::kHealth:
        return ReadyExchange(Health());
      case ApiRoute::kChatPage:
        return ReadyExchange(ChatPageResponse());
      case ApiRoute::kPipeline:
        return ReadyExchange(JsonResponse(200, options.pipeline_info
                                                   ? options.pipeline_info()
                                                   : json{{"model", options.model_id}}));
      case ApiRoute::kMetrics:
        if (!options.metrics) break;  // metrics are off: 404
        return ReadyExchange(MetricsResponse(options.metrics()));
      case ApiRoute::kNone:
        break;
    }
    return ReadyExchange(NotFound(req));
  }

  std::unique_ptr<HttpExchange> Generate(OpenAiKind kind, std::string request_body, HttpWake wake) {
    auto exchange = std::make_unique<GenerateExchange>(door, &stopping, options.heartbeat);
    exchange->set_disconnect_counter(&counters->client_disconnects);
    std::shared_ptr<GenerateExchange::Submitted> out = exchange->submitted();
    // The body is moved into the task (freed once parsed).
    auto body = std::make_shared<std::string>(std::move(request_body));
    door->Run([this_door = door, out, body, kind, wake, counters = counters,
               max_depth = options.max_json_depth, model_id = options.model_id,
               timeout = options.request_timeout] {
      auto finish = [&](absl::Status error) {
        {
          std::lock_guard<std::mutex> lock(out->mu);
          out->ready = true;
          out->error = std::move(error);
        }
        wake();
      };
      if (absl::Status depth = CheckJsonDepth(*body, max_depth); !depth.ok()) return finish(depth);
      absl::StatusOr<OpenAiRequest> parsed = ParseOpenAiRequest(kind, *body);
      body->clear();
      body->shrink_to_fit();
      if (!parsed.ok()) return finish(parsed.status());
      // Tools: the template's call syntax, the grammar of a forced call.
      if (absl::Status st = PrepareToolCalls(this_door->chat_template(), &*parsed); !st.ok()) {
        return finish(st);
      }
      const std::string id = RandomId(kind == OpenAiKind::kChat ? "chatcmpl-" : "cmpl-");
      ClientRequest request = ToClientRequest(*parsed);
      request.request_id = id;
      request.deadline = absl::Now() + timeout;
      auto stream = std::make_shared<CountingStream>(counters, wake);
      auto responder = std::make_shared<OpenAiResponder>(
          *parsed, &this_door->tokenizer(), id, model_id, absl::ToUnixSeconds(absl::Now()));
      absl::StatusOr<uint64_t> engine_id = this_door->Submit(std::move(request), stream);
      if (!engine_id.ok()) return finish(engine_id.status());
      ++counters->requests;
      bool closed;
      {
        std::lock_guard<std::mutex> lock(out->mu);
        out->ready = true;
        out->engine_id = *engine_id;
        out->stream = std::move(stream);
        out->responder = std::move(responder);
        out->streaming = parsed->stream;
        closed = out->closed;
      }
      if (closed) this_door->Cancel(*engine_id);  // the client left meanwhile
      wake();
    });
    return exchange;
  }

  json ModelJson() const {
    return json{{"id", options.model_id},
                {"object", "model"},
                {"created", started},
                {"owned_by", "shardlm"}};
  }

  HttpResponse Health() const {
    const bool up = !stopping.load();
    const Counters& c = *counters;
    return JsonResponse(up ? 200 : 503,
                        json{{"status", up ? "ok" : "stopping"},
                             {"model", options.model_id},
                             {"api_key_required", !options.api_keys.empty()},
                             {"engine",
                              {{"active", door->engine().active()},
                               {"queued", door->engine().queued()}}},
                             {"http",
                              {{"requests", c.requests.load()},
                               {"completed", c.completed.load()},
                               {"cancelled", c.cancelled.load()},
                               {"failed", c.failed.load()},
                               {"client_disconnects", c.client_disconnects.load()}}}});
  }

  // The server's own refusals (413, 431, 503...), OpenAI-shaped.
  static HttpResponse Error(int status, const std::string& message) {
    OpenAiError e = ErrorFromStatus(absl::InvalidArgumentError(message));
    e.http_status = status;
    if (status >= 500) e.type = "server_error";
    return ErrorResponse(e);
  }
};

absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> OpenAiHttpServer::Start(
    const OpenAiHttpOptions& options, FrontDoor* door) {
  // Writes to a client that closed its socket must fail, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->authenticator = BearerAuthenticator(options.api_keys);
  impl->door = door;
  Impl* raw = impl.get();
  HttpRoutes routes;
  routes.admit = [raw](const HttpRequest& req) { return raw->Admit(req); };
  routes.handle = [raw](HttpRequest req, HttpWake wake) {
    return raw->Handle(std::move(req), std::move(wake));
  };
  routes.error = &Impl::Error;
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(options.listen, options.limits, std::move(routes), "HTTP");
  if (!server.ok()) return server.status();
  impl->server = std::move(*server);
  return std::unique_ptr<OpenAiHttpServer>(new OpenAiHttpServer(std::move(impl)));
}

OpenAiHttpServer::OpenAiHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OpenAiHttpServer::~OpenAiHttpServer() { Shutdown(); }

const std::string& OpenAiHttpServer::address() const { return impl_->server->address(); }

void OpenAiHttpServer::Shutdown() {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  // Streams see `stopping` when next woken and end with an error event;
  // collecting requests are cancelled (503); then the port closes.
  impl_->stopping = true;
  impl_->server->Shutdown();
}

}  // namespace shardlm
