// The connection limits every HTTP port has (HttpLimits' max_connections,
// max_connections_per_ip, read_timeout) as command-line flags, defined once
// for the OpenAI API port (--http-*) and the metrics ports (--metrics-*).
#ifndef SHARDLM_COMMON_BASE_HTTP_LIMIT_FLAGS_H_
#define SHARDLM_COMMON_BASE_HTTP_LIMIT_FLAGS_H_

#include <string>

#include "absl/status/status.h"
#include "common/base/cli_args.h"
#include "common/base/http_server.h"

namespace shardlm {

struct HttpConnectionFlags {
  HttpConnectionFlags() : HttpConnectionFlags(HttpLimits()) {}
  explicit HttpConnectionFlags(const HttpLimits& defaults);

  int max_connections;
  int max_connections_per_ip;
  int read_timeout_s;
};

// PREFIX-max-connections, PREFIX-max-connections-per-ip and
// PREFIX-read-timeout (prefix "--http", "--metrics"); `port` starts their
// help ("HTTP API", "metrics port").
void AddHttpConnectionFlags(CliArgs* args, const std::string& prefix, const std::string& port,
                            HttpConnectionFlags* flags);

// Sets `limits`' three fields from the flags; INVALID_ARGUMENT naming the
// flag (with `prefix`) for a value out of range, `limits` then untouched.
absl::Status ApplyHttpConnectionFlags(const HttpConnectionFlags& flags, const std::string& prefix,
                                      HttpLimits* limits);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_HTTP_LIMIT_FLAGS_H_
