#include "common/model/gguf_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace shardlm {
namespace {

constexpr uint64_t kDefaultAlignment = 32;
constexpr uint32_t kVersion = 3;

absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

uint64_t PadTo(uint64_t n, uint64_t alignment) { return (alignment - n % alignment) % alignment; }

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));  // little-endian hosts only
}

void PutString(std::string* out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out->append(s.data(), s.size());
}

// Encodes one element of `type` from the GgufValue field of its class.
void PutScalar(std::string* out, GgufValueType type, uint64_t u, int64_t i, double f,
               std::string_view s) {
  switch (type) {
    case GgufValueType::kUint8: Put<uint8_t>(out, static_cast<uint8_t>(u)); break;
    case GgufValueType::kInt8: Put<int8_t>(out, static_cast<int8_t>(i)); break;
    case GgufValueType::kUint16: Put<uint16_t>(out, static_cast<uint16_t>(u)); break;
    case GgufValueType::kInt16: Put<int16_t>(out, static_cast<int16_t>(i)); break;
    case GgufValueType::kUint32: Put<uint32_t>(out, static_cast<uint32_t>(u)); break;
    case GgufValueType::kInt32: Put<int32_t>(out, static_cast<int32_t>(i)); break;
    case GgufValueType::kUint64: Put<uint64_t>(out, u); break;
    case GgufValueType::kInt64: Put<int64_t>(out, i); break;
    case GgufValueType::kFloat32: Put<float>(out, static_cast<float>(f)); break;
    case GgufValueType::kFloat64: Put<double>(out, f); break;
    case GgufValueType::kBool: Put<uint8_t>(out, u != 0); break;
    case GgufValueType::kString: PutString(out, s); break;
    case GgufValueType::kArray: SHARDLM_CHECK(false && "nested arrays are not representable"); break;
  }
}

void PutValue(std::string* out, const GgufValue& v) {
  Put<uint32_t>(out, static_cast<uint32_t>(v.type));
  if (v.type != GgufValueType::kArray) {
    PutScalar(out, v.type, v.u, v.i, v.f, v.s);
    return;
  }
  Put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
  Put<uint64_t>(out, v.array_size());
  for (uint64_t j = 0; j < v.array_size(); ++j) {
    switch (v.elem_type) {
      case GgufValueType::kString: PutString(out, v.arr_s[j]); break;
      case GgufValueType::kFloat32:
      case GgufValueType::kFloat64: PutScalar(out, v.elem_type, 0, 0, v.arr_f[j], {}); break;
      case GgufValueType::kInt8: case GgufValueType::kInt16:
      case GgufValueType::kInt32: case GgufValueType::kInt64:
        PutScalar(out, v.elem_type, 0, v.arr_i[j], 0, {});
        break;
      default: PutScalar(out, v.elem_type, v.arr_u[j], 0, 0, {}); break;
    }
  }
}

}  // namespace

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  SHARDLM_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0);
}

// general.alignment as the caller set it (any integer type), or nullopt.
std::optional<uint64_t> GgufWriter::AlignmentKey() const {
  for (const auto& kv : metadata_) {
    if (kv.key != "general.alignment") continue;
    return kv.value.type == GgufValueType::kInt8 || kv.value.type == GgufValueType::kInt16 ||
                   kv.value.type == GgufValueType::kInt32 || kv.value.type == GgufValueType::kInt64
               ? static_cast<uint64_t>(kv.value.i)
               : kv.value.u;
  }
  return std::nullopt;
}

GgufWriter::~GgufWriter() {
  if (file_ != nullptr) {
    std::fclose(file_);
    ::unlink(tmp_path_.c_str());
  }
}

GgufValue& GgufWriter::Slot(std::string_view key) {
  SHARDLM_CHECK(!opened_ && "metadata set after Open()");
  for (auto& kv : metadata_) {
    if (kv.key == key) {
      kv.value = GgufValue();
      return kv.value;
    }
  }
  metadata_.push_back(GgufKeyValue{std::string(key), GgufValue()});
  return metadata_.back().value;
}

#define SHARDLM_SCALAR_SETTER(Name, CppType, Enum, field) \
  void GgufWriter::Name(std::string_view key, CppType v) { \
    GgufValue& slot = Slot(key);                           \
    slot.type = GgufValueType::Enum;                       \
    slot.field = v;                                        \
  }
