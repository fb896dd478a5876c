// Transport security and client authentication, in one place: TLS
// credentials for every shardlm server and channel built from PEM files
// (errors name the file and the flag), the plaintext-only-when-asked rule,
// and bearer tokens in gRPC metadata compared in constant time.
//
// Mains map their flags into TlsServerFlags / TlsClientFlags and call
// Make*Credentials; library options carry the resulting credentials
// (null = plaintext, which only tests and `--insecure` produce).
#ifndef SHARDLM_COMMON_RPC_CREDENTIALS_H_
#define SHARDLM_COMMON_RPC_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardlm {

// Reads a whole PEM file. NOT_FOUND / PERMISSION_DENIED / INVALID_ARGUMENT
// name `what` ("--tls-cert") and the path; an empty file or one without a
// "-----BEGIN " line is refused.
absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& what);

// The server side of a listening port. `flag_prefix` names the flags in
// errors: "--tls-" gives "--tls-cert", "--tls-key", "--tls-client-ca".
struct TlsServerFlags {
  std::string cert_file;           // server certificate chain (PEM)
  std::string key_file;            // its private key (PEM)
  std::string client_ca_file;      // set: require client certificates signed by it (mTLS)
  bool require_client_ca = false;  // refuse to start without client_ca_file (workers)
  bool insecure = false;           // allow plaintext when no certificate is given
  std::string flag_prefix = "--tls-";
  std::string client_ca_flag = "--tls-client-ca";
};

// TLS server credentials from the files, or plaintext credentials when no
// certificate is given and `insecure` is set. INVALID_ARGUMENT when neither
// (the message says which flags to give), when only one of cert/key is
// given, or when a client CA comes without a certificate.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsServerFlags& flags);

// The client side of a channel. `flag_prefix` as above ("--worker-tls-",
// "--tls-").
struct TlsClientFlags {
  std::string ca_file;    // roots that sign the server's certificate; empty: system roots
  std::string cert_file;  // client certificate (mTLS), optional
  std::string key_file;
  bool insecure = false;  // plaintext when none of the files is given
  std::string flag_prefix = "--tls-";
};

// TLS channel credentials, or insecure ones when no file is given and
// `insecure` is set; INVALID_ARGUMENT otherwise (as above).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsClientFlags& flags);

// True when the flags ask for TLS (any file given).
inline bool WantsTls(const TlsClientFlags& f) {
  return !f.ca_file.empty() || !f.cert_file.empty() || !f.key_file.empty();
}
inline bool WantsTls(const TlsServerFlags& f) {
  return !f.cert_file.empty() || !f.key_file.empty() || !f.client_ca_file.empty();
}

// Bearer tokens from a file: one per line, surrounding whitespace trimmed,
// empty lines and lines starting with '#' skipped. An error names the file;
// a file without any token is refused (it would lock every client out).
absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path);

// Whether `presented` equals one of `tokens`, in time that depends only on
// the presented length and the number of tokens (never on where the first
// difference is, nor on which token matched).
bool MatchesAnyToken(const std::string& presented, const std::vector<std::string>& tokens);

// The one bearer-token check of every public API: gRPC metadata and the
// HTTP `Authorization` header carry the same `Bearer <token>` (the scheme
// is case-insensitive, RFC 6750 / RFC 7235), compared in constant time
// against a fixed set of tokens. With no tokens every call passes. The
// refusal is UNAUTHENTICATED, the same text on both APIs, and says what is
// missing, never what was sent.
class BearerAuthenticator {
 public:
  BearerAuthenticator() = default;
  explicit BearerAuthenticator(std::vector<std::string> tokens) : tokens_(std::move(tokens)) {}

  bool enabled() const { return !tokens_.empty(); }
  // The `authorization` metadata of a gRPC server call.
  absl::Status Check(const grpc::ServerContextBase& context) const;
  // A raw header value (HTTP); `present` false when there was no such header.
  absl::Status CheckHeader(bool present, absl::string_view value) const;

 private:
  std::vector<std::string> tokens_;
};

// Client side: adds `authorization: Bearer <token>` to a call (nothing for an
// empty token).
void AddBearerToken(grpc::ClientContext* context, const std::string& token);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_RPC_CREDENTIALS_H_
