// shardlm-prefix-bench: what prefix reuse across requests buys, driven over
// gRPC Generate with token-id prompts (greedy, EOS ignored).
//   --mode chat:  a conversation of T turns; each turn's prompt is the last
//                 one, its answer and the next user message, so the history
//                 grows turn by turn. Prints each turn's time to first token,
//                 then the TTFT of a prompt as long as the last turn's with
//                 no start in common (the same work without reuse).
//   --mode extend: a prompt of F tokens, then that prompt with its answer and
//                 U more tokens, then a prompt as long with no start in
//                 common: the time to first token of the last two (the
//                 ">= 5x sooner" check of issue 18).
//   --mode users: U users sharing one system prompt, all at once, after the
//                 system prompt was served once (a server's steady state).
//                 Prints wall time, generated tokens/s and TTFT.
// Run it against a server with --prefix-cache on and off (bench/prefix_cache.sh).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/base/cli_args.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_settings.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace {

using namespace shardlm;

struct Reply {
  double ttft_ms = 0;
  std::vector<int32_t> tokens;
  bool ok = false;
};

// Pseudo-random ids in [3, n_vocab): the same seed gives the same tokens.
std::vector<int32_t> Tokens(uint32_t seed, int n, int n_vocab) {
  std::vector<int32_t> out;
  uint32_t s = 0x9e3779b9u ^ (seed * 2654435761u);
  for (int i = 0; i < n; ++i) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    out.push_back(3 + static_cast<int32_t>(s % (n_vocab - 3)));
  }
  return out;
}

