// Where the tests find ../shared: the SHARDLM_TEST_DATA environment variable
// (set by .ci/run and the README's test command), else ../shared relative to
// the source tree.
#ifndef SHARDLM_TESTS_TEST_DATA_H_
#define SHARDLM_TESTS_TEST_DATA_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"

namespace shardlm::testing {

// Absolute path of the shared test-data folder; fails the test if missing.
std::string TestDataDir();
// TestDataDir() + "/" + relative.
std::string TestDataPath(const std::string& relative);
// Whole file as bytes; fails the test if unreadable.
std::string ReadFileOrDie(const std::string& path);

// The tokenizer of models/MODEL.gguf in the test data.
absl::StatusOr<std::unique_ptr<Tokenizer>> TestModelTokenizer(const std::string& model);
// Little-endian float32 file.
std::vector<float> ReadFloats(const std::string& path);
// A fresh temporary directory for this test (removed at exit is not needed).
std::string TempDir();

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_TEST_DATA_H_
