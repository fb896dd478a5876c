#include "common/base/http_limit_flags.h"

#include "absl/strings/str_cat.h"

namespace shardlm {

HttpConnectionFlags::HttpConnectionFlags(const HttpLimits& defaults)
    : max_connections(defaults.max_connections),
      max_connections_per_ip(defaults.max_connections_per_ip),
      read_timeout_s(static_cast<int>(absl::ToInt64Seconds(defaults.read_timeout))) {}

void AddHttpConnectionFlags(CliArgs* args, const std::string& prefix, const std::string& port,
                            HttpConnectionFlags* f) {
  args->AddInt(prefix + "-max-connections", &f->max_connections,
               port + ": connections open at once (idle ones too); more are refused");
  args->AddInt(prefix + "-max-connections-per-ip", &f->max_connections_per_ip,
               port + ": connections open at once from one client address (0: no cap)");
  args->AddInt(prefix + "-read-timeout", &f->read_timeout_s,
               port + ": seconds a connection has to send a whole request (headers and body); "
                      "also how long an idle one stays open");
}

absl::Status ApplyHttpConnectionFlags(const HttpConnectionFlags& f, const std::string& prefix,
                                      HttpLimits* limits) {
  if (f.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "-max-connections must be at least 1, not ", f.max_connections));
  }
  if (f.max_connections_per_ip < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "-max-connections-per-ip must be 0 (no cap) or more, not ",
        f.max_connections_per_ip));
  }
  if (f.read_timeout_s < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "-read-timeout must be at least 1 second, not ", f.read_timeout_s));
  }
  limits->max_connections = f.max_connections;
  limits->max_connections_per_ip = f.max_connections_per_ip;
  limits->read_timeout = absl::Seconds(f.read_timeout_s);
  return absl::OkStatus();
}

}  // namespace shardlm