Reply Generate(v1::ShardLM::Stub* stub, const std::vector<int32_t>& prompt, int max_tokens) {
  v1::GenerateRequest req;
  for (int32_t t : prompt) req.add_prompt_tokens(t);
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_ignore_eos(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(30));
  Reply reply;
  const absl::Time t0 = absl::Now();
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse r;
  while (reader->Read(&r)) {
    if (!r.has_chunk() || r.chunk().token_id() < 0) continue;
    if (reply.tokens.empty()) reply.ttft_ms = absl::ToDoubleMilliseconds(absl::Now() - t0);
    reply.tokens.push_back(r.chunk().token_id());
  }
  const grpc::Status st = reader->Finish();
  reply.ok = st.ok();
  if (!st.ok()) std::fprintf(stderr, "shardlm-prefix-bench: %s\n", st.error_message().c_str());
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  std::string server = "127.0.0.1:50051", mode = "chat";
  int turns = 10, first_tokens = 150, user_tokens = 110, answer_tokens = 32;
  int users = 16, system_tokens = 500, question_tokens = 20;
  CliArgs args("shardlm-prefix-bench --server HOST:PORT [--mode chat|users] [options]",
               "Measures time to first token of a growing chat (--mode chat) or the throughput\n"
               "of users sharing a system prompt (--mode users).");
  args.AddString("--server", &server, "coordinator address (plaintext)");
  args.AddString("--mode", &mode, "chat, extend or users");
  args.AddInt("--turns", &turns, "chat: turns");
  args.AddInt("--first-tokens", &first_tokens,
              "chat, extend: tokens of the first prompt (BOS included)");
  args.AddInt("--user-tokens", &user_tokens, "chat, extend: tokens of each later user message");
  args.AddInt("--answer-tokens", &answer_tokens, "chat and users: tokens generated per request");
  args.AddInt("--users", &users, "users: concurrent users");
  args.AddInt("--system-tokens", &system_tokens, "users: tokens of the shared system prompt");
  args.AddInt("--question-tokens", &question_tokens, "users: tokens of each user's own question");
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "shardlm-prefix-bench")) return *exit;
  if (mode != "chat" && mode != "users" && mode != "extend") {
    std::fprintf(stderr, "shardlm-prefix-bench: --mode is '%s', must be chat, extend or users\n",
                 mode.c_str());
    return 2;
  }
  TlsClientFlags tls;
  tls.insecure = true;
  auto credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) return ExitWithError("shardlm-prefix-bench", credentials.status(), 2);
  auto stub = v1::ShardLM::NewStub(CreateClientChannel(server, *credentials, ""));
  v1::ModelInfo info;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (grpc::Status st = stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info); !st.ok()) {
      std::fprintf(stderr, "shardlm-prefix-bench: %s: %s\n", server.c_str(),
                   st.error_message().c_str());
      return 1;
    }
  }
  const int n_vocab = info.n_vocab();
  const int32_t bos = info.bos_token_id();
  if (mode == "extend") {
    std::vector<int32_t> prompt = {bos};
    for (int32_t t : Tokens(3, first_tokens - 1, n_vocab)) prompt.push_back(t);
    const Reply first = Generate(stub.get(), prompt, answer_tokens);
    if (!first.ok) return 1;
    prompt.insert(prompt.end(), first.tokens.begin(), first.tokens.end());
    for (int32_t t : Tokens(300, user_tokens, n_vocab)) prompt.push_back(t);
    const Reply extended = Generate(stub.get(), prompt, 1);
    std::vector<int32_t> other = {bos};
    for (int32_t t : Tokens(998, static_cast<int>(prompt.size()) - 1, n_vocab)) other.push_back(t);
    const Reply unshared = Generate(stub.get(), other, 1);
    if (!extended.ok || !unshared.ok) return 1;
    std::printf("first %d tokens: ttft %.1f ms; extended to %zu: ttft %.1f ms; unshared %zu: ttft "
                "%.1f ms; unshared / extended %.1fx\n",
                first_tokens, first.ttft_ms, prompt.size(), extended.ttft_ms, other.size(),
                unshared.ttft_ms, unshared.ttft_ms / extended.ttft_ms);
    return 0;
  }
  if (mode == "chat") {
    std::vector<int32_t> prompt = {bos};
    for (int32_t t : Tokens(1, first_tokens - 1, n_vocab)) prompt.push_back(t);
    std::printf("turn prompt_tokens ttft_ms\n");
    for (int turn = 1; turn <= turns; ++turn) {
      const Reply r = Generate(stub.get(), prompt, answer_tokens);
      if (!r.ok) return 1;
      std::printf("%d %zu %.1f\n", turn, prompt.size(), r.ttft_ms);
      std::fflush(stdout);
      prompt.insert(prompt.end(), r.tokens.begin(), r.tokens.end());
      for (int32_t t : Tokens(100 + turn, user_tokens, n_vocab)) prompt.push_back(t);
    }
    // The last turn's length with nothing in common with the conversation.
    std::vector<int32_t> other = {bos};
    const int last = static_cast<int>(prompt.size()) - answer_tokens - user_tokens;
    for (int32_t t : Tokens(999, last - 1, n_vocab)) other.push_back(t);
    const Reply r = Generate(stub.get(), other, 1);
    if (!r.ok) return 1;
    std::printf("unshared %zu %.1f\n", other.size(), r.ttft_ms);
    return 0;
  }
  std::vector<int32_t> system = {bos};
  for (int32_t t : Tokens(7, system_tokens - 1, n_vocab)) system.push_back(t);
  if (!Generate(stub.get(), system, 1).ok) return 1;  // served once before
  std::vector<Reply> replies(users);
  std::vector<std::thread> clients;
  const absl::Time start = absl::Now();
  for (int u = 0; u < users; ++u) {
    clients.emplace_back([&, u] {
      std::vector<int32_t> prompt = system;
      for (int32_t t : Tokens(1000 + u, question_tokens, n_vocab)) prompt.push_back(t);
      replies[u] = Generate(stub.get(), prompt, answer_tokens);
    });
  }
  for (std::thread& t : clients) t.join();
  const double wall = absl::ToDoubleSeconds(absl::Now() - start);
  std::vector<double> ttft;
  int64_t generated = 0;
  for (const Reply& r : replies) {
    if (!r.ok) return 1;
    ttft.push_back(r.ttft_ms);
    generated += static_cast<int64_t>(r.tokens.size());
  }
  std::sort(ttft.begin(), ttft.end());
  std::printf("users %d prompt_tokens %d wall_s %.2f generated_tokens_per_s %.2f "
              "ttft_p50_ms %.1f ttft_max_ms %.1f\n",
              users, system_tokens + question_tokens, wall, generated / wall,
              ttft[ttft.size() / 2], ttft.back());
  return 0;
}
