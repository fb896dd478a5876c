#include "common/base/logging.h"

#include "common/base/text_escape.h"

#include <sys/time.h>

#include <atomic>
#include <ctime>
#include <string>

namespace shardlm {
namespace {
std::atomic<int> g_min_level{static_cast<int>(LogLevel::kInfo)};
}  // namespace

void SetMinLogLevel(LogLevel level) { g_min_level.store(static_cast<int>(level)); }
LogLevel MinLogLevel() { return static_cast<LogLevel>(g_min_level.load()); }

void LogLine(LogLevel level, const char* file, int line, std::string_view message) {
  static constexpr char kLetters[] = {'D', 'I', 'W', 'E'};
  timeval tv;
  gettimeofday(&tv, nullptr);
  tm local;
  localtime_r(&tv.tv_sec, &local);
  std::string_view base(file);
  if (auto slash = base.rfind('/'); slash != std::string_view::npos) base.remove_prefix(slash + 1);
  // Messages quote names and errors from files and peers: a control byte
  // in them (ESC sequences, CR, NUL) must neither act on the terminal nor
  // forge another log line, so anything not printable UTF-8 is escaped.
  const std::string text = IsPrintableUtf8(message) ? std::string(message)
                                                     : EscapeNonPrintable(message);
  // One fwrite per line so concurrent threads never interleave inside a line.
  std::string out = absl::StrFormat("%c %02d:%02d:%02d.%03d %s:%d] %s\n",
                                    kLetters[static_cast<int>(level)], local.tm_hour, local.tm_min,
                                    local.tm_sec, static_cast<int>(tv.tv_usec / 1000), std::string(base), line,
                                    text);
  std::fwrite(out.data(), 1, out.size(), stderr);
}

}  // namespace shardlm
