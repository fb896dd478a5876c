// JSON string literal of UTF-8 text, for the --json outputs of our tools.
#ifndef SHARDLM_TOOLS_JSON_TEXT_H_
#define SHARDLM_TOOLS_JSON_TEXT_H_

#include <cstdio>
#include <string>
#include <string_view>

namespace shardlm {

inline std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace shardlm

#endif  // SHARDLM_TOOLS_JSON_TEXT_H_
