// GGUF v3 writer that streams: metadata and the tensor table are declared up
// front, the header is written by Open(), then each tensor's bytes are
// appended in declaration order (in as many chunks as the caller likes), so a
// multi-GB model never has to be in memory at once.
//
//   GgufWriter w;
//   w.SetString("general.architecture", "llama");
//   RETURN_IF_ERROR(w.AddTensorInfo("output_norm.weight", GgmlType::kF32, {n_embd}));
//   RETURN_IF_ERROR(w.Open(path));
//   RETURN_IF_ERROR(w.WriteTensorData("output_norm.weight", bytes, n_bytes));
//   RETURN_IF_ERROR(w.Finish());
//
// A file is written to PATH.tmp and renamed on Finish(), so an interrupted run
// never leaves a plausible-looking truncated model behind.
#ifndef SHARDLM_COMMON_MODEL_GGUF_WRITER_H_
#define SHARDLM_COMMON_MODEL_GGUF_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/model/ggml_type.h"
#include "common/model/gguf.h"

namespace shardlm {

class GgufWriter {
 public:
  // `alignment` must be a power of two; a value other than GGUF's default 32
  // is recorded as general.alignment (first, unless the caller sets that key
  // itself, to the same value, e.g. when copying another file's metadata).
  explicit GgufWriter(uint64_t alignment = 32);
  ~GgufWriter();  // an unfinished file is removed
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Metadata, written in the order first set; setting a key again replaces
  // its value in place (GGUF readers refuse duplicate keys).
  void SetUint8(std::string_view key, uint8_t v);
  void SetInt8(std::string_view key, int8_t v);
  void SetUint16(std::string_view key, uint16_t v);
  void SetInt16(std::string_view key, int16_t v);
  void SetUint32(std::string_view key, uint32_t v);
  void SetInt32(std::string_view key, int32_t v);
  void SetUint64(std::string_view key, uint64_t v);
  void SetInt64(std::string_view key, int64_t v);
  void SetFloat32(std::string_view key, float v);
  void SetFloat64(std::string_view key, double v);
  void SetBool(std::string_view key, bool v);
  void SetString(std::string_view key, std::string_view v);
  void SetStringArray(std::string_view key, std::vector<std::string> v);
  void SetFloatArray(std::string_view key, const std::vector<float>& v);
  void SetInt32Array(std::string_view key, const std::vector<int32_t>& v);
  // Any value, e.g. one copied from another GgufFile. Nested arrays are not
  // representable in GgufValue and so cannot be written.
  void SetValue(std::string_view key, GgufValue value);

  // Declares the next tensor: ne[0] is the row length; 1..4 dimensions, each
  // positive, ne[0] a multiple of the type's block size, names unique.
  absl::Status AddTensorInfo(std::string_view name, GgmlType type, std::vector<int64_t> ne);

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // Bytes of the whole file / of the data section, known once every tensor
  // is declared (the header size depends on the tensor table).
  uint64_t FileSize() const;
  uint64_t DataSize() const { return data_size_; }

  // Writes the header to `path`.tmp; no metadata or tensor may be added after.
  absl::Status Open(const std::string& path);
  // Same, into memory (tests, fuzz seeds): `out` receives the whole file.
  absl::Status OpenInMemory(std::string* out);

  // Appends bytes of tensor `name`, which must be the tensor being written
  // (the first incomplete one in declaration order). Padding to the
  // alignment is added once the tensor's n_bytes have been written.
  absl::Status WriteTensorData(std::string_view name, const void* data, size_t n);

  // Checks that every tensor is complete, flushes and renames PATH.tmp to PATH.
  absl::Status Finish();

  // The encoded header (magic through padding before the data section).
  std::string SerializeHeader() const;

 private:
  GgufValue& Slot(std::string_view key);
  std::optional<uint64_t> AlignmentKey() const;
  absl::Status CheckAlignmentKey() const;
  absl::Status Write(const void* data, size_t n);
  absl::Status WritePadding(uint64_t n);
  absl::Status Fail(absl::Status status);

  uint64_t alignment_;
  std::vector<GgufKeyValue> metadata_;
  std::vector<GgufTensorInfo> tensors_;
  uint64_t data_size_ = 0;  // sum of padded tensor sizes

  // Streaming state.
  bool opened_ = false;
  bool finished_ = false;
  std::FILE* file_ = nullptr;
  std::string* memory_ = nullptr;
  std::string path_, tmp_path_;
  size_t current_ = 0;          // index of the tensor being written
  uint64_t current_done_ = 0;   // bytes of it written so far
  absl::Status error_;          // first write error: later calls return it
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_GGUF_WRITER_H_
