#include "common/fetch/model_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace shardlm {
namespace {

uint64_t Fnv1a64(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// The last path segment of a URL without query, or "model.gguf".
std::string FileName(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  std::string name = path.substr(path.rfind('/') + 1);
  if (name.empty() || name == "." || name == "..") return "model.gguf";
  return name;
}

}  // namespace

std::string DefaultModelCacheDir() {
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg == '/') {
    return absl::StrCat(xdg, "/shardlm/models");
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    return absl::StrCat(home, "/.cache/shardlm/models");
  }
  return "";
}

absl::StatusOr<std::unique_ptr<ModelCacheEntry>> ModelCacheEntry::Open(
    const std::string& cache_dir, const std::string& url, uint64_t size, const std::string& etag) {
  if (cache_dir.empty()) {
    return absl::InvalidArgumentError(
        "no model cache directory: set --model-cache-dir (or HOME / XDG_CACHE_HOME)");
  }
  std::unique_ptr<ModelCacheEntry> e(new ModelCacheEntry());
  e->size_ = size;
  e->dir_ = absl::StrFormat("%s/%016x", cache_dir, Fnv1a64(absl::StrCat(url, "\n", size, "\n", etag)));
  std::error_code ec;
  std::filesystem::create_directories(e->dir_, ec);
  if (ec) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot create the model cache directory ", e->dir_, ": ", ec.message()));
  }
  e->path_ = absl::StrCat(e->dir_, "/", FileName(url));
  e->manifest_ = absl::StrCat(e->dir_, "/ranges");
  e->fd_ = ::open(e->path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (e->fd_ < 0) return Errno(absl::StrCat("cannot open ", e->path_));
  struct stat st;
  if (::fstat(e->fd_, &st) != 0) return Errno(absl::StrCat("cannot stat ", e->path_));
  // Never shrink: a sibling process may be writing to the same entry.
  if (static_cast<uint64_t>(st.st_size) != size && ::ftruncate(e->fd_, static_cast<off_t>(size)) != 0) {
    return Errno(absl::StrCat("cannot size ", e->path_, " to ", size, " bytes"));
  }
  // The first line says what the entry is, for a human looking at the cache.
  const int m = ::open(e->manifest_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (m >= 0) {
    const std::string head = absl::StrCat("# shardlm model cache: ", url, " size ", size,
                                          " etag ", etag.empty() ? "-" : etag, "\n");
    const bool ok = ::write(m, head.data(), head.size()) == static_cast<ssize_t>(head.size());
    ::close(m);
    if (!ok) return Errno(absl::StrCat("cannot write ", e->manifest_));
  } else if (errno != EEXIST) {
    return Errno(absl::StrCat("cannot create ", e->manifest_));
  }
  return e;
}

ModelCacheEntry::~ModelCacheEntry() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<ByteRange> ModelCacheEntry::Complete() const {
  std::ifstream in(manifest_);
  std::vector<ByteRange> ranges;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    ByteRange r;
    // A torn last line (crash mid-append) fails to parse and is ignored.
    if (f.size() != 3 || f[2] != "ok" || !absl::SimpleAtoi(f[0], &r.offset) ||
        !absl::SimpleAtoi(f[1], &r.length) || r.offset > size_ || r.length > size_ - r.offset) {
      continue;
    }
    ranges.push_back(r);
  }
  return MergeRanges(std::move(ranges));
}

std::vector<ByteRange> ModelCacheEntry::Missing(const std::vector<ByteRange>& wanted) const {
  return SubtractRanges(wanted, Complete());
}

absl::Status ModelCacheEntry::Write(uint64_t offset, const char* data, size_t n) {
  if (offset > size_ || n > size_ - offset) {
    return absl::InternalError(absl::StrCat("write past the end of ", path_));
  }
  while (n > 0) {
    const ssize_t w = ::pwrite(fd_, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Errno(absl::StrCat("cannot write ", path_));
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

absl::Status ModelCacheEntry::Read(uint64_t offset, size_t n, std::string* out) const {
  out->resize(n);
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd_, out->data() + done, n - done, static_cast<off_t>(offset + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return Errno(absl::StrCat("cannot read ", path_));
    done += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

absl::Status ModelCacheEntry::MarkComplete(const ByteRange& range) {
  if (::fdatasync(fd_) != 0) return Errno(absl::StrCat("cannot sync ", path_));
  const int m = ::open(manifest_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (m < 0) return Errno(absl::StrCat("cannot open ", manifest_));
  const std::string line = absl::StrCat(range.offset, " ", range.length, " ok\n");
  ::flock(m, LOCK_EX);
  const bool ok = ::write(m, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::flock(m, LOCK_UN);
  ::close(m);
  if (!ok) return Errno(absl::StrCat("cannot append to ", manifest_));
  return absl::OkStatus();
}

}  // namespace shardlm
