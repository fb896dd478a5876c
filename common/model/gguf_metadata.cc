// GGUF metadata access: value type names, lookups and the typed getters.
// Getters accept every encoding a converter might reasonably have chosen for
// a key (llama.cpp writes most counts as uint32, some tools int32 or uint64)
// and fail only when the value cannot be represented in the requested type.
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf.h"

namespace shardlm {
namespace {

// Debian's abseil has its own string_view type: StrCat needs this bridge.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsUnsigned(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 ||
         t == GgufValueType::kUint32 || t == GgufValueType::kUint64;
}
bool IsSigned(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}
bool IsFloat(GgufValueType t) {
  return t == GgufValueType::kFloat32 || t == GgufValueType::kFloat64;
}

std::string Describe(const GgufValue& v) {
  if (v.type == GgufValueType::kArray) {
    return absl::StrCat("array of ", Av(GgufValueTypeName(v.elem_type)));
  }
  return std::string(GgufValueTypeName(v.type));
}

}  // namespace

std::string_view GgufValueTypeName(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "unknown";
}

uint64_t GgufValue::array_size() const {
  if (type != GgufValueType::kArray) return 0;
  if (elem_type == GgufValueType::kString) return arr_s.size();
  if (IsFloat(elem_type)) return arr_f.size();
  if (IsSigned(elem_type)) return arr_i.size();
  return arr_u.size();  // unsigned and bool
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = metadata_index_.find(absl::string_view(key.data(), key.size()));
  return it == metadata_index_.end() ? nullptr : &metadata_[it->second].value;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(absl::string_view(name.data(), name.size()));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

// Shared lookup + error wording for the getters.
absl::StatusOr<const GgufValue*> Lookup(const GgufFile& file, std::string_view key) {
  const GgufValue* v = file.Find(key);
  if (v == nullptr) {
    return absl::NotFoundError(absl::StrCat(file.path(), ": metadata key '", Av(key), "' not found"));
  }
  return v;
}

absl::Status WrongType(const GgufFile& file, std::string_view key, const GgufValue& v,
                       std::string_view wanted) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": metadata key '", Av(key), "' is ",
                                                 Describe(v), ", expected ", Av(wanted)));
}

absl::Status OutOfRange(const GgufFile& file, std::string_view key, std::string_view value,
                        std::string_view wanted) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": metadata key '", Av(key), "' = ",
                                                 Av(value), " does not fit in ", Av(wanted)));
}

}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  if ((*v)->type != GgufValueType::kString) return WrongType(*this, key, **v, "a string");
  return (*v)->s;
}

absl::StatusOr<uint32_t> GgufFile::GetUint32(std::string_view key) const {
  auto i = GetInt64(key);
  if (!i.ok()) {
    // Re-word the only error GetInt64 can add (uint64 above int64 max).
    const GgufValue* v = Find(key);
    if (v != nullptr && v->type == GgufValueType::kUint64) {
      return OutOfRange(*this, key, absl::StrCat(v->u), "uint32");
    }
    return i.status();
  }
  if (*i < 0 || *i > std::numeric_limits<uint32_t>::max()) {
    return OutOfRange(*this, key, absl::StrCat(*i), "uint32");
  }
  return static_cast<uint32_t>(*i);
}

absl::StatusOr<int64_t> GgufFile::GetInt64(std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  const GgufValue& val = **v;
  if (IsSigned(val.type)) return val.i;
  if (IsUnsigned(val.type)) {
    if (val.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return OutOfRange(*this, key, absl::StrCat(val.u), "int64");
    }
    return static_cast<int64_t>(val.u);
  }
  return WrongType(*this, key, val, "an integer");
}

absl::StatusOr<float> GgufFile::GetFloat(std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  if (!IsFloat((*v)->type)) return WrongType(*this, key, **v, "float32 or float64");
  return static_cast<float>((*v)->f);
}

absl::StatusOr<bool> GgufFile::GetBool(std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  if ((*v)->type != GgufValueType::kBool) return WrongType(*this, key, **v, "bool");
  return (*v)->u != 0;
}

absl::StatusOr<const std::vector<std::string>*> GgufFile::GetStringArray(
    std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  if ((*v)->type != GgufValueType::kArray || (*v)->elem_type != GgufValueType::kString) {
    return WrongType(*this, key, **v, "array of string");
  }
  return &(*v)->arr_s;
}

absl::StatusOr<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  if ((*v)->type != GgufValueType::kArray || !IsFloat((*v)->elem_type)) {
    return WrongType(*this, key, **v, "array of float32 or float64");
  }
  return std::vector<float>((*v)->arr_f.begin(), (*v)->arr_f.end());
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  auto v = Lookup(*this, key);
  if (!v.ok()) return v.status();
  const GgufValue& val = **v;
  if (val.type != GgufValueType::kArray ||
      !(IsSigned(val.elem_type) || IsUnsigned(val.elem_type))) {
    return WrongType(*this, key, val, "array of integers");
  }
  if (IsSigned(val.elem_type)) return val.arr_i;
  std::vector<int64_t> out;
  out.reserve(val.arr_u.size());
  for (size_t j = 0; j < val.arr_u.size(); ++j) {
    if (val.arr_u[j] > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return OutOfRange(*this, key, absl::StrCat("element ", j, " = ", val.arr_u[j]), "int64");
    }
    out.push_back(static_cast<int64_t>(val.arr_u[j]));
  }
  return out;
}

}  // namespace shardlm
