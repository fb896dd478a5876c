// GGUF parsing and validation (versions 2 and 3). Layout, little-endian:
//   magic "GGUF", u32 version, u64 n_tensors, u64 n_kv,
//   n_kv x (string key, u32 value_type, value),
//   n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset),
//   padding to general.alignment, then the data section.
// string = u64 length + bytes; array = u32 elem_type + u64 count + elements.
// Every count and length is bounded by the bytes left in the file before
// anything is allocated (a count that cannot fit is DATA_LOSS, like any other
// read past the end: the two are indistinguishable), and every tensor's extent is checked against the
// file size before TensorData can hand out a pointer.
#include "common/model/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf_cursor.h"
#include "common/base/status_macros.h"

namespace shardlm {
namespace {

// Debian's abseil has its own string_view type: StrCat needs this bridge.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

constexpr uint64_t kDefaultAlignment = 32;
// Smallest encodings, used to bound counts by the bytes that remain: a kv is
// at least a u64 key length, a u32 type and a one-byte value; a tensor info at
// least a u64 name length, u32 n_dims, one u64 dimension, u32 type, u64 offset.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// Encoded size of one array element, or 0 for types without a fixed size.
uint64_t FixedValueSize(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

bool IsKnownValueType(uint32_t raw) { return raw <= static_cast<uint32_t>(GgufValueType::kFloat64); }

}  // namespace

// Friend of GgufFile: fills its fields from a byte span. All errors go
// through the helpers below so that each names the file and what was read.
class GgufParser {
 public:
  GgufParser(GgufFile* file, const uint8_t* data, size_t size)
      : file_(file), cur_(data, size) {}

  absl::Status Parse();

 private:
  absl::Status Truncated(std::string_view what) const {
    return absl::DataLossError(absl::StrCat(file_->path_, ": truncated GGUF file: ", Av(what),
                                            " runs past the end of the file (", cur_.size(),
                                            " bytes, at offset ", cur_.offset(), ")"));
  }
  absl::Status Invalid(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(file_->path_, ": ", Av(what)));
  }

  template <typename T>
  absl::Status ReadScalar(T* out, std::string_view what) {
    if (!cur_.Read(out)) return Truncated(what);
    return absl::OkStatus();
  }
  bool ReadStringRaw(std::string* out);
  absl::Status ReadString(std::string* out, std::string_view what);
  bool DecodeFixed(GgufValueType type, GgufValue* value);
  absl::Status ReadValue(GgufValueType type, GgufValue* value, const std::string& key);
  absl::Status ReadArray(GgufValue* value, const std::string& key);
  absl::Status ReadTensorInfo(uint64_t index, GgufTensorInfo* info);
  absl::Status ApplyAlignment();
  absl::Status ValidateTensorExtents();

