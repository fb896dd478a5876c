#include "common/rpc/grpc_settings.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/generic/generic_stub.h>

#include <climits>
#include <future>

#include "absl/strings/str_cat.h"
#include "common/base/text_escape.h"
#include "common/rpc/stream_flood_guard.h"

namespace shardlm {
namespace {

// Names as grpc::StatusCode spells them, for messages.
const char* GrpcCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

}  // namespace

namespace {

// gRPC channel arguments are ints of milliseconds; InfiniteDuration and
// anything beyond INT_MAX mean "never" (INT_MAX is gRPC's own "infinite").
int MillisArg(absl::Duration d) {
  if (d == absl::InfiniteDuration() || d >= absl::Milliseconds(INT_MAX)) return INT_MAX;
  return static_cast<int>(absl::ToInt64Milliseconds(d));
}

}  // namespace

GrpcServerLimits HealthPortLimits() {
  GrpcServerLimits l;
  l.max_concurrent_streams = 8;
  l.memory_bytes = int64_t{32} << 20;
  l.max_threads = 8;
  l.max_connection_idle = absl::Minutes(5);
  l.max_connection_age = absl::Minutes(30);
  l.max_connection_age_grace = absl::Seconds(30);  // Watch streams reconnect
  return l;
}

absl::Status ValidateGrpcServerLimits(const GrpcServerLimits& l, const std::string& prefix) {
  if (l.max_concurrent_streams < 1 || l.max_concurrent_streams > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "max-concurrent-streams must be in [1, 65536], not ",
                     l.max_concurrent_streams));
  }
  if (l.max_open_streams != 0 && l.max_open_streams < l.max_concurrent_streams) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "max-open-streams must be 0 (4 x the streams per connection) or at least the "
        "streams per connection (", l.max_concurrent_streams, "), not ", l.max_open_streams));
  }
  if (l.memory_bytes < (int64_t{4} << 20)) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "memory must be at least 4M, not ", l.memory_bytes, " bytes"));
  }
  if (l.max_threads < 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "max-threads must be at least 2, not ", l.max_threads));
  }
  if (l.max_connection_idle <= absl::ZeroDuration() ||
      l.max_connection_age <= absl::ZeroDuration() ||
      l.max_connection_age_grace < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "connection idle/age limits must be positive"));
  }
  return absl::OkStatus();
}

void ApplyServerSettings(grpc::ServerBuilder& builder, int max_message_bytes,
                         const GrpcServerLimits& limits) {
  builder.SetMaxReceiveMessageSize(max_message_bytes);
  builder.SetMaxSendMessageSize(max_message_bytes);
  // Accept the clients' keepalive pings (every kKeepaliveTimeMs, also while
  // idle). The minimum interval is half the client's so jitter never counts
  // as a strike; a client pinging faster than that gets a strike per ping
  // and GOAWAY after a few (a ping flood costs us a write per ping).
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                             kKeepaliveTimeMs / 2);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 3);
  // The server pings idle clients too, to drop half-open connections of
  // coordinators that vanished.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 6 * kKeepaliveTimeMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);

  // Streams per connection: the SETTINGS value every client is told.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, limits.max_concurrent_streams);
  // ...which gRPC 1.51 enforces only after the client's SETTINGS ACK; the
  // stream-flood guard bounds a client that never sends it. It reads the
  // per-connection stream counters of channelz (gRPC's default, made
  // explicit because the guard depends on it).
  builder.AddChannelArgument(GRPC_ARG_ENABLE_CHANNELZ, 1);
  EnableStreamFloodGuard(limits.max_open_streams > 0
                             ? limits.max_open_streams
                             : int64_t{4} * limits.max_concurrent_streams);
  // Request headers: gRPC's default soft limit (8 KiB) made explicit; a
  // bearer token and a few metadata entries fit many times.
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, 16 << 10);
  grpc::ResourceQuota quota("shardlm-server");
  quota.Resize(static_cast<size_t>(limits.memory_bytes));
  quota.SetMaxThreads(limits.max_threads);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, MillisArg(limits.max_connection_idle));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, MillisArg(limits.max_connection_age));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                             MillisArg(limits.max_connection_age_grace));
}

grpc::ChannelArguments ClientChannelArguments(int max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  args.SetMaxSendMessageSize(max_message_bytes);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveTimeMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Without this the client stops pinging after 2 pings with no data sent,
  // which defeats keepalive on a connection idle between requests.
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnect quickly to a worker that restarts (default backoff grows to
  // 120 s; a pipeline waiting on one worker should not wait that long).
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 5'000);
  return args;
}

std::shared_ptr<grpc::Channel> CreateClientChannel(const std::string& address,
                                                   int max_message_bytes) {
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                   ClientChannelArguments(max_message_bytes));
}

std::shared_ptr<grpc::Channel> CreateClientChannel(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials,
    const std::string& tls_server_name, int max_message_bytes) {
  grpc::ChannelArguments args = ClientChannelArguments(max_message_bytes);
  if (!tls_server_name.empty()) args.SetSslTargetNameOverride(tls_server_name);
  return grpc::CreateCustomChannel(
      address, credentials ? std::move(credentials) : grpc::InsecureChannelCredentials(), args);
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering (both are
  // google.rpc.Code).
  // Messages may quote file or client bytes: clients decode them as UTF-8
  // (and print them), so anything else is escaped.
  const std::string_view message(status.message().data(), status.message().size());
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      IsPrintableUtf8(message) ? std::string(message) : EscapeNonPrintable(message));
}

absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& context) {
  if (status.ok()) return absl::OkStatus();
  const std::string message =
      context.empty()
          ? absl::StrCat(GrpcCodeName(status.error_code()), ": ", status.error_message())
          : absl::StrCat(context, ": ", GrpcCodeName(status.error_code()), ": ",
                         status.error_message());
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout) {
  return absl::ToChronoTime(absl::Now() + timeout);
}

absl::StatusOr<bool> CheckHealth(grpc::Channel* channel, const std::string& service,
                                 absl::Duration timeout) {
  namespace pb = google::protobuf;
  // HealthCheckRequest { string service = 1; }
  std::string request_bytes;
  {
    pb::io::StringOutputStream raw(&request_bytes);
    pb::io::CodedOutputStream out(&raw);
    if (!service.empty()) {
      pb::internal::WireFormatLite::WriteString(1, service, &out);
    }
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1), response;
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(timeout));
  grpc::GenericStub stub(std::shared_ptr<grpc::ChannelInterface>(
      std::shared_ptr<grpc::ChannelInterface>(), channel));  // non-owning alias
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) return FromGrpcStatus(status, "health check");

  // HealthCheckResponse { ServingStatus status = 1; }, SERVING = 1.
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("health check: unreadable response");
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                              static_cast<int>(bytes.size()));
  uint32_t serving = 0;
  while (uint32_t tag = in.ReadTag()) {
    if (tag ==
        pb::internal::WireFormatLite::MakeTag(1, pb::internal::WireFormatLite::WIRETYPE_VARINT)) {
      if (!in.ReadVarint32(&serving)) break;
    } else if (!pb::internal::WireFormatLite::SkipField(&in, tag)) {
      return absl::InternalError("health check: malformed response");
    }
  }
  return serving == 1;
}

}  // namespace shardlm
