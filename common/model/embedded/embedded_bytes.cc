// The bytes of stories260K.gguf, put into .rodata by the assembler's .incbin
// (GNU as and clang's integrated assembler both have it): no generated source,
// no xxd, and the file is read at build time only. CMake passes the file's
// absolute path as SHARDLM_EMBEDDED_MODEL_FILE and its sha256 as
// SHARDLM_EMBEDDED_MODEL_SHA256, so a changed model changes the command line
// (and ccache's key), not only the bytes behind .incbin.
#include <cstddef>

// One assembler line per string:
// clang-format off
__asm__(
    ".pushsection .rodata,\"a\"\n"
    ".balign 64\n"
    ".globl shardlm_embedded_model_begin\n"
    ".hidden shardlm_embedded_model_begin\n"
    "shardlm_embedded_model_begin:\n"
    ".incbin \"" SHARDLM_EMBEDDED_MODEL_FILE "\"\n"
    ".globl shardlm_embedded_model_end\n"
    ".hidden shardlm_embedded_model_end\n"
    "shardlm_embedded_model_end:\n"
    ".popsection\n");
// clang-format on

// Hidden, like in the assembly: the linker resolves them inside this binary,
// with PC-relative addressing and no text relocations.
extern "C" __attribute__((visibility("hidden"))) const char shardlm_embedded_model_begin[];
extern "C" __attribute__((visibility("hidden"))) const char shardlm_embedded_model_end[];

namespace shardlm {

// The sha256 the bytes were built from (hex), for the cache file's name.
extern const char kEmbeddedModelSha256[];
const char kEmbeddedModelSha256[] = SHARDLM_EMBEDDED_MODEL_SHA256;

const char* EmbeddedModelBegin() { return shardlm_embedded_model_begin; }
size_t EmbeddedModelSize() {
  return static_cast<size_t>(shardlm_embedded_model_end - shardlm_embedded_model_begin);
}

}  // namespace shardlm
