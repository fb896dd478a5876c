// f32 activations <-> shardlm.v1.Tensor (raw little-endian bytes with a dtype
// and a shape). Decoding treats the tensor as untrusted network input: the
// dtype must be known, every dimension non-negative, the element count
// (computed without overflow) must match the byte count exactly, and every
// value must be finite. Errors are INVALID_ARGUMENT and name the field.
#ifndef SHARDLM_COMMON_RPC_TENSOR_CODEC_H_
#define SHARDLM_COMMON_RPC_TENSOR_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "shardlm/v1/tensor.pb.h"

namespace shardlm {

// Bytes per element of `dtype`; 0 for DTYPE_UNSPECIFIED or unknown values.
size_t DTypeBytes(v1::DType dtype);
// "f32", "f16", "bf16" <-> DType (for flags); INVALID_ARGUMENT otherwise.
absl::StatusOr<v1::DType> ParseDType(const std::string& name);
const char* DTypeName(v1::DType dtype);

// Writes `values` as a tensor of `shape` (whose product must equal
// values.size(), our own invariant) in `dtype`. Reuses the capacity of
// out->data, so a message reused across calls allocates nothing once warm.
// INVALID_ARGUMENT if a value does not fit the dtype (|x| > 65504 in f16
// becomes inf, which the receiver would reject anyway: say so here, naming
// `field`).
absl::Status EncodeTensor(absl::Span<const float> values, absl::Span<const int64_t> shape,
                          v1::DType dtype, const std::string& field, v1::Tensor* out);

// Checks dtype, shape and byte count; returns the element count.
absl::StatusOr<int64_t> CheckTensor(const v1::Tensor& tensor, const std::string& field);

// Checks the tensor (as CheckTensor) and that its shape is exactly
// `expected_shape`.
absl::Status CheckTensorShape(const v1::Tensor& tensor, absl::Span<const int64_t> expected_shape,
                              const std::string& field);

// Decodes into dst[0, n), where n must equal the tensor's element count;
// rejects non-finite values. Call CheckTensor first (or CheckTensorShape).
absl::Status DecodeTensorInto(const v1::Tensor& tensor, const std::string& field, float* dst,
                              int64_t n);

// CheckTensor + resize + DecodeTensorInto.
absl::Status DecodeTensor(const v1::Tensor& tensor, const std::string& field,
                          std::vector<float>* out);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_RPC_TENSOR_CODEC_H_