  GgufFile* file_;
  ByteCursor cur_;
};

bool GgufParser::ReadStringRaw(std::string* out) {
  uint64_t len = 0;
  std::string_view bytes;
  if (!cur_.Read(&len) || !cur_.ReadBytes(len, &bytes)) return false;
  out->assign(bytes.data(), bytes.size());
  return true;
}

absl::Status GgufParser::ReadString(std::string* out, std::string_view what) {
  if (!ReadStringRaw(out)) return Truncated(what);
  return absl::OkStatus();
}

// Decodes one fixed-size scalar into the GgufValue field of its type class.
bool GgufParser::DecodeFixed(GgufValueType type, GgufValue* v) {
  switch (type) {
    case GgufValueType::kUint8: { uint8_t x; if (!cur_.Read(&x)) return false; v->u = x; return true; }
    case GgufValueType::kUint16: { uint16_t x; if (!cur_.Read(&x)) return false; v->u = x; return true; }
    case GgufValueType::kUint32: { uint32_t x; if (!cur_.Read(&x)) return false; v->u = x; return true; }
    case GgufValueType::kUint64: { uint64_t x; if (!cur_.Read(&x)) return false; v->u = x; return true; }
    case GgufValueType::kBool: { uint8_t x; if (!cur_.Read(&x)) return false; v->u = x != 0; return true; }
    case GgufValueType::kInt8: { int8_t x; if (!cur_.Read(&x)) return false; v->i = x; return true; }
    case GgufValueType::kInt16: { int16_t x; if (!cur_.Read(&x)) return false; v->i = x; return true; }
    case GgufValueType::kInt32: { int32_t x; if (!cur_.Read(&x)) return false; v->i = x; return true; }
    case GgufValueType::kInt64: { int64_t x; if (!cur_.Read(&x)) return false; v->i = x; return true; }
    case GgufValueType::kFloat32: { float x; if (!cur_.Read(&x)) return false; v->f = x; return true; }
    case GgufValueType::kFloat64: { double x; if (!cur_.Read(&x)) return false; v->f = x; return true; }
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return false;  // not fixed-size; callers never pass these
  }
  return false;
}

absl::Status GgufParser::ReadValue(GgufValueType type, GgufValue* value, const std::string& key) {
  value->type = type;
  if (type == GgufValueType::kArray) return ReadArray(value, key);
  if (type == GgufValueType::kString) {
    return ReadString(&value->s, absl::StrCat("string value of key '", key, "'"));
  }
  if (!DecodeFixed(type, value)) return Truncated(absl::StrCat("value of key '", key, "'"));
  return absl::OkStatus();
}

absl::Status GgufParser::ReadArray(GgufValue* value, const std::string& key) {
  uint32_t raw_elem = 0;
  RETURN_IF_ERROR(ReadScalar(&raw_elem, absl::StrCat("element type of array '", key, "'")));
  if (!IsKnownValueType(raw_elem)) {
    return Invalid(absl::StrCat("array '", key, "' has unknown element type ", raw_elem));
  }
  const auto elem = static_cast<GgufValueType>(raw_elem);
  if (elem == GgufValueType::kArray) {
    // llama.cpp writes no nested arrays; refusing them keeps GgufValue flat.
    return absl::UnimplementedError(absl::StrCat(
        file_->path_, ": array '", key, "' holds arrays; nested arrays are not supported"));
  }
  uint64_t count = 0;
  RETURN_IF_ERROR(ReadScalar(&count, absl::StrCat("length of array '", key, "'")));
  // Bound the count before reserving: a string element takes at least its
  // 8-byte length, a fixed-size element its size.
  const uint64_t min_elem = elem == GgufValueType::kString ? 8 : FixedValueSize(elem);
  if (count > cur_.remaining() / min_elem) {
    return absl::DataLossError(absl::StrCat(
        file_->path_, ": array '", key, "' claims ", count, " elements of type ",
        Av(GgufValueTypeName(elem)), " but only ", cur_.remaining(), " bytes remain in the file"));
  }
  value->elem_type = elem;
  if (elem == GgufValueType::kString) {
    value->arr_s.resize(count);
    for (uint64_t j = 0; j < count; ++j) {
      if (!ReadStringRaw(&value->arr_s[j])) {
        return Truncated(absl::StrCat("element ", j, " of array '", key, "'"));
      }
    }
    return absl::OkStatus();
  }
  // Fixed-size elements: the bound above guarantees every read succeeds.
  switch (elem) {
    case GgufValueType::kFloat32: case GgufValueType::kFloat64: value->arr_f.reserve(count); break;
    case GgufValueType::kInt8: case GgufValueType::kInt16:
    case GgufValueType::kInt32: case GgufValueType::kInt64: value->arr_i.reserve(count); break;
    default: value->arr_u.reserve(count); break;
  }
  GgufValue scratch;
  for (uint64_t j = 0; j < count; ++j) {
    if (!DecodeFixed(elem, &scratch)) return Truncated(absl::StrCat("array '", key, "'"));
    switch (elem) {
      case GgufValueType::kFloat32:
      case GgufValueType::kFloat64:
        value->arr_f.push_back(scratch.f);
        break;
      case GgufValueType::kInt8:
      case GgufValueType::kInt16:
      case GgufValueType::kInt32:
      case GgufValueType::kInt64:
        value->arr_i.push_back(scratch.i);
        break;
      default:  // unsigned integers and bool
        value->arr_u.push_back(scratch.u);
        break;
    }
  }
  return absl::OkStatus();
}

absl::Status GgufParser::ReadTensorInfo(uint64_t index, GgufTensorInfo* info) {
  RETURN_IF_ERROR(ReadString(&info->name, absl::StrCat("name of tensor ", index)));
  const std::string tensor = absl::StrCat("tensor '", info->name, "'");
  uint32_t n_dims = 0;
  RETURN_IF_ERROR(ReadScalar(&n_dims, absl::StrCat("n_dims of ", tensor)));
  if (n_dims < 1 || n_dims > 4) {
    return Invalid(absl::StrCat(tensor, " has n_dims ", n_dims, " (must be 1..4)"));
  }
  info->n_dims = static_cast<int>(n_dims);
  int64_t n_elements = 1;
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne = 0;
    RETURN_IF_ERROR(ReadScalar(&ne, absl::StrCat("dimension ", d, " of ", tensor)));
    // ne is stored unsigned but used as int64 everywhere (as in ggml).
    if (ne == 0 || ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Invalid(absl::StrCat(tensor, " has invalid dimension ne[", d, "] = ",
                                  static_cast<int64_t>(ne), " (must be positive)"));
    }
    info->ne[d] = static_cast<int64_t>(ne);
    if (__builtin_mul_overflow(n_elements, info->ne[d], &n_elements)) {
      return Invalid(absl::StrCat(tensor, " has too many elements: the product of its dimensions overflows int64"));
    }
  }
  uint32_t raw_type = 0;
  RETURN_IF_ERROR(ReadScalar(&raw_type, absl::StrCat("type of ", tensor)));
  const std::optional<GgmlTypeInfo> type = LookupGgmlType(raw_type);
  if (!type.has_value()) {
    return absl::UnimplementedError(absl::StrCat(file_->path_, ": ", tensor,
                                                 " has unknown or unsupported ggml type ", raw_type));
  }
  info->type = type->type;
  if (info->ne[0] % type->block_size != 0) {
    return Invalid(absl::StrCat(tensor, " of type ", Av(type->name), " has row length ne[0] = ", info->ne[0],
                                ", not a multiple of the block size ", type->block_size));
  }
  // Bytes = rows x blocks per row x bytes per block, checked for overflow.
  uint64_t n_bytes = 0;
  const uint64_t row_bytes = static_cast<uint64_t>(info->ne[0] / type->block_size) * type->block_bytes;
  if (__builtin_mul_overflow(row_bytes, static_cast<uint64_t>(info->n_rows()), &n_bytes)) {
    return Invalid(absl::StrCat(tensor, " byte size overflows"));
  }
  info->n_bytes = n_bytes;
  RETURN_IF_ERROR(ReadScalar(&info->offset, absl::StrCat("data offset of ", tensor)));
  return absl::OkStatus();
}

