// Quantized matrix products: y = W x for a batch of activation rows, with the
// activations quantized to the weight type's partner format first (q8_0 for
// q4_0/q5_0/q8_0, q8_1 for q4_1/q5_1, q8_K for K-quants, f16 for f16), as
// llama.cpp does, and summed as its CPU backend sums them, to the bit.
#ifndef SHARDLM_WORKER_MATMUL_H_
#define SHARDLM_WORKER_MATMUL_H_

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/model/ggml_type.h"
#include "common/kernels/quant/blocks.h"

namespace shardlm {

// A 2-D weight tensor inside the mapped GGUF: `rows` rows of `cols` elements.
struct WeightMatrix {
  const uint8_t* data = nullptr;
  GgmlType type = GgmlType::kF32;
  int64_t cols = 0;  // ne[0]: the input dimension
  int64_t rows = 0;  // ne[1]: the output dimension
  size_t row_bytes = 0;
  // Non-zero: stored in the type's interleaved layout (TensorFormat::
  // interleaved_x8): rows 8g..8g+7 form one group of group_bytes at
  // group(g); single rows are not readable.
  size_t group_bytes = 0;
  bool interleaved() const { return group_bytes != 0; }
  const uint8_t* row(int64_t r) const { return data + r * row_bytes; }
  const uint8_t* group(int64_t g) const { return data + g * group_bytes; }
};

// One kernel call of MatMul: activation rows [t, t + count).
struct MatMulCall {
  int t;
  int count;   // up to 4 for vec_dot_x8, else 1
  bool gemm;   // part of llama.cpp's 4-token gemm (vec_dot_x8)
  bool batch;  // in a batch of >= 2 (llamafile sgemm for f32 / f16 weights)
};

// Reusable buffers so the decode loop does not allocate per token.
struct MatMulScratch {
  std::vector<uint8_t> quantized;  // activation rows in the partner format
  std::vector<MatMulCall> calls;
  std::vector<quant::ActivationBlockTerms> block_terms;  // interleaved q4_0: per activation block
};

// Interleaved copy of `w` (rows % 8 == 0 and the type has a layout, else
// returns false and leaves `w` alone): fills `storage` and points w at it.
bool Interleave(WeightMatrix* w, std::unique_ptr<uint8_t[]>* storage);

// y[t * w.rows + r] = dot(W[r, :], x[t * w.cols : ...]) for t < n_tokens.
// Runs in parallel over rows in the calling oneTBB arena; each weight row is
// read once for the whole batch.
//
// `groups`: sizes of consecutive runs of x's rows that llama.cpp would have
// evaluated as one batch each (in a stage: one sequence's tokens). Its
// kernels depend on the batch size (4-token gemm for repacked weights,
// sgemm for batches of f32 / f16), so each group gets exactly the numbers it
// would get alone, whatever shares the call. Empty: one group of n_tokens.
void MatMul(const WeightMatrix& w, const float* x, int n_tokens, float* y, MatMulScratch* scratch,
            std::span<const int> groups = {});

// Dequantizes row r of `w` into `out` (w.cols floats): embedding lookups.
void DequantizeRow(const WeightMatrix& w, int64_t r, float* out);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_MATMUL_H_
