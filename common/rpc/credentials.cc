#include "common/rpc/credentials.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shardlm {

absl::StatusOr<std::string> ReadPemFile(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    const std::string why = absl::StrCat(what, ": cannot read '", path, "': ", std::strerror(err));
    if (err == ENOENT) return absl::NotFoundError(why);
    if (err == EACCES) return absl::PermissionDeniedError(why);
    return absl::InvalidArgumentError(why);
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string pem = text.str();
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": '", path, "' is ", pem.empty() ? "empty" : "not PEM (no -----BEGIN line)"));
  }
  return pem;
}

// A certificate chain and its private key, both PEM, read together.
absl::Status ReadKeyPair(const std::string& cert_file, const std::string& cert_flag,
                         const std::string& key_file, const std::string& key_flag,
                         std::string* cert, std::string* key) {
  absl::StatusOr<std::string> c = ReadPemFile(cert_file, cert_flag);
  if (!c.ok()) return c.status();
  absl::StatusOr<std::string> k = ReadPemFile(key_file, key_flag);
  if (!k.ok()) return k.status();
  *cert = std::move(*c);
  *key = std::move(*k);
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsServerFlags& f) {
  const std::string cert_flag = f.flag_prefix + "cert", key_flag = f.flag_prefix + "key";
  if (!WantsTls(f)) {
    if (f.insecure) return grpc::InsecureServerCredentials();
    return absl::InvalidArgumentError(
        absl::StrCat("no TLS credentials: give ", cert_flag, " and ", key_flag,
                     f.require_client_ca ? absl::StrCat(" and ", f.client_ca_flag) : std::string(),
                     ", or --insecure to serve plaintext"));
  }
  if (f.cert_file.empty() || f.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_flag, " and ", key_flag, " must be given together"));
  }
  if (f.require_client_ca && f.client_ca_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.client_ca_flag, " is required with ", cert_flag,
                     ": it verifies the client certificates (mutual TLS)"));
  }
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  if (absl::Status st = ReadKeyPair(f.cert_file, cert_flag, f.key_file, key_flag,
                                    &pair.cert_chain, &pair.private_key);
      !st.ok()) {
    return st;
  }
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (!f.client_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile(f.client_ca_file, f.client_ca_flag);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = std::move(*ca);
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  options.pem_key_cert_pairs.push_back(std::move(pair));
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::SslServerCredentials(options);
  if (creds == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("cannot build TLS server credentials from ",
                                                   f.cert_file, " and ", f.key_file));
  }
  return creds;
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const TlsClientFlags& f) {
  const std::string cert_flag = f.flag_prefix + "cert", key_flag = f.flag_prefix + "key",
                    ca_flag = f.flag_prefix + "ca";
  if (!WantsTls(f)) {
    if (f.insecure) return grpc::InsecureChannelCredentials();
    return absl::InvalidArgumentError(absl::StrCat("no TLS credentials: give ", ca_flag, " (and ",
                                                   cert_flag, "/", key_flag,
                                                   " for a client certificate), or --insecure"));
  }
  if (f.cert_file.empty() != f.key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(cert_flag, " and ", key_flag, " must be given together"));
  }
  grpc::SslCredentialsOptions options;
  if (!f.ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPemFile(f.ca_file, ca_flag);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = std::move(*ca);
  }
  if (!f.cert_file.empty()) {
    if (absl::Status st = ReadKeyPair(f.cert_file, cert_flag, f.key_file, key_flag,
                                      &options.pem_cert_chain, &options.pem_private_key);
        !st.ok()) {
      return st;
    }
  }
  std::shared_ptr<grpc::ChannelCredentials> creds = grpc::SslCredentials(options);
  if (creds == nullptr) return absl::InvalidArgumentError("cannot build TLS channel credentials");
  return creds;
}

absl::StatusOr<std::vector<std::string>> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file: cannot read '", path, "': ", std::strerror(errno)));
  }
  std::vector<std::string> tokens;
  std::string line;
  while (std::getline(in, line)) {
    std::string token(absl::StripAsciiWhitespace(line));
    if (token.empty() || token[0] == '#') continue;
    tokens.push_back(std::move(token));
  }
  if (tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file: '", path, "' holds no token (one per line)"));
  }
  return tokens;
}

bool MatchesAnyToken(const std::string& presented, const std::vector<std::string>& tokens) {
  // Every token is compared over the presented length, whatever its own
  // length (a length mismatch is folded into the result, not returned
  // early), and every token is compared even after a match.
  unsigned match = 0;
  for (const std::string& token : tokens) {
    volatile unsigned diff = token.size() != presented.size() ? 1u : 0u;
    const size_t n = token.size();
    for (size_t i = 0; i < presented.size(); ++i) {
      const unsigned char t = n == 0 ? 0 : static_cast<unsigned char>(token[i % n]);
      diff = diff | (t ^ static_cast<unsigned char>(presented[i]));
    }
    match |= diff == 0 ? 1u : 0u;
  }
  return match != 0 && !presented.empty();
}

absl::Status BearerAuthenticator::CheckHeader(bool present, absl::string_view value) const {
  if (tokens_.empty()) return absl::OkStatus();
  if (!present) {
    return absl::UnauthenticatedError("missing credentials: send 'authorization: Bearer <token>'");
  }
  // A control byte (a NUL above all: C APIs would cut the value there) is
  // never part of a token; refuse it rather than compare around it.
  for (const char c : value) {
    const auto b = static_cast<unsigned char>(c);
    if ((b < 0x20 && b != '\t') || b == 0x7f) {
      return absl::UnauthenticatedError("authorization holds a control byte");
    }
  }
  constexpr absl::string_view kScheme = "bearer ";
  if (value.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kScheme.size()), kScheme)) {
    return absl::UnauthenticatedError("authorization is not 'Bearer <token>'");
  }
  const std::string token(absl::StripAsciiWhitespace(value.substr(kScheme.size())));
  if (!MatchesAnyToken(token, tokens_)) return absl::UnauthenticatedError("invalid bearer token");
  return absl::OkStatus();
}

absl::Status BearerAuthenticator::Check(const grpc::ServerContextBase& context) const {
  if (tokens_.empty()) return absl::OkStatus();
  const auto& metadata = context.client_metadata();
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return CheckHeader(false, "");
  return CheckHeader(true, absl::string_view(it->second.data(), it->second.size()));
}

void AddBearerToken(grpc::ClientContext* context, const std::string& token) {
  if (!token.empty()) context->AddMetadata("authorization", "Bearer " + token);
}

}  // namespace shardlm