SHARDLM_SCALAR_SETTER(SetUint8, uint8_t, kUint8, u)
SHARDLM_SCALAR_SETTER(SetInt8, int8_t, kInt8, i)
SHARDLM_SCALAR_SETTER(SetUint16, uint16_t, kUint16, u)
SHARDLM_SCALAR_SETTER(SetInt16, int16_t, kInt16, i)
SHARDLM_SCALAR_SETTER(SetUint32, uint32_t, kUint32, u)
SHARDLM_SCALAR_SETTER(SetInt32, int32_t, kInt32, i)
SHARDLM_SCALAR_SETTER(SetUint64, uint64_t, kUint64, u)
SHARDLM_SCALAR_SETTER(SetInt64, int64_t, kInt64, i)
SHARDLM_SCALAR_SETTER(SetFloat32, float, kFloat32, f)
SHARDLM_SCALAR_SETTER(SetFloat64, double, kFloat64, f)
SHARDLM_SCALAR_SETTER(SetBool, bool, kBool, u)
#undef SHARDLM_SCALAR_SETTER

void GgufWriter::SetString(std::string_view key, std::string_view v) {
  GgufValue& slot = Slot(key);
  slot.type = GgufValueType::kString;
  slot.s = std::string(v);
}

void GgufWriter::SetStringArray(std::string_view key, std::vector<std::string> v) {
  GgufValue& slot = Slot(key);
  slot.type = GgufValueType::kArray;
  slot.elem_type = GgufValueType::kString;
  slot.arr_s = std::move(v);
}

void GgufWriter::SetFloatArray(std::string_view key, const std::vector<float>& v) {
  GgufValue& slot = Slot(key);
  slot.type = GgufValueType::kArray;
  slot.elem_type = GgufValueType::kFloat32;
  slot.arr_f.assign(v.begin(), v.end());
}

void GgufWriter::SetInt32Array(std::string_view key, const std::vector<int32_t>& v) {
  GgufValue& slot = Slot(key);
  slot.type = GgufValueType::kArray;
  slot.elem_type = GgufValueType::kInt32;
  slot.arr_i.assign(v.begin(), v.end());
}

void GgufWriter::SetValue(std::string_view key, GgufValue value) {
  SHARDLM_CHECK(value.type != GgufValueType::kArray || value.elem_type != GgufValueType::kArray);
  Slot(key) = std::move(value);
}

absl::Status GgufWriter::AddTensorInfo(std::string_view name, GgmlType type,
                                       std::vector<int64_t> ne) {
  if (opened_) return absl::FailedPreconditionError("AddTensorInfo after Open()");
  const std::string tensor = absl::StrCat("tensor '", Av(name), "'");
  if (ne.empty() || ne.size() > 4) {
    return absl::InvalidArgumentError(absl::StrCat(tensor, ": ", ne.size(), " dimensions (must be 1..4)"));
  }
  for (const auto& t : tensors_) {
    if (t.name == name) return absl::InvalidArgumentError(absl::StrCat("duplicate ", tensor));
  }
  GgufTensorInfo info;
  info.name = std::string(name);
  info.type = type;
  info.n_dims = static_cast<int>(ne.size());
  int64_t n = 1;
  for (size_t d = 0; d < ne.size(); ++d) {
    if (ne[d] <= 0 || __builtin_mul_overflow(n, ne[d], &n)) {
      return absl::InvalidArgumentError(absl::StrCat(tensor, ": invalid dimension ne[", d, "] = ", ne[d]));
    }
    info.ne[d] = ne[d];
  }
  const std::optional<size_t> row = RowBytes(type, ne[0]);
  if (!row.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(tensor, ": row length ", ne[0], " is not a multiple of ",
                                                   TypeInfo(type).name, "'s block size ",
                                                   TypeInfo(type).block_size));
  }
  info.n_bytes = *row * static_cast<uint64_t>(info.n_rows());
  info.offset = data_size_;
  data_size_ += info.n_bytes + PadTo(info.n_bytes, alignment_);
  tensors_.push_back(std::move(info));
  return absl::OkStatus();
}

std::string GgufWriter::SerializeHeader() const {
  // A non-default alignment must be recorded; it goes first unless the
  // caller placed general.alignment themselves (copying a file keeps order).
  const bool add_alignment = alignment_ != kDefaultAlignment && !AlignmentKey().has_value();
  std::string out = "GGUF";
  Put<uint32_t>(&out, kVersion);
  Put<uint64_t>(&out, tensors_.size());
  Put<uint64_t>(&out, metadata_.size() + (add_alignment ? 1 : 0));
  if (add_alignment) {
    PutString(&out, "general.alignment");
    GgufValue v;
    v.type = GgufValueType::kUint32;
    v.u = alignment_;
    PutValue(&out, v);
  }
  for (const auto& kv : metadata_) {
    PutString(&out, kv.key);
    PutValue(&out, kv.value);
  }
  for (const auto& t : tensors_) {
    PutString(&out, t.name);
    Put<uint32_t>(&out, static_cast<uint32_t>(t.n_dims));
    for (int d = 0; d < t.n_dims; ++d) Put<uint64_t>(&out, static_cast<uint64_t>(t.ne[d]));
    Put<uint32_t>(&out, static_cast<uint32_t>(t.type));
    Put<uint64_t>(&out, t.offset);
  }
  out.append(PadTo(out.size(), alignment_), '\0');
  return out;
}

