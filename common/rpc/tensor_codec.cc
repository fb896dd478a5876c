#include "common/rpc/tensor_codec.h"

#include <bit>
#include <cmath>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/fp16.h"

namespace shardlm {
namespace {

// The wire format is little-endian; on a little-endian host f32 tensors are
// a plain memcpy.
static_assert(std::endian::native == std::endian::little, "tensor codec assumes little-endian");

// 16-bit rows by the portable conversions of fp16.h (bit-exact with F16C):
// the wire codec links no kernels, and a hop's few thousand values cost
// microseconds either way. Unaligned bytes are read with memcpy.
template <uint16_t (*kConvert)(float)>
void ToHalves(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = kConvert(src[i]);
}
template <float (*kConvert)(uint16_t)>
void FromHalves(const char* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    dst[i] = kConvert(h);
  }
}
// The conversion picked once per tensor, not per element.
void To16(const float* src, uint16_t* dst, int64_t n, v1::DType dtype) {
  dtype == v1::DTYPE_F16 ? ToHalves<Fp32ToFp16>(src, dst, n) : ToHalves<Fp32ToBf16>(src, dst, n);
}
void From16(const char* src, float* dst, int64_t n, v1::DType dtype) {
  dtype == v1::DTYPE_F16 ? FromHalves<Fp16ToFp32>(src, dst, n)
                         : FromHalves<Bf16ToFp32>(src, dst, n);
}

// True when every 16-bit value is finite: exponent field not all ones
// (f16: 5 bits at 10..14, bf16: 8 bits at 7..14).
bool All16Finite(const uint16_t* bits, int64_t n, v1::DType dtype) {
  const uint16_t exp_mask = dtype == v1::DTYPE_F16 ? 0x7C00 : 0x7F80;
  for (int64_t i = 0; i < n; ++i) {
    if ((bits[i] & exp_mask) == exp_mask) return false;
  }
  return true;
}

std::string ShapeText(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

size_t DTypeBytes(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F32:
      return 4;
    case v1::DTYPE_F16:
    case v1::DTYPE_BF16:
      return 2;
    default:
      return 0;
  }
}

absl::StatusOr<v1::DType> ParseDType(const std::string& name) {
  if (name == "f32") return v1::DTYPE_F32;
  if (name == "f16") return v1::DTYPE_F16;
  if (name == "bf16") return v1::DTYPE_BF16;
  return absl::InvalidArgumentError(absl::StrCat("unknown dtype '", name, "' (f32, f16 or bf16)"));
}

const char* DTypeName(v1::DType dtype) {
  // Indexed by the enum's wire value (tensor.proto).
  static constexpr const char* kNames[] = {"unspecified", "f32", "f16", "bf16"};
  const int i = static_cast<int>(dtype);
  return i >= 0 && i < static_cast<int>(std::size(kNames)) ? kNames[i] : "unspecified";
}

absl::Status EncodeTensor(absl::Span<const float> values, absl::Span<const int64_t> shape,
                          v1::DType dtype, const std::string& field, v1::Tensor* out) {
  const size_t elem = DTypeBytes(dtype);
  if (elem == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": cannot encode dtype ", static_cast<int>(dtype)));
  }
  out->set_dtype(dtype);
  out->mutable_shape()->Clear();
  for (int64_t d : shape) out->add_shape(d);
  std::string* data = out->mutable_data();
  // resize() on a reused string keeps its capacity: no allocation when warm.
  data->resize(values.size() * elem);
  if (dtype == v1::DTYPE_F32) {
    if (!values.empty()) std::memcpy(data->data(), values.data(), data->size());
    return absl::OkStatus();
  }
  auto* bits = reinterpret_cast<uint16_t*>(data->data());
  To16(values.data(), bits, static_cast<int64_t>(values.size()), dtype);
  if (!All16Finite(bits, static_cast<int64_t>(values.size()), dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a value is not finite or exceeds the range of ", DTypeName(dtype),
                     " (use f32 hidden states for this model)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> CheckTensor(const v1::Tensor& tensor, const std::string& field) {
  const size_t elem = DTypeBytes(tensor.dtype());
  if (elem == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".dtype: ", static_cast<int>(tensor.dtype()), " is not f32, f16 or bf16"));
  }
  const int64_t max_elems = static_cast<int64_t>(tensor.data().size() / elem);
  // Overflow-safe product: once it exceeds what the bytes can hold the
  // tensor is malformed, unless a later dimension is 0.
  int64_t count = 1;
  bool too_big = false, has_zero = false;
  for (int i = 0; i < tensor.shape_size(); ++i) {
    const int64_t d = tensor.shape(i);
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".shape[", i, "] is negative (", d, ")"));
    }
    if (d == 0) has_zero = true;
    if (!too_big && (__builtin_mul_overflow(count, d, &count) || count > max_elems)) too_big = true;
  }
  if (has_zero) count = 0;
  if ((too_big && !has_zero) || static_cast<uint64_t>(count) * elem != tensor.data().size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": shape ", ShapeText(tensor.shape()), " of ", DTypeName(tensor.dtype()),
        " does not match its ", tensor.data().size(), " bytes"));
  }
  return count;
}

absl::Status CheckTensorShape(const v1::Tensor& tensor, absl::Span<const int64_t> expected_shape,
                              const std::string& field) {
  const absl::StatusOr<int64_t> count = CheckTensor(tensor, field);
  if (!count.ok()) return count.status();
  if (absl::Span<const int64_t>(tensor.shape().data(), tensor.shape_size()) != expected_shape) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": shape ", ShapeText(tensor.shape()),
                                                   ", expected ", ShapeText(expected_shape)));
  }
  return absl::OkStatus();
}

absl::Status DecodeTensorInto(const v1::Tensor& tensor, const std::string& field, float* dst,
                              int64_t n) {
  const size_t elem = DTypeBytes(tensor.dtype());
  if (elem == 0 || tensor.data().size() != static_cast<uint64_t>(n) * elem) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": expected ", n, " elements of ",
                                                   DTypeName(tensor.dtype()), ", got ",
                                                   tensor.data().size(), " bytes"));
  }
  if (n == 0) return absl::OkStatus();
  const char* src = tensor.data().data();
  if (tensor.dtype() == v1::DTYPE_F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
  } else {
    From16(src, dst, n, tensor.dtype());
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(dst[i])) {
      return absl::InvalidArgumentError(absl::StrCat(field, ": element ", i, " is not finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status DecodeTensor(const v1::Tensor& tensor, const std::string& field,
                          std::vector<float>* out) {
  const absl::StatusOr<int64_t> count = CheckTensor(tensor, field);
  if (!count.ok()) return count.status();
  out->resize(static_cast<size_t>(*count));
  return DecodeTensorInto(tensor, field, out->data(), *count);
}

}  // namespace shardlm
