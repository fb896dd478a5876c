#include "tests/test_data.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/model/gguf.h"

namespace shardlm::testing {

std::string TestDataDir() {
  const char* env = std::getenv("SHARDLM_TEST_DATA");
  std::string dir = env != nullptr && *env != '\0' ? env : SHARDLM_DEFAULT_TEST_DATA;
  if (!std::filesystem::is_directory(dir)) {
    ADD_FAILURE() << "test data folder '" << dir
                  << "' not found: set SHARDLM_TEST_DATA to the shared/ folder";
  }
  return std::filesystem::absolute(dir).string();
}

std::string TestDataPath(const std::string& relative) { return TestDataDir() + "/" + relative; }

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<float> ReadFloats(const std::string& path) {
  std::string bytes = ReadFileOrDie(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

std::string TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "shardlm_test_XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
  return tmpl;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> TestModelTokenizer(const std::string& model) {
  absl::StatusOr<std::unique_ptr<GgufFile>> file =
      GgufFile::Open(TestDataPath("models/" + model + ".gguf"));
  if (!file.ok()) return file.status();
  return Tokenizer::FromGguf(**file);
}

}  // namespace shardlm::testing
