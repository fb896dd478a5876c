#include "worker/matmul.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>

#include "common/tensor_format.h"

namespace shardlm {
namespace {

// Rows per task: big enough to amortise scheduling, small enough that two
// threads balance on the 64-row matrices of small models.
constexpr int64_t kRowGrain = 16;
// Activation rows processed against one weight row before moving on: keeps
// that slice of quantized activations hot in L1/L2 for large batches.
constexpr int kTokenTile = 64;
static_assert(kTokenTile % 4 == 0, "vec_dot_x8 calls take aligned groups of up to 4 tokens");

}  // namespace

void MatMul(const WeightMatrix& w, const float* x, int n_tokens, float* y, MatMulScratch* scratch) {
  const TensorFormat& wf = Format(w.type);
  const GgmlType act_type = wf.vec_dot_type;
  const uint8_t* act = nullptr;
  size_t act_row_bytes = 0;
  if (act_type == GgmlType::kF32) {
    act = reinterpret_cast<const uint8_t*>(x);
    act_row_bytes = w.cols * sizeof(float);
  } else {
    // llama.cpp's activation quantizer (its from_float), not the weight one.
    const QuantizeRowFn quantize = Format(act_type).quantize_activation;
    act_row_bytes = *RowBytes(act_type, w.cols);
    scratch->quantized.resize(act_row_bytes * n_tokens);
    uint8_t* q = scratch->quantized.data();
    auto quantize_rows = [&](int64_t begin, int64_t end) {
      for (int64_t t = begin; t < end; ++t) quantize(x + t * w.cols, q + t * act_row_bytes, w.cols);
    };
    if (n_tokens > 1) {
      tbb::parallel_for(
          tbb::blocked_range<int64_t>(0, n_tokens, 4),
          [&](const tbb::blocked_range<int64_t>& r) { quantize_rows(r.begin(), r.end()); });
    } else {
      quantize_rows(0, n_tokens);
    }
    act = q;
  }
  // llama.cpp repacks such weights 8 rows at a time only when every row has a
  // group (ne[1] % 8 == 0); otherwise all rows take the plain vec_dot. Of a
  // batch of n >= 4 tokens its gemm kernel takes the first n - n % 4.
  if (wf.vec_dot_x8 != nullptr && w.rows % 8 == 0) {
    const VecDotX8Fn dot8 = wf.vec_dot_x8;
    const int gemm_tokens = n_tokens >= 4 ? n_tokens - n_tokens % 4 : 0;
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, w.rows / 8, kRowGrain / 8),
                      [&](const tbb::blocked_range<int64_t>& range) {
                        float out[4 * 8];
                        for (int t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
                          const int t1 = std::min(n_tokens, t0 + kTokenTile);
                          for (int64_t g = range.begin(); g < range.end(); ++g) {
                            const uint8_t* wr = w.row(8 * g);
                            // up to 4 tokens per call (kTokenTile % 4 == 0, so
                            // a call never straddles gemm_tokens)
                            for (int t = t0; t < t1; t += 4) {
                              const int n_act = std::min(4, t1 - t);
                              dot8(w.cols, wr, w.row_bytes, act + t * act_row_bytes, act_row_bytes,
                                   n_act, out, t < gemm_tokens);
                              for (int i = 0; i < n_act; ++i) {
                                std::copy(out + 8 * i, out + 8 * i + 8,
                                          y + static_cast<int64_t>(t + i) * w.rows + 8 * g);
                              }
                            }
                          }
                        }
                      });
    return;
  }
  // llamafile's sgemm (f32 / f16) takes batches when rows % 4 == 0.
  const VecDotFn dot = n_tokens >= 2 && wf.vec_dot_batch != nullptr && w.rows % 4 == 0
                           ? wf.vec_dot_batch
                           : wf.vec_dot;
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, w.rows, kRowGrain),
                    [&](const tbb::blocked_range<int64_t>& range) {
                      for (int t0 = 0; t0 < n_tokens; t0 += kTokenTile) {
                        const int t1 = std::min(n_tokens, t0 + kTokenTile);
                        for (int64_t r = range.begin(); r < range.end(); ++r) {
                          const uint8_t* wr = w.row(r);
                          for (int t = t0; t < t1; ++t) {
                            y[static_cast<int64_t>(t) * w.rows + r] =
                                dot(w.cols, wr, act + t * act_row_bytes);
                          }
                        }
                      }
                    });
}

void DequantizeRow(const WeightMatrix& w, int64_t r, float* out) {
  Format(w.type).dequantize(w.row(r), out, w.cols);
}

}  // namespace shardlm
