// The bounds behind the hostile-traffic suite (tests/hostile/grpc_*), as unit
// tests: the per-stream token queue, UTF-8 of what the gRPC API writes, the
// escaping helper of logs and shardlm-inspect, the logits cap of a last
// stage, the default KV budget and the gRPC server limit checks.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "common/base/metrics_server.h"
#include "common/base/text_escape.h"
#include "common/rpc/grpc_settings.h"
#include "common/stage/forward_codec.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"
#include "coordinator/coordinator_flags.h"
#include "coordinator/proto_convert.h"
#include "coordinator/token_stream.h"
#include "spm_byte_vocab.h"
#include "worker/kv_budget.h"

namespace shardlm {
namespace {

GeneratedToken Token(int32_t id) {
  GeneratedToken t;
  t.id = id;
  t.text = "x";
  return t;
}

TEST(TokenStreamBound, OverflowsPastMaxUnreadAndDropsTheRest) {
  int notified = 0;
  TokenStream stream([&] { ++notified; }, /*max_unread=*/3);
  for (int i = 0; i < 3; ++i) stream.OnToken(Token(i));
  EXPECT_FALSE(stream.overflowed());
  stream.OnToken(Token(3));  // the 4th unread token
  EXPECT_TRUE(stream.overflowed());
  stream.OnToken(Token(4));
  EXPECT_EQ(notified, 5);  // the consumer hears of the overflow
  std::vector<GeneratedToken> tokens;
  StreamEnd end;
  EXPECT_FALSE(stream.Take(&tokens, &end));
  ASSERT_EQ(tokens.size(), 3u);  // nothing past the bound was queued
  EXPECT_EQ(tokens.back().id, 2);
  // Once overflowed it stays so: a consumer that catches up does not get a
  // stream with a hole in it.
  stream.OnToken(Token(5));
  tokens.clear();
  stream.Take(&tokens, &end);
  EXPECT_TRUE(tokens.empty());
  EXPECT_TRUE(stream.overflowed());
}

TEST(TokenStreamBound, ReadingConsumerNeverOverflows) {
  TokenStream stream(nullptr, /*max_unread=*/2);
  std::vector<GeneratedToken> tokens;
  StreamEnd end;
  for (int i = 0; i < 100; ++i) {
    stream.OnToken(Token(i));
    stream.Take(&tokens, &end);
  }
  EXPECT_FALSE(stream.overflowed());
  EXPECT_EQ(tokens.size(), 100u);
}

TEST(TokenStreamBound, ZeroMeansUnbounded) {
  TokenStream stream;
  for (int i = 0; i < 10000; ++i) stream.OnToken(Token(i));
  EXPECT_FALSE(stream.overflowed());
}

TEST(ProtoUtf8, ByteFallbackAlternativesAreValidTextWithRawBytes) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      Tokenizer::Create(testing::SpmByteVocab());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  GeneratedToken t = Token(3 + 'a');
  // <0xDB> (a lead byte alone), <0xE4>, <0x80> (a lone continuation), 'a'.
  for (int byte : {0xDB, 0xE4, 0x80, int{'a'}}) t.top_logprobs.push_back({3 + byte, -1.0f});
  v1::GeneratedChunk chunk = ChunkToProto(t, **tokenizer);
  ASSERT_EQ(chunk.top_logprobs_size(), 4);
  for (const v1::TokenLogprob& alt : chunk.top_logprobs()) {
    EXPECT_TRUE(IsValidUtf8(alt.text())) << alt.token_id();
    EXPECT_EQ(alt.text(), SanitizeUtf8(alt.raw()));
    // A strict client parses what we serialize (libprotobuf checks UTF-8).
  }
  EXPECT_EQ(chunk.top_logprobs(0).raw(), "\xDB");
  EXPECT_EQ(chunk.top_logprobs(0).text(), kUtf8Replacement);
  EXPECT_EQ(chunk.top_logprobs(3).text(), "a");
  v1::GeneratedChunk parsed;
  EXPECT_TRUE(parsed.ParseFromString(chunk.SerializeAsString()));
  EXPECT_EQ(parsed.top_logprobs(1).raw(), "\xE4");
}

TEST(EscapeNonPrintable, TerminalControlsBecomeHex) {
  EXPECT_EQ(EscapeNonPrintable("\x1b[2Jname"), "\\x1b[2Jname");
  EXPECT_EQ(EscapeNonPrintable("a\rb\nc\td\x7f"), "a\\x0db\\x0ac\\x09d\\x7f");
  EXPECT_EQ(EscapeNonPrintable(std::string("nul\0x", 5)), "nul\\x00x");
  // C1 controls (CSI U+009B) are valid UTF-8 but terminals obey them.
  EXPECT_EQ(EscapeNonPrintable("\xc2\x9b" "31m"), "\\xc2\\x9b31m");
  EXPECT_EQ(EscapeNonPrintable("back\\slash"), "back\\\\slash");
}

TEST(EscapeNonPrintable, InvalidUtf8IsEscapedValidTextKept) {
  EXPECT_EQ(EscapeNonPrintable("caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x98\x80"),
            "caf\xc3\xa9 \xe4\xb8\x96 \xf0\x9f\x98\x80");
  EXPECT_EQ(EscapeNonPrintable("\xdb"), "\\xdb");
  EXPECT_EQ(EscapeNonPrintable("\xe4\xb8"), "\\xe4\\xb8");           // truncated
  EXPECT_EQ(EscapeNonPrintable("\xc0\xaf"), "\\xc0\\xaf");           // overlong '/'
  EXPECT_EQ(EscapeNonPrintable("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // surrogate
  EXPECT_EQ(EscapeNonPrintable("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
  for (std::string s : {"\xff\xfe", "\x1b\xc3", "ok\xe2\x82"}) {
    EXPECT_TRUE(IsValidUtf8(EscapeNonPrintable(s))) << s;
    EXPECT_TRUE(IsPrintableUtf8(EscapeNonPrintable(s))) << s;
  }
  EXPECT_TRUE(IsPrintableUtf8("plain caf\xc3\xa9"));
  EXPECT_FALSE(IsPrintableUtf8("\x1b"));
  EXPECT_FALSE(IsPrintableUtf8("\xdb"));
}

TEST(StatusAtTheEdge, MessagesBecomePrintableUtf8) {
  grpc::Status s = ToGrpcStatus(absl::InvalidArgumentError("tensor '\x1b[2J\xdb' is bad"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "tensor '\\x1b[2J\\xdb' is bad");
  EXPECT_EQ(ToGrpcStatus(absl::NotFoundError("plain")).error_message(), "plain");
}

ShardInfo LastStage(int n_vocab) {
  ShardInfo info;
  info.first_layer = 0;
  info.last_layer = 2;
  info.n_layer = 2;
  info.n_embd = 8;
  info.n_vocab = n_vocab;
  info.n_ctx = 8192;
  return info;
}

ForwardRequest Batch(int n_seqs, int tokens_per_seq, bool all_logits) {
  ForwardRequest r;
  for (int s = 0; s < n_seqs; ++s) {
    for (int p = 0; p < tokens_per_seq; ++p) {
      r.seq_ids.push_back(s + 1);
      r.positions.push_back(p);
      r.tokens.push_back(1);
      if (all_logits) r.want_logits.push_back(1);
    }
  }
  return r;
}

TEST(LogitsCap, RowsTimesVocabCheckedAgainstTheMessageLimit) {
  const ShardInfo info = LastStage(32000);
  // The case: 4096 x 32000 x 4 = 500 MiB against 64 MiB.
  const ForwardRequest all = Batch(1, 4096, /*all_logits=*/true);
  EXPECT_EQ(ForwardLogitsBytes(all, info), int64_t{4096} * 32000 * 4);
  absl::Status st = CheckLogitsFitMessage(all, info, kMaxMessageBytes);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(st.message().find("4096 rows x 32000 vocab"), std::string::npos) << st;
  // Generation asks for one row per sequence: 16 x 32000 x 4 = 2 MB fits.
  const ForwardRequest decode = Batch(16, 256, /*all_logits=*/false);
  EXPECT_EQ(ForwardLogitsBytes(decode, info), int64_t{16} * 32000 * 4);
  EXPECT_TRUE(CheckLogitsFitMessage(decode, info, kMaxMessageBytes).ok());
  // Not the last stage: no logits at all.
  ShardInfo middle = info;
  middle.last_layer = 1;
  EXPECT_EQ(ForwardLogitsBytes(all, middle), 0);
  EXPECT_TRUE(CheckLogitsFitMessage(all, middle, 1 << 20).ok());
}

// Found by forward_request_fuzzer: the worker sizes the logits before the
// batch is validated, so fewer want_logits flags than tokens must be read
// within bounds (ASan would report the overflow) and count only what is there.
TEST(LogitsCap, ShortWantLogitsIsReadWithinBounds) {
  const ShardInfo info = LastStage(32000);
  ForwardRequest bad = Batch(1, 8, /*all_logits=*/true);
  bad.want_logits.resize(3);
  EXPECT_EQ(ForwardLogitsBytes(bad, info), int64_t{3} * 32000 * 4);
  bad.want_logits.clear();
  bad.seq_ids.resize(5);  // fewer sequence ids than positions
  EXPECT_EQ(ForwardLogitsBytes(bad, info), int64_t{1} * 32000 * 4);
}

TEST(DefaultKvBudget, HalfOfWhatIsLeftAfterTheWeights) {
  const int64_t gib = int64_t{1} << 30;
  MemoryFacts facts;
  facts.mem_available = 10 * gib;
  EXPECT_EQ(DefaultKvBudget(facts, 2 * gib), 4 * gib);
  facts.cgroup_limit = 6 * gib;  // the container's limit is tighter
  facts.cgroup_usage = 1 * gib;
  EXPECT_EQ(DefaultKvBudget(facts, 1 * gib), 2 * gib);
  facts.cgroup_limit = 1 * gib;  // weights alone fill it: the floor
  EXPECT_EQ(DefaultKvBudget(facts, 2 * gib), int64_t{64} << 20);
  EXPECT_EQ(DefaultKvBudget(MemoryFacts(), 0), int64_t{64} << 20);  // nothing known
  EXPECT_GT(DefaultKvBudget(ReadMemoryFacts(), 0), 0);             // this machine
}

TEST(GrpcServerLimits, DefaultsValidBadValuesNamed) {
  EXPECT_TRUE(ValidateGrpcServerLimits(GrpcServerLimits()).ok());
  EXPECT_TRUE(ValidateGrpcServerLimits(HealthPortLimits()).ok());
  GrpcServerLimits l;
  l.max_concurrent_streams = 0;
  absl::Status st = ValidateGrpcServerLimits(l, "--grpc-");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--grpc-max-concurrent-streams"), std::string::npos) << st;
  l = GrpcServerLimits();
  l.memory_bytes = 1024;
  EXPECT_FALSE(ValidateGrpcServerLimits(l).ok());
  // The worker's Stage port never ages connections (its streams are long).
  EXPECT_EQ(GrpcServerLimits().max_connection_age, absl::InfiniteDuration());
}

TEST(MetricsPortLimits, FlagsApplyAndBadValuesAreNamed) {
  MetricsFlags f;  // defaults: the fixed limits the port had before the flags
  absl::StatusOr<HttpLimits> l = MetricsLimitsFromFlags(f);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->max_connections, MetricsHttpLimits().max_connections);
  EXPECT_EQ(l->read_timeout, MetricsHttpLimits().read_timeout);
  EXPECT_EQ(l->max_body_bytes, 0u);  // a scrape has no body, whatever the flags
  f.max_connections = 8;
  f.max_connections_per_ip = 2;
  f.read_timeout_s = 3;
  l = MetricsLimitsFromFlags(f);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(l->max_connections, 8);
  EXPECT_EQ(l->max_connections_per_ip, 2);
  EXPECT_EQ(l->read_timeout, absl::Seconds(3));
  for (auto [field, value, flag] :
       {std::tuple{&MetricsFlags::max_connections, 0, "--metrics-max-connections"},
        std::tuple{&MetricsFlags::max_connections_per_ip, -1, "--metrics-max-connections-per-ip"},
        std::tuple{&MetricsFlags::read_timeout_s, 0, "--metrics-read-timeout"}}) {
    MetricsFlags bad;
    bad.*field = value;
    const absl::StatusOr<HttpLimits> refused = MetricsLimitsFromFlags(bad);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_NE(refused.status().message().find(flag), std::string::npos) << refused.status();
  }
}

// The API port's connection flags are the metrics ports' mechanism with
// the "--http" prefix: applied to http_limits, bad values named.
TEST(HttpPortLimits, ConnectionFlagsApplyAndBadValuesAreNamed) {
  CoordinatorFlags f;
  f.http_connections.max_connections = 7;
  f.http_connections.max_connections_per_ip = 3;
  f.http_connections.read_timeout_s = 4;
  CoordinatorOptions o;
  ASSERT_TRUE(ApplyCoordinatorFlags(WorkerPlacement::kLoopback, f, &o).ok());
  EXPECT_EQ(o.http_limits.max_connections, 7);
  EXPECT_EQ(o.http_limits.max_connections_per_ip, 3);
  EXPECT_EQ(o.http_limits.read_timeout, absl::Seconds(4));
  EXPECT_EQ(o.metrics_limits.max_connections, MetricsHttpLimits().max_connections);
  for (auto [field, value, flag] :
       {std::tuple{&HttpConnectionFlags::max_connections, 0, "--http-max-connections"},
        std::tuple{&HttpConnectionFlags::max_connections_per_ip, -1,
                   "--http-max-connections-per-ip"},
        std::tuple{&HttpConnectionFlags::read_timeout_s, 0, "--http-read-timeout"}}) {
    CoordinatorFlags bad;
    bad.http_connections.*field = value;
    const absl::Status refused = ApplyCoordinatorFlags(WorkerPlacement::kLoopback, bad, &o);
    EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument) << flag;
    EXPECT_NE(refused.message().find(flag), std::string::npos) << refused;
  }
}

}  // namespace
}  // namespace shardlm