uint64_t GgufWriter::FileSize() const { return SerializeHeader().size() + data_size_; }

absl::Status GgufWriter::Fail(absl::Status status) {
  if (error_.ok()) error_ = status;
  return error_;
}

absl::Status GgufWriter::Write(const void* data, size_t n) {
  if (memory_ != nullptr) {
    memory_->append(static_cast<const char*>(data), n);
    return absl::OkStatus();
  }
  if (std::fwrite(data, 1, n, file_) != n) {
    return Fail(absl::DataLossError(absl::StrCat(tmp_path_, ": write failed: ", std::strerror(errno))));
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::WritePadding(uint64_t n) {
  static const char kZeros[256] = {};
  while (n > 0) {
    const size_t chunk = n < sizeof(kZeros) ? static_cast<size_t>(n) : sizeof(kZeros);
    RETURN_IF_ERROR(Write(kZeros, chunk));
    n -= chunk;
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::CheckAlignmentKey() const {
  const std::optional<uint64_t> key = AlignmentKey();
  if (key.has_value() && *key != alignment_) {
    return absl::FailedPreconditionError(absl::StrCat("general.alignment is set to ", *key,
                                                      " but the writer aligns to ", alignment_));
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Open(const std::string& path) {
  if (opened_) return absl::FailedPreconditionError("GgufWriter opened twice");
  RETURN_IF_ERROR(CheckAlignmentKey());
  path_ = path;
  tmp_path_ = path + ".tmp";
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (file_ == nullptr) {
    return Fail(absl::PermissionDeniedError(absl::StrCat(tmp_path_, ": cannot create: ", std::strerror(errno))));
  }
  std::setvbuf(file_, nullptr, _IOFBF, 1 << 20);
  opened_ = true;
  const std::string header = SerializeHeader();
  return Write(header.data(), header.size());
}

absl::Status GgufWriter::OpenInMemory(std::string* out) {
  if (opened_) return absl::FailedPreconditionError("GgufWriter opened twice");
  RETURN_IF_ERROR(CheckAlignmentKey());
  memory_ = out;
  memory_->clear();
  opened_ = true;
  const std::string header = SerializeHeader();
  return Write(header.data(), header.size());
}

absl::Status GgufWriter::WriteTensorData(std::string_view name, const void* data, size_t n) {
  RETURN_IF_ERROR(error_);
  if (!opened_ || finished_) return absl::FailedPreconditionError("WriteTensorData outside Open()/Finish()");
  if (current_ >= tensors_.size() || tensors_[current_].name != name) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "WriteTensorData('", Av(name), "'): tensors must be written in declaration order; expected ",
        current_ < tensors_.size() ? absl::StrCat("'", tensors_[current_].name, "'") : "none")));
  }
  const GgufTensorInfo& t = tensors_[current_];
  if (n > t.n_bytes - current_done_) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': ", current_done_ + n,
                                                        " bytes written, it has ", t.n_bytes)));
  }
  RETURN_IF_ERROR(Write(data, n));
  current_done_ += n;
  if (current_done_ == t.n_bytes) {
    RETURN_IF_ERROR(WritePadding(PadTo(t.n_bytes, alignment_)));
    ++current_;
    current_done_ = 0;
  }
  return absl::OkStatus();
}

absl::Status GgufWriter::Finish() {
  RETURN_IF_ERROR(error_);
  if (!opened_ || finished_) return absl::FailedPreconditionError("Finish without Open()");
  if (current_ < tensors_.size()) {
    return Fail(absl::FailedPreconditionError(absl::StrCat(
        "Finish: tensor '", tensors_[current_].name, "' has ", current_done_, " of ",
        tensors_[current_].n_bytes, " bytes (and ", tensors_.size() - current_ - 1, " more to go)")));
  }
  finished_ = true;
  if (memory_ != nullptr) return absl::OkStatus();
  std::FILE* f = file_;
  file_ = nullptr;
  if (std::fclose(f) != 0) {
    ::unlink(tmp_path_.c_str());
    return Fail(absl::DataLossError(absl::StrCat(tmp_path_, ": close failed: ", std::strerror(errno))));
  }
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
    ::unlink(tmp_path_.c_str());
    return Fail(absl::DataLossError(absl::StrCat(path_, ": rename failed: ", std::strerror(errno))));
  }
  return absl::OkStatus();
}

}  // namespace shardlm
