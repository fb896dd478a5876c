#include "common/rpc/channelz_sockets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shardlm {
namespace {

using Json = nlohmann::json;

absl::StatusOr<Json> Parse(std::string_view text, const char* what) {
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InternalError(absl::StrCat("channelz ", what, ": not a JSON object"));
  }
  return j;
}

// Proto3 JSON writes int64 as a string ("20"), int32 as a number; absent
// means zero.
int64_t Int(const Json& object, const char* key) {
  if (!object.is_object()) return 0;
  const auto it = object.find(key);
  if (it == object.end()) return 0;
  if (it->is_number_integer()) return it->get<int64_t>();
  int64_t v = 0;
  if (it->is_string() && absl::SimpleAtoi(it->get<std::string>(), &v)) return v;
  return 0;
}

bool End(const Json& j) {
  const auto it = j.find("end");
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

absl::StatusOr<ChannelzPage> ParseIds(std::string_view text, const char* list, const char* ref,
                                      const char* id_key) {
  absl::StatusOr<Json> j = Parse(text, list);
  if (!j.ok()) return j.status();
  ChannelzPage page;
  page.end = End(*j);
  const auto items = j->find(list);
  if (items == j->end()) return page;  // none (gRPC omits empty lists)
  if (!items->is_array()) return absl::InternalError(absl::StrCat("channelz: ", list, " not a list"));
  for (const Json& item : *items) {
    const Json* r = &item;
    if (ref != nullptr) {
      const auto it = item.find(ref);
      if (it == item.end()) continue;
      r = &*it;
    }
    const int64_t id = Int(*r, id_key);
    if (id > 0) page.ids.push_back(id);
  }
  return page;
}

IpEndpoint Endpoint(const Json& address) {
  IpEndpoint e;
  if (!address.is_object()) return e;
  const auto tcp = address.find("tcpip_address");
  if (tcp == address.end() || !tcp->is_object()) return e;
  const auto ip = tcp->find("ip_address");
  std::string bytes;
  if (ip != tcp->end() && ip->is_string() && absl::Base64Unescape(ip->get<std::string>(), &bytes) &&
      (bytes.size() == 4 || bytes.size() == 16)) {
    static const char kV4Mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\xff', '\xff'};
    if (bytes.size() == 16 && std::memcmp(bytes.data(), kV4Mapped, 12) == 0) bytes.erase(0, 12);
    e.ip = bytes;
    e.port = static_cast<int>(Int(*tcp, "port"));
  }
  return e;
}

}  // namespace

absl::StatusOr<ChannelzPage> ParseChannelzServers(std::string_view json) {
  return ParseIds(json, "server", "ref", "serverId");
}

absl::StatusOr<ChannelzPage> ParseChannelzSocketRefs(std::string_view json) {
  return ParseIds(json, "socketRef", nullptr, "socketId");
}

absl::StatusOr<ChannelzSocket> ParseChannelzSocket(std::string_view json) {
  absl::StatusOr<Json> j = Parse(json, "socket");
  if (!j.ok()) return j.status();
  const auto socket = j->find("socket");
  if (socket == j->end() || !socket->is_object()) {
    return absl::InternalError("channelz socket: no \"socket\" object");
  }
  ChannelzSocket s;
  if (const auto ref = socket->find("ref"); ref != socket->end()) s.id = Int(*ref, "socketId");
  if (const auto data = socket->find("data"); data != socket->end()) {
    s.open_streams = Int(*data, "streamsStarted") - Int(*data, "streamsSucceeded") -
                     Int(*data, "streamsFailed");
  }
  if (const auto local = socket->find("local"); local != socket->end()) s.local = Endpoint(*local);
  if (const auto remote = socket->find("remote"); remote != socket->end()) {
    s.remote = Endpoint(*remote);
  }
  return s;
}

bool ExceedsStreamLimit(const ChannelzSocket& socket, int64_t max_open_streams) {
  return max_open_streams > 0 && socket.open_streams > max_open_streams;
}

std::string IpEndpoint::ToString() const {
  char text[INET6_ADDRSTRLEN] = "?";
  if (ip.size() == 4) {
    inet_ntop(AF_INET, ip.data(), text, sizeof(text));
    return absl::StrCat(text, ":", port);
  }
  if (ip.size() == 16) {
    inet_ntop(AF_INET6, ip.data(), text, sizeof(text));
    return absl::StrCat("[", text, "]:", port);
  }
  return "(not TCP/IP)";
}

IpEndpoint EndpointOf(const void* address, unsigned length) {
  IpEndpoint e;
  sockaddr_storage ss{};
  std::memcpy(&ss, address, std::min<size_t>(length, sizeof(ss)));
  if (ss.ss_family == AF_INET && length >= sizeof(sockaddr_in)) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
    e.ip.assign(reinterpret_cast<const char*>(&in->sin_addr), 4);
    e.port = ntohs(in->sin_port);
  } else if (ss.ss_family == AF_INET6 && length >= sizeof(sockaddr_in6)) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      e.ip.assign(reinterpret_cast<const char*>(&in6->sin6_addr) + 12, 4);
    } else {
      e.ip.assign(reinterpret_cast<const char*>(&in6->sin6_addr), 16);
    }
    e.port = ntohs(in6->sin6_port);
  }
  return e;
}

}  // namespace shardlm
