// GGUF reader: memory-maps a GGUF file (versions 2 and 3), parses and
// validates its header, metadata and tensor table before any tensor byte is
// touched, and hands out typed metadata and tensor views.
//
// Every failure is an absl::Status that names the file and the key or tensor
// at fault; malformed input never crashes and never reads out of bounds.
#ifndef SHARDLM_COMMON_MODEL_GGUF_H_
#define SHARDLM_COMMON_MODEL_GGUF_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/model/ggml_type.h"

namespace shardlm {

// Metadata value types, numbered as in the GGUF specification.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

std::string_view GgufValueTypeName(GgufValueType type);

// One metadata value. Scalars live in the field matching their type class;
// arrays hold their elements in the vector matching the element type class.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  // Scalar payloads (type != kArray):
  uint64_t u = 0;     // unsigned integers and bool
  int64_t i = 0;      // signed integers
  double f = 0;       // float32 / float64
  std::string s;      // string
  // Array payloads (type == kArray):
  GgufValueType elem_type = GgufValueType::kUint8;
  std::vector<uint64_t> arr_u;        // unsigned integer and bool elements
  std::vector<int64_t> arr_i;         // signed integer elements
  std::vector<double> arr_f;          // float elements
  std::vector<std::string> arr_s;     // string elements
  uint64_t array_size() const;
};

struct GgufKeyValue {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  int n_dims = 0;
  // ne[0] is the innermost (contiguous) dimension: a matrix [ne0, ne1] has
  // ne1 rows of ne0 elements. Unused dimensions are 1.
  std::array<int64_t, 4> ne = {1, 1, 1, 1};
  uint64_t offset = 0;   // relative to the start of the data section
  uint64_t n_bytes = 0;  // validated: fits in the file
  int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
  int64_t n_rows() const { return ne[1] * ne[2] * ne[3]; }
};

class GgufFile {
 public:
  // Opens, maps and validates `path`. Errors name the file and the key or
  // tensor at fault (NOT_FOUND, INVALID_ARGUMENT, UNIMPLEMENTED for v1 or an
  // unknown tensor type, DATA_LOSS for truncation).
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);

  // Parses a GGUF image already in memory, with the same validation as Open.
  // The bytes are not copied: they must outlive the returned file. `name`
  // stands in for the path in error messages. Used by the fuzzer and by tests
  // that feed corrupt headers without touching the disk.
  static absl::StatusOr<std::unique_ptr<GgufFile>> OpenFromMemory(const uint8_t* data,
                                                                  size_t size,
                                                                  std::string name);

  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t file_size() const { return file_size_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute

  // Metadata in file order.
  const std::vector<GgufKeyValue>& metadata() const { return metadata_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters. NOT_FOUND names the missing key; INVALID_ARGUMENT names a
  // key of the wrong type or a value out of range for the requested type.
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<uint32_t> GetUint32(std::string_view key) const;  // any integer type in range
  absl::StatusOr<int64_t> GetInt64(std::string_view key) const;    // any integer type in range
  absl::StatusOr<float> GetFloat(std::string_view key) const;      // float32 or float64
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<const std::vector<std::string>*> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;

  // Tensors in file order, and by name.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;
  // Pointer to the tensor's bytes inside the mapping (validated in Open).
  const uint8_t* TensorData(const GgufTensorInfo& tensor) const;

  // Advises the kernel to read these bytes ahead (MADV_WILLNEED) and to keep
  // them; used by a worker to page in only its own layers.
  void Prefetch(const GgufTensorInfo& tensor) const;
  // Drops this process's mapping of the pages that lie wholly inside
  // [data, data + n_bytes), a range of TensorData (MADV_DONTNEED; the file is
  // read-only, so a later read just pages them in again): a worker that has
  // copied a tensor into another layout does not keep both resident.
  // Ranges outside the mapping are ignored.
  void Evict(const uint8_t* data, size_t n_bytes) const;

 private:
  GgufFile() = default;

  std::string path_;
  uint32_t version_ = 0;
  uint64_t file_size_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  const uint8_t* map_ = nullptr;
  bool owns_map_ = false;  // true when map_ is our own mmap (munmap in the destructor)
  std::vector<GgufKeyValue> metadata_;
  absl::flat_hash_map<std::string, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;

  friend class GgufParser;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_GGUF_H_
