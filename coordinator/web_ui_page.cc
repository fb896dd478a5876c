// The bytes of coordinator/web/chat.html, put into .rodata by the
// assembler's .incbin, as common/model/embedded/embedded_bytes.cc does with
// the model: no generated source and no xxd. CMake passes the file's path
// as SHARDLM_CHAT_PAGE_FILE and its sha256 as SHARDLM_CHAT_PAGE_SHA256, so
// an edited page changes the command line (and ccache's key), not only the
// bytes behind .incbin.
#include <cstddef>
#include <string_view>

// clang-format off
__asm__(
    ".pushsection .rodata,\"a\"\n"
    ".globl shardlm_chat_page_begin\n"
    ".hidden shardlm_chat_page_begin\n"
    "shardlm_chat_page_begin:\n"
    ".incbin \"" SHARDLM_CHAT_PAGE_FILE "\"\n"
    ".globl shardlm_chat_page_end\n"
    ".hidden shardlm_chat_page_end\n"
    "shardlm_chat_page_end:\n"
    ".popsection\n");
// clang-format on

extern "C" __attribute__((visibility("hidden"))) const char shardlm_chat_page_begin[];
extern "C" __attribute__((visibility("hidden"))) const char shardlm_chat_page_end[];

namespace shardlm {

// The sha256 the bytes were built from (keeps ccache honest, see above).
extern const char kChatPageSha256[];
const char kChatPageSha256[] = SHARDLM_CHAT_PAGE_SHA256;

std::string_view ChatPageSource() {
  return std::string_view(shardlm_chat_page_begin,
                          static_cast<size_t>(shardlm_chat_page_end - shardlm_chat_page_begin));
}

}  // namespace shardlm