absl::Status GgufParser::ApplyAlignment() {
  const GgufValue* v = file_->Find("general.alignment");
  if (v == nullptr) return absl::OkStatus();
  uint64_t alignment = 0;
  switch (v->type) {
    case GgufValueType::kUint8: case GgufValueType::kUint16:
    case GgufValueType::kUint32: case GgufValueType::kUint64:
      alignment = v->u;
      break;
    case GgufValueType::kInt8: case GgufValueType::kInt16:
    case GgufValueType::kInt32: case GgufValueType::kInt64:
      alignment = v->i > 0 ? static_cast<uint64_t>(v->i) : 0;
      break;
    default:
      return Invalid(absl::StrCat("general.alignment has type ", Av(GgufValueTypeName(v->type)),
                                  ", expected an unsigned integer"));
  }
  if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
    return Invalid(absl::StrCat("general.alignment = ", alignment, " is not a non-zero power of two"));
  }
  file_->alignment_ = alignment;
  return absl::OkStatus();
}

absl::Status GgufParser::ValidateTensorExtents() {
  const uint64_t data_size = file_->file_size_ - file_->data_offset_;
  for (const GgufTensorInfo& t : file_->tensors_) {
    if (t.offset % file_->alignment_ != 0) {
      return Invalid(absl::StrCat("tensor '", t.name, "' data offset ", t.offset,
                                  " is not a multiple of the alignment ", file_->alignment_));
    }
    if (t.offset > data_size || t.n_bytes > data_size - t.offset) {
      return absl::DataLossError(absl::StrCat(
          file_->path_, ": tensor '", t.name, "' data [", t.offset, ", +", t.n_bytes,
          ") runs past the end of the data section (", data_size, " bytes): truncated file?"));
    }
  }
  return absl::OkStatus();
}

