#include "coordinator/openai_http.h"

#include <httplib.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/rpc/credentials.h"
#include "coordinator/openai_api.h"
#include "coordinator/token_stream.h"

namespace shardlm {
namespace {

using nlohmann::json;

constexpr size_t kMaxBodyBytes = 8 << 20;
// How often a waiting HTTP thread looks at the shutdown flag.
constexpr absl::Duration kWaitSlice = absl::Milliseconds(200);

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
  explicit CountingStream(Counters* counters) : counters_(counters) {}

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
  Counters* counters_;
};

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(JsonText(body), "application/json");
}

void SendError(httplib::Response& res, const OpenAiError& e) {
  if (e.http_status == 401) res.set_header("WWW-Authenticate", "Bearer");
  SendJson(res, e.http_status, e.ToJson());
}

std::string RandomId(const char* prefix) {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  return absl::StrCat(prefix, absl::Hex(rng(), absl::kZeroPad16));
}

}  // namespace

struct OpenAiHttpServer::Impl {
  OpenAiHttpOptions options;
  BearerAuthenticator authenticator;  // options.api_keys
  FrontDoor* door = nullptr;
  httplib::Server server;
  std::thread thread;
  std::string address;
  std::atomic<bool> stopping{false};
  bool shut_down = false;
  Counters counters;
  int64_t started = absl::ToUnixSeconds(absl::Now());

  // False (and the 401 set) when keys are configured and the request has
  // none of them: the gRPC API's check (common/rpc/credentials.h).
  bool Authorized(const httplib::Request& req, httplib::Response& res) const {
    absl::Status st = authenticator.CheckHeader(req.has_header("Authorization"),
                                                req.get_header_value("Authorization"));
    if (!st.ok()) SendError(res, ErrorFromStatus(st));
    return st.ok();
  }

