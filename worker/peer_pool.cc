#include "worker/peer_pool.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace shardlm {

absl::Status CheckPeerAddress(absl::string_view address) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("next-hop address '", address.substr(0, 300), "' ", why,
                     " (expected HOST:PORT)"));
  };
  if (address.empty() || address.size() > 260) return bad("is empty or longer than 260 bytes");
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos) return bad("has no port");
  absl::string_view host = address.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 1 || port > 65535 ||
      !std::all_of(address.begin() + colon + 1, address.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return bad("has no port in 1..65535");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    const bool v6 = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
    });
    return v6 ? absl::OkStatus() : bad("has a malformed IPv6 address");
  }
  // A DNS name or an IPv4 address: letters, digits, '-', '.'. This also
  // refuses resolver schemes ("unix:", "dns:///") and paths.
  const bool name = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
  });
  return name ? absl::OkStatus() : bad("has a host that is not a DNS name or an IP address");
}

absl::StatusOr<std::shared_ptr<v1::Stage::Stub>> PeerPool::Get(const std::string& address) {
  if (absl::Status st = CheckPeerAddress(address); !st.ok()) return st;
  const absl::Time now = absl::Now();
  std::lock_guard<std::mutex> lock(mu_);
  // No call holds these any more (nothing can take a new reference to a
  // retired stub): their channels close here, on the caller's thread.
  std::erase_if(retired_, [](const auto& stub) { return stub.use_count() == 1; });
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (it->first != address && now - it->second.last_used > options_.idle_timeout) {
      it = Evict(it);  // idle
    } else {
      ++it;
    }
  }
  auto it = peers_.find(address);
  if (it == peers_.end()) {
    if (static_cast<int>(peers_.size()) >= std::max(1, options_.max_peers)) {
      auto lru = std::min_element(peers_.begin(), peers_.end(), [](const auto& a, const auto& b) {
        return a.second.last_used < b.second.last_used;
      });
      Evict(lru);
    }
    std::shared_ptr<grpc::Channel> channel = CreateClientChannel(
        address, options_.credentials, options_.tls_server_name, options_.max_message_bytes);
    it = peers_.emplace(address, Peer{std::shared_ptr<v1::Stage::Stub>(v1::Stage::NewStub(channel)),
                                      now})
             .first;
  }
  it->second.last_used = now;
  return it->second.stub;
}

std::map<std::string, PeerPool::Peer>::iterator PeerPool::Evict(
    std::map<std::string, Peer>::iterator it) {
  if (it->second.stub.use_count() > 1) retired_.push_back(std::move(it->second.stub));
  return peers_.erase(it);
}

int PeerPool::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(peers_.size());
}

}  // namespace shardlm
