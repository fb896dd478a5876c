#include "common/model/embedded/embedded_model.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace shardlm {

// embedded_bytes.cc: the .incbin'd file and the sha256 it was built from.
extern const char kEmbeddedModelSha256[];
const char* EmbeddedModelBegin();
size_t EmbeddedModelSize();

namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

// True when `path` holds exactly `bytes` (a cheap check at 1.2 MB, and it
// repairs a cache file that was truncated or edited).
bool FileHolds(const std::string& path, absl::string_view bytes) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return content == bytes;
}

absl::Status WriteAll(int fd, absl::string_view bytes, const std::string& path) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view EmbeddedModelBytes() {
  return absl::string_view(EmbeddedModelBegin(), EmbeddedModelSize());
}

std::string DefaultCacheDir() {
  if (std::string dir = Env("SHARDLM_CACHE_DIR"); !dir.empty()) return dir;
  if (std::string xdg = Env("XDG_CACHE_HOME"); !xdg.empty()) return xdg + "/shardlm";
  if (std::string home = Env("HOME"); !home.empty()) return home + "/.cache/shardlm";
  std::error_code ec;
  std::string tmp = std::filesystem::temp_directory_path(ec).string();
  if (ec) tmp = "/tmp";
  return absl::StrCat(tmp, "/shardlm-cache-", ::getuid());
}

absl::StatusOr<std::string> MaterializeEmbeddedModel(const std::string& cache_dir) {
  const absl::string_view bytes = EmbeddedModelBytes();
  const std::string hint = " (SHARDLM_CACHE_DIR chooses another folder, or give --model)";
  std::error_code ec;
  std::filesystem::create_directories(cache_dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the cache folder ", cache_dir, ": ", ec.message(), hint));
  }
  // Only a folder of our own: the workers mmap whatever file it holds later.
  struct stat st {};
  if (::stat(cache_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::UnavailableError(absl::StrCat(cache_dir, " is not a folder", hint));
  }
  if (st.st_uid != ::getuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::PermissionDeniedError(
        absl::StrCat("the cache folder ", cache_dir,
                     " belongs to another user or others may write to it", hint));
  }
  const std::string path = absl::StrCat(cache_dir, "/stories260K-",
                                        std::string(kEmbeddedModelSha256).substr(0, 16), ".gguf");
  if (FileHolds(path, bytes)) return path;

  std::string tmp = path + ".XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot write into ", cache_dir, ": ", std::strerror(errno), hint));
  }
  absl::Status written = WriteAll(fd, bytes, tmp);
  if (::close(fd) != 0 && written.ok()) {
    written =
        absl::UnavailableError(absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  // mkstemp makes 0600; others on the machine may read a public model.
  if (written.ok()) ::chmod(tmp.c_str(), 0644);
  if (written.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    written = absl::UnavailableError(
        absl::StrCat("cannot rename ", tmp, " to ", path, ": ", std::strerror(errno)));
  }
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    return written;
  }
  return path;
}

absl::StatusOr<std::string> DefaultModelPath() {
  return MaterializeEmbeddedModel(DefaultCacheDir());
}

}  // namespace shardlm
