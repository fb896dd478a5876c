// Escaping of text that comes from files or the network (GGUF names and
// metadata, request fields, peers' error messages) before it reaches a
// terminal, a log line or a proto3 `string`: a tensor named "\x1b[2J" must
// not clear the terminal of the person vetting the file, and a byte that is
// not UTF-8 must not make a strict client reject a whole reply.
#ifndef SHARDLM_COMMON_BASE_TEXT_ESCAPE_H_
#define SHARDLM_COMMON_BASE_TEXT_ESCAPE_H_

#include <string>
#include <string_view>

namespace shardlm {

// `text` with every byte that is not part of a printable, valid UTF-8
// character written as \xNN: C0 controls (ESC, NUL, CR, LF, TAB...), DEL,
// C1 controls (U+0080..U+009F, which some terminals also obey), and bytes
// of invalid or truncated UTF-8 sequences. A backslash becomes "\\" so the
// output can be read back unambiguously. Valid printable UTF-8 (any
// script) is kept as is. The result is always valid UTF-8.
std::string EscapeNonPrintable(std::string_view text);

// True when EscapeNonPrintable(text) would return `text` unchanged except
// for backslashes (i.e. nothing needs escaping but backslashes).
bool IsPrintableUtf8(std::string_view text);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_TEXT_ESCAPE_H_
