// A file's bytes linked into the binary at build time, by the assembler's
// .incbin (GNU as and clang's integrated assembler both have it): no
// generated source, no xxd, and the file is read at build time only. One
// mechanism for every embedded file (the built-in model, the chat page).
//
// In one .cc:   SHARDLM_EMBED_FILE(shardlm_chat_page, SHARDLM_CHAT_PAGE_FILE);
// defines, in .rodata and 64-byte aligned, the bytes between the hidden
// symbols shardlm_chat_page_begin and shardlm_chat_page_end. Hidden: the
// linker resolves them inside this binary, PC-relative, no text
// relocations. The path comes from CMake's shardlm_embed_file()
// (common/base/CMakeLists.txt), which also passes the file's sha256 so that
// an edited file changes the command line (and ccache's key), not only the
// bytes behind .incbin.
#ifndef SHARDLM_COMMON_BASE_EMBEDDED_FILE_H_
#define SHARDLM_COMMON_BASE_EMBEDDED_FILE_H_

#include <cstddef>
#include <string_view>

// clang-format off
#define SHARDLM_EMBED_FILE(symbol, path)                                        \
  __asm__(".pushsection .rodata,\"a\"\n"                                        \
          ".balign 64\n"                                                        \
          ".globl " #symbol "_begin\n"                                          \
          ".hidden " #symbol "_begin\n"                                         \
          #symbol "_begin:\n"                                                   \
          ".incbin \"" path "\"\n"                                              \
          ".globl " #symbol "_end\n"                                            \
          ".hidden " #symbol "_end\n"                                           \
          #symbol "_end:\n"                                                     \
          ".popsection\n");                                                     \
  extern "C" __attribute__((visibility("hidden"))) const char symbol##_begin[]; \
  extern "C" __attribute__((visibility("hidden"))) const char symbol##_end[]
// clang-format on

// The bytes SHARDLM_EMBED_FILE(symbol, ...) put in this binary.
#define SHARDLM_EMBEDDED_BYTES(symbol) \
  std::string_view(symbol##_begin, static_cast<size_t>(symbol##_end - symbol##_begin))

#endif  // SHARDLM_COMMON_BASE_EMBEDDED_FILE_H_
