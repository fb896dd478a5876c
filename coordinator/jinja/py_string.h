// Python str semantics on UTF-8 bytes: lengths and indexes count code points,
// and strip()/split() without arguments use Unicode whitespace (U+3000,
// U+00A0, ...), as Jinja2's `|trim` and `.strip()` do.
#ifndef SHARDLM_COORDINATOR_JINJA_PY_STRING_H_
#define SHARDLM_COORDINATOR_JINJA_PY_STRING_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace shardlm::jinja {

// Byte offset of every code point start, then s.size(). Invalid UTF-8 bytes
// count as one code point each (the text is never rejected).
std::vector<size_t> CodePointOffsets(std::string_view s);
size_t CodePointCount(std::string_view s);
// Python's str.isspace() for one code point.
bool IsPySpace(char32_t c);

// str.strip/lstrip/rstrip: `chars` absent strips whitespace, else any code
// point in `chars`.
std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right);
// str.split(sep, maxsplit): without `sep`, runs of whitespace and no empty
// pieces. maxsplit < 0: no limit.
std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit);
// str.splitlines(): breaks at \n, \r\n, \r, \v, \f, \x1c-\x1e, U+0085,
// U+2028, U+2029; no empty piece after a final break.
std::vector<std::string> PySplitLines(std::string_view s);
// str.upper()/lower()/title()/capitalize() for ASCII letters (other code
// points unchanged).
std::string PyUpper(std::string_view s);
std::string PyLower(std::string_view s);
std::string PyTitle(std::string_view s);
std::string PyCapitalize(std::string_view s);
// str.replace(old, new, count); count < 0: all.
std::string PyReplace(std::string_view s, std::string_view from, std::string_view to,
                      int64_t count);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_PY_STRING_H_
