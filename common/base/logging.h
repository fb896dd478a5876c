// A tiny logging header: abseil 20220623 (Debian 12) has no absl/log and no
// CHECK. SHARDLM_CHECK is for our own invariants only, never for bytes that
// came from a file or the network (those get an absl::Status).
#ifndef SHARDLM_COMMON_BASE_LOGGING_H_
#define SHARDLM_COMMON_BASE_LOGGING_H_

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shardlm {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Messages below this level are dropped. Set once at start-up by main().
void SetMinLogLevel(LogLevel level);
LogLevel MinLogLevel();

// Writes "I 12:34:56.789 file.cc:42] message" to stderr, one line, atomically.
// A message that is not printable UTF-8 (control bytes, newlines, invalid
// bytes) is written through EscapeNonPrintable (text_escape.h).
void LogLine(LogLevel level, const char* file, int line, std::string_view message);

}  // namespace shardlm

#define SHARDLM_LOG(level, ...)                                                       \
  do {                                                                                \
    if (::shardlm::LogLevel::level >= ::shardlm::MinLogLevel())                       \
      ::shardlm::LogLine(::shardlm::LogLevel::level, __FILE__, __LINE__,              \
                         absl::StrFormat(__VA_ARGS__));                               \
  } while (0)

#define SHARDLM_CHECK(cond)                                                           \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: internal invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

#endif  // SHARDLM_COMMON_BASE_LOGGING_H_