absl::Status GgufParser::Parse() {
  std::string_view magic;
  if (!cur_.ReadBytes(4, &magic)) return Truncated("magic");
  if (magic != "GGUF") {
    return Invalid(absl::StrCat("not a GGUF file (magic bytes are not \"GGUF\")"));
  }
  uint32_t version = 0;
  RETURN_IF_ERROR(ReadScalar(&version, "version"));
  if (version == 1) {
    return absl::UnimplementedError(absl::StrCat(
        file_->path_, ": GGUF version 1 is obsolete (32-bit counts) and not supported; "
                      "re-convert the model with a current llama.cpp"));
  }
  if (version != 2 && version != 3) {
    const bool big_endian = version == 0x02000000 || version == 0x03000000;
    return absl::UnimplementedError(absl::StrCat(
        file_->path_, ": unsupported GGUF version ", version, " (supported: 2, 3)",
        big_endian ? "; this looks like a big-endian GGUF, which is not supported" : ""));
  }
  file_->version_ = version;
  uint64_t n_tensors = 0, n_kv = 0;
  RETURN_IF_ERROR(ReadScalar(&n_tensors, "tensor count"));
  RETURN_IF_ERROR(ReadScalar(&n_kv, "metadata count"));
  if (n_kv > cur_.remaining() / kMinKvBytes) {
    return absl::DataLossError(absl::StrCat(file_->path_, ": absurd metadata count ", n_kv, ": only ",
                                            cur_.remaining(), " bytes remain in the file"));
  }
  if (n_tensors > cur_.remaining() / kMinTensorInfoBytes) {
    return absl::DataLossError(absl::StrCat(file_->path_, ": absurd tensor count ", n_tensors,
                                            ": only ", cur_.remaining(), " bytes remain in the file"));
  }

  file_->metadata_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    GgufKeyValue kv;
    RETURN_IF_ERROR(ReadString(&kv.key, absl::StrCat("key of metadata entry ", k)));
    uint32_t raw_type = 0;
    RETURN_IF_ERROR(ReadScalar(&raw_type, absl::StrCat("value type of key '", kv.key, "'")));
    if (!IsKnownValueType(raw_type)) {
      return Invalid(absl::StrCat("key '", kv.key, "' has unknown value type ", raw_type));
    }
    RETURN_IF_ERROR(ReadValue(static_cast<GgufValueType>(raw_type), &kv.value, kv.key));
    if (!file_->metadata_index_.emplace(kv.key, file_->metadata_.size()).second) {
      return Invalid(absl::StrCat("duplicate metadata key '", kv.key, "'"));
    }
    file_->metadata_.push_back(std::move(kv));
  }
  RETURN_IF_ERROR(ApplyAlignment());

  file_->tensors_.reserve(n_tensors);
  for (uint64_t t = 0; t < n_tensors; ++t) {
    GgufTensorInfo info;
    RETURN_IF_ERROR(ReadTensorInfo(t, &info));
    if (!file_->tensor_index_.emplace(info.name, file_->tensors_.size()).second) {
      return Invalid(absl::StrCat("duplicate tensor name '", info.name, "'"));
    }
    file_->tensors_.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment. A file
  // without tensors (a vocab-only GGUF) may end before that padding.
  const uint64_t end_of_header = cur_.offset();
  const uint64_t pad = (file_->alignment_ - end_of_header % file_->alignment_) % file_->alignment_;
  if (pad > file_->file_size_ - end_of_header) {
    if (!file_->tensors_.empty()) return Truncated("padding before the tensor data");
    file_->data_offset_ = file_->file_size_;
    return absl::OkStatus();
  }
  file_->data_offset_ = end_of_header + pad;
  return ValidateTensorExtents();
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::OpenFromMemory(const uint8_t* data, size_t size,
                                                                  std::string name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->path_ = std::move(name);
  file->file_size_ = size;
  file->alignment_ = kDefaultAlignment;
  file->map_ = data;
  GgufParser parser(file.get(), data, size);
  RETURN_IF_ERROR(parser.Parse());
  return file;
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const std::string msg = absl::StrCat(path, ": cannot open: ", std::strerror(err));
    return err == ENOENT ? absl::NotFoundError(msg) : absl::PermissionDeniedError(msg);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    return absl::DataLossError(absl::StrCat(path, ": truncated GGUF file: the file is empty"));
  }
  // MAP_PRIVATE + PROT_READ: pages come straight from the page cache, shared
  // with every other process mapping the same model.
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);  // the mapping keeps the file alive
  if (map == MAP_FAILED) {
    return absl::ResourceExhaustedError(absl::StrCat(path, ": mmap of ", size,
                                                     " bytes failed: ", std::strerror(map_errno)));
  }
  auto file = OpenFromMemory(static_cast<const uint8_t*>(map), size, path);
  if (!file.ok()) {
    ::munmap(map, size);
    return file.status();
  }
  (*file)->owns_map_ = true;
  return file;
}

GgufFile::~GgufFile() {
  if (owns_map_ && map_ != nullptr) ::munmap(const_cast<uint8_t*>(map_), file_size_);
}

const uint8_t* GgufFile::TensorData(const GgufTensorInfo& tensor) const {
  return map_ + data_offset_ + tensor.offset;
}

void GgufFile::Prefetch(const GgufTensorInfo& tensor) const {
  if (!owns_map_ || tensor.n_bytes == 0) return;
  // madvise wants a page-aligned start; round the range out to whole pages.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(TensorData(tensor));
  const uintptr_t aligned = begin & ~(page - 1);
  const size_t len = static_cast<size_t>(begin + tensor.n_bytes - aligned);
  ::madvise(reinterpret_cast<void*>(aligned), len, MADV_WILLNEED);
}

void GgufFile::Evict(const uint8_t* data, size_t n_bytes) const {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data);
  const uintptr_t base = reinterpret_cast<uintptr_t>(map_);
  if (!owns_map_ || n_bytes == 0 || begin < base || begin + n_bytes > base + file_size_) return;
  // Only whole pages inside the range: the edge pages hold neighbours too.
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t first = (begin + page - 1) & ~(page - 1);
  const uintptr_t last = (begin + n_bytes) & ~(page - 1);
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

}  // namespace shardlm