  void HandleGenerate(OpenAiKind kind, const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req, res)) return;
    absl::StatusOr<OpenAiRequest> parsed = ParseOpenAiRequest(kind, req.body);
    if (!parsed.ok()) return SendError(res, ErrorFromStatus(parsed.status()));
    const std::string id = RandomId(kind == OpenAiKind::kChat ? "chatcmpl-" : "cmpl-");
    ClientRequest request = ToClientRequest(*parsed);
    request.request_id = id;
    request.deadline = absl::Now() + options.request_timeout;
    // This HTTP thread may block: the request is built right here.
    auto stream = std::make_shared<CountingStream>(&counters);
    absl::StatusOr<uint64_t> engine_id = door->Submit(std::move(request), stream);
    if (!engine_id.ok()) return SendError(res, ErrorFromStatus(engine_id.status()));
    ++counters.requests;
    auto responder = std::make_shared<OpenAiResponder>(
        *parsed, &door->tokenizer(), id, options.model_id, absl::ToUnixSeconds(absl::Now()));
    if (parsed->stream) {
      Stream(std::move(stream), std::move(responder), *engine_id, res);
    } else {
      Collect(stream.get(), responder.get(), *engine_id, res);
    }
  }

  // Not streaming: wait for the whole generation on this HTTP thread.
  void Collect(TokenStream* stream, OpenAiResponder* responder, uint64_t engine_id,
               httplib::Response& res) {
    std::vector<GeneratedToken> tokens;
    StreamEnd end;
    while (true) {
      const bool finished = stream->WaitAndTake(kWaitSlice, &tokens, &end);
      for (const GeneratedToken& t : tokens) responder->AddToken(t);
      tokens.clear();
      if (finished) break;
      if (stopping) door->Cancel(engine_id);  // ends with kCancelled -> 503
    }
    json body;
    const int status = responder->Finish(end.reason, end.stats, end.error, &body);
    SendJson(res, status, body);
  }

  // Streaming: server-sent events from a chunked content provider that
  // drains the stream on this HTTP thread.
  void Stream(std::shared_ptr<TokenStream> stream, std::shared_ptr<OpenAiResponder> responder,
              uint64_t engine_id, httplib::Response& res) {
    struct State {
      bool started = false;
      bool done = false;  // [DONE] (or the error event) was written
      absl::Time last_write = absl::Now();
    };
    auto state = std::make_shared<State>();
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, stream, responder, state](size_t, httplib::DataSink& sink) {
          std::string out;
          if (!state->started) {
            state->started = true;
            out = responder->StreamStart();
          }
          std::vector<GeneratedToken> tokens;
          StreamEnd end;
          const bool finished =
              stream->WaitAndTake(out.empty() ? kWaitSlice : absl::ZeroDuration(), &tokens, &end);
          for (const GeneratedToken& t : tokens) out += responder->StreamToken(t);
          if (finished) out += responder->StreamFinish(end.reason, end.stats, end.error);
          const absl::Time now = absl::Now();
          // An idle stream still writes now and then: that is how a client
          // that went away is noticed (the write fails) while we wait.
          if (out.empty() && now - state->last_write >= options.heartbeat) out = ": keep-alive\n\n";
          if (!out.empty()) {
            if (!sink.write(out.data(), out.size())) return false;
            state->last_write = now;
          }
          if (finished) {
            state->done = true;
            sink.done();
            return true;
          }
          if (stopping) {
            // Tell the client why its stream ends (the releaser cancels).
            const std::string bye = absl::StrCat(
                "data: ",
                JsonText(ErrorFromStatus(absl::UnavailableError("the server is shutting down"))
                             .ToJson()),
                "\n\n");
            sink.write(bye.data(), bye.size());
            return false;
          }
          return true;
        },
        [this, state, engine_id](bool) {
          // The response is over. Unless the stream reached its end, the
          // client went away (or we are stopping): free the sequence.
          if (!state->done) {
            ++counters.client_disconnects;
            door->Cancel(engine_id);
          }
        });
  }

  json ModelJson() const {
    return json{{"id", options.model_id},
                {"object", "model"},
                {"created", started},
                {"owned_by", "shardlm"}};
  }

  void Routes() {
    server.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
      HandleGenerate(OpenAiKind::kCompletion, req, res);
    });
    server.Post("/v1/chat/completions",
                [this](const httplib::Request& req, httplib::Response& res) {
                  HandleGenerate(OpenAiKind::kChat, req, res);
                });
    server.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      SendJson(res, 200, json{{"object", "list"}, {"data", json::array({ModelJson()})}});
    });
    server.Get("/v1/models/(.+)", [this](const httplib::Request& req, httplib::Response& res) {
      if (!Authorized(req, res)) return;
      if (req.matches[1] != options.model_id) {
        OpenAiError e = ErrorFromStatus(absl::NotFoundError(
            absl::StrCat("The model '", std::string(req.matches[1]), "' does not exist")));
        e.code = "model_not_found";
        return SendError(res, e);
      }
      SendJson(res, 200, ModelJson());
    });
    server.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      const bool up = !stopping.load();
      SendJson(res, up ? 200 : 503,
               json{{"status", up ? "ok" : "stopping"},
                    {"model", options.model_id},
                    {"engine",
                     {{"active", door->engine().active()}, {"queued", door->engine().queued()}}},
                    {"http",
                     {{"requests", counters.requests.load()},
                      {"completed", counters.completed.load()},
                      {"cancelled", counters.cancelled.load()},
                      {"failed", counters.failed.load()},
                      {"client_disconnects", counters.client_disconnects.load()}}}});
    });
    // Any other error response without a body (unknown route, body too
    // large) gets an OpenAI-shaped one.
    server.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                     httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      OpenAiError e = ErrorFromStatus(absl::InvalidArgumentError(""));
      e.http_status = res.status;
      e.message = res.status == 404 ? absl::StrCat("Invalid URL (", req.method, " ", req.path, ")")
                                    : absl::StrCat("HTTP ", res.status);
      if (res.status == 413) e.message = "the request body is too large";
      SendJson(res, res.status, e.ToJson());
      return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "internal error";
          try {
            if (ep) std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          SendError(res, ErrorFromStatus(absl::InternalError(what)));
        });
  }
};

absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> OpenAiHttpServer::Start(
    const OpenAiHttpOptions& options, FrontDoor* door) {
  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("HTTP listen address '", options.listen, "' is not HOST:PORT"));
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  // Writes to a client that closed its socket must fail, not kill us.
  std::signal(SIGPIPE, SIG_IGN);

  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->authenticator = BearerAuthenticator(options.api_keys);
  impl->door = door;
  const int threads = std::max(1, options.threads);
  impl->server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  impl->server.set_payload_max_length(kMaxBodyBytes);
  impl->server.set_tcp_nodelay(true);  // small SSE events go out at once
  impl->Routes();
  const int bound = port == 0 ? impl->server.bind_to_any_port(host)
                              : (impl->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", options.listen,
                                               " (address in use or not local?)"));
  }
  impl->address = absl::StrCat(options.listen.substr(0, colon), ":", bound);
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->server.listen_after_bind(); });
  // stop() only stops a server that runs: wait until it does.
  for (int i = 0; i < 5000 && !impl->server.is_running(); ++i)
    absl::SleepFor(absl::Milliseconds(1));
  return std::unique_ptr<OpenAiHttpServer>(new OpenAiHttpServer(std::move(impl)));
}

OpenAiHttpServer::OpenAiHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

OpenAiHttpServer::~OpenAiHttpServer() { Shutdown(); }

const std::string& OpenAiHttpServer::address() const { return impl_->address; }

void OpenAiHttpServer::Shutdown() {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  impl_->stopping = true;
  // Streams notice `stopping` within one wait slice, their releasers cancel
  // the engine requests; stop() then joins the HTTP threads.
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace shardlm
