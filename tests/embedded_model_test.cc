// The embedded default model: the bytes linked in are the repository's
// stories260K.gguf, they open as a GGUF, and materializing them into a cache
// folder writes once, repairs a damaged copy and refuses unsafe folders.
// Needs no test data (SHARDLM_EMBEDDED_SOURCE is the file in common/).
#include "common/model/embedded/embedded_model.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/model/gguf.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

using testing::ReadFileOrDie;
using testing::TempDir;

ino_t Inode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_ino;
}

TEST(EmbeddedModelTest, BytesAreTheRepositoryFile) {
  const std::string source = ReadFileOrDie(SHARDLM_EMBEDDED_SOURCE);
  EXPECT_EQ(source.size(), 1185376u);
  EXPECT_TRUE(EmbeddedModelBytes() == source);
}

TEST(EmbeddedModelTest, MaterializesOnceAndOpensAsStories260K) {
  const std::string dir = TempDir() + "/cache/shardlm";  // made as needed
  absl::StatusOr<std::string> path = MaterializeEmbeddedModel(dir);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(std::filesystem::path(*path).parent_path(), dir);
  EXPECT_EQ(ReadFileOrDie(*path), EmbeddedModelBytes());
  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(*path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->tensors().size(), 48u);

  // A second call finds the file and leaves it alone (same inode: no rewrite).
  const ino_t first = Inode(*path);
  absl::StatusOr<std::string> again = MaterializeEmbeddedModel(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *path);
  EXPECT_EQ(Inode(*again), first);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
}

TEST(EmbeddedModelTest, RewritesATruncatedOrEditedCopy) {
  const std::string dir = TempDir();
  absl::StatusOr<std::string> path = MaterializeEmbeddedModel(dir);
  ASSERT_TRUE(path.ok()) << path.status();
  std::filesystem::resize_file(*path, 1000);
  ASSERT_TRUE(MaterializeEmbeddedModel(dir).ok());
  EXPECT_EQ(ReadFileOrDie(*path), EmbeddedModelBytes());
  {
    std::fstream f(*path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(5000);
    f.put('\x7f');
  }
  ASSERT_TRUE(MaterializeEmbeddedModel(dir).ok());
  EXPECT_EQ(ReadFileOrDie(*path), EmbeddedModelBytes());
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
}

TEST(EmbeddedModelTest, RefusesAFolderOthersMayWriteAndAFileInTheWay) {
  const std::string open_dir = TempDir();
  ASSERT_EQ(::chmod(open_dir.c_str(), 0777), 0);
  absl::StatusOr<std::string> path = MaterializeEmbeddedModel(open_dir);
  EXPECT_EQ(path.status().code(), absl::StatusCode::kPermissionDenied) << path.status();
  EXPECT_NE(path.status().message().find("SHARDLM_CACHE_DIR"), std::string::npos);

  const std::string file = TempDir() + "/plain-file";
  std::ofstream(file) << "x";
  path = MaterializeEmbeddedModel(file + "/cache");
  EXPECT_FALSE(path.ok());
  EXPECT_NE(path.status().message().find(file), std::string::npos) << path.status();
}

TEST(EmbeddedModelTest, CacheDirFollowsTheEnvironment) {
  ::setenv("SHARDLM_CACHE_DIR", "/somewhere/cache", 1);
  EXPECT_EQ(DefaultCacheDir(), "/somewhere/cache");
  ::unsetenv("SHARDLM_CACHE_DIR");
  ::setenv("XDG_CACHE_HOME", "/xdg", 1);
  EXPECT_EQ(DefaultCacheDir(), "/xdg/shardlm");
  ::unsetenv("XDG_CACHE_HOME");
  ::setenv("HOME", "/home/someone", 1);
  EXPECT_EQ(DefaultCacheDir(), "/home/someone/.cache/shardlm");
}

}  // namespace
}  // namespace shardlm
