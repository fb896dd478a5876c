// The bytes of coordinator/web/chat.html, embedded by SHARDLM_EMBED_FILE
// (common/base/embedded_file.h); CMake's shardlm_embed_file passes the
// file's path and sha256.
#include <string_view>

#include "common/base/embedded_file.h"

SHARDLM_EMBED_FILE(shardlm_chat_page, SHARDLM_CHAT_PAGE_FILE);

namespace shardlm {

// The sha256 the bytes were built from (keeps ccache honest, see
// embedded_file.h).
extern const char kChatPageSha256[];
const char kChatPageSha256[] = SHARDLM_CHAT_PAGE_SHA256;

std::string_view ChatPageSource() { return SHARDLM_EMBEDDED_BYTES(shardlm_chat_page); }

}  // namespace shardlm
