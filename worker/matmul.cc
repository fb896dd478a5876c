// y = W x as llama.cpp's CPU backend computes it: the activations quantized
// by its from_float, then the kernel it would pick for the weight type and
// the batch (common/kernels/tensor_format.h): vec_dot per row and token; for weights
// it repacks, 8 rows at once with its gemv (single tokens, batch tails) or
// gemm (groups of 4 tokens) order; for f32/f16 weights, llamafile's sgemm
// order for batches.
#include "worker/matmul.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <span>
#include <vector>

#include "common/base/logging.h"
#include "common/kernels/tensor_format.h"

namespace shardlm {
namespace {

// Rows per task: big enough to amortise scheduling, small enough that two
// threads balance on the 64-row matrices of small models.
constexpr int64_t kRowGrain = 16;
// Kernel calls (each up to 4 activation rows) made against one group of
// weight rows before moving on: keeps that slice of quantized activations hot
// in L1/L2 for large batches.
constexpr size_t kCallTile = 16;

using Call = MatMulCall;

// Each group's tokens as llama.cpp would run that group alone as one batch:
// with n >= 4 tokens its repacked gemm takes the first n - n % 4, the gemv
// the rest. A token's result depends on its order (gemm or gemv) and never on
// which tokens share a kernel call, so x8 calls take up to 4 consecutive
// tokens of one order across groups: a decode step of 8 one-token sequences
// is 2 calls that each unpack the weights once, not 8.
void PlanCalls(int n_tokens, std::span<const int> groups, bool x8, std::vector<Call>* calls) {
  calls->clear();
  const int one[] = {n_tokens};
  int t0 = 0;
  for (int size : groups.empty() ? std::span<const int>(one) : groups) {
    const int gemm_end = size >= 4 ? size - size % 4 : 0;
    for (int i = 0; i < size; ++i) {
      const Call token{t0 + i, 1, i < gemm_end, size >= 2};
      if (x8 && !calls->empty()) {
        Call& last = calls->back();
        if (last.count < 4 && last.gemm == token.gemm && last.batch == token.batch) {
          ++last.count;
          continue;
        }
      }
      calls->push_back(token);
    }
    t0 += size;
  }
}

// The activation rows as the kernels read them: x itself for f32 weights,
// else x quantized to the weight format's vec_dot_type.
struct Activations {
  const uint8_t* data;
  size_t row_bytes;
  int64_t n_blocks;                          // weight blocks per row
  const quant::ActivationBlockTerms* terms;  // n_blocks per row, or null
  const uint8_t* row(int t) const { return data + t * row_bytes; }
};

// llama.cpp's activation quantizer (its from_float), not the weight one.
// Interleaved kernels that want per-block terms of the activations get them
// in the same pass, while the row is hot.
Activations QuantizeActivations(const WeightMatrix& w, const TensorFormat& wf, const float* x,
                                int n_tokens, MatMulScratch* scratch) {
  const int64_t n_blocks = w.cols / wf.info.block_size;
  if (wf.vec_dot_type == GgmlType::kF32) {
    return {reinterpret_cast<const uint8_t*>(x), w.cols * sizeof(float), n_blocks, nullptr};
  }
  const QuantizeRowFn quantize = Format(wf.vec_dot_type).quantize_activation;
  const size_t row_bytes = *RowBytes(wf.vec_dot_type, w.cols);
  scratch->quantized.resize(row_bytes * n_tokens);
  uint8_t* q = scratch->quantized.data();
  auto* const terms_fn = w.interleaved() ? wf.interleaved_x8->block_terms : nullptr;
  if (terms_fn != nullptr) scratch->block_terms.resize(n_blocks * n_tokens);
  auto quantize_rows = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      quantize(x + t * w.cols, q + t * row_bytes, w.cols);
      if (terms_fn != nullptr) {
        terms_fn(q + t * row_bytes, w.cols, scratch->block_terms.data() + t * n_blocks);
      }
    }
  };
  if (n_tokens > 1) {
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, n_tokens, 4),
        [&](const tbb::blocked_range<int64_t>& r) { quantize_rows(r.begin(), r.end()); });
  } else {
    quantize_rows(0, n_tokens);
  }
  return {q, row_bytes, n_blocks, terms_fn != nullptr ? scratch->block_terms.data() : nullptr};
}

// Runs body(unit, c0, c1) over [0, units) in parallel: each task takes all its
// units against call_tile calls, then the next calls.
template <class Body>
void ForTiles(int64_t units, int64_t grain, std::span<const Call> calls, size_t call_tile,
              Body&& body) {
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, units, grain),
                    [&](const tbb::blocked_range<int64_t>& range) {
                      for (size_t c0 = 0; c0 < calls.size(); c0 += call_tile) {
                        const size_t c1 = std::min(calls.size(), c0 + call_tile);
                        for (int64_t u = range.begin(); u < range.end(); ++u) body(u, c0, c1);
                      }
                    });
}

// kGroups groups of 8 rows per task unit: group g (an interleaved group, or
// 8 plain rows) starts at base + g * group_stride; dot(group, n, call, out)
// writes out[8 n i + r] = dot(row 8g + r, activation call.t + i) for the n
// groups from `group` on (kGroups, fewer in the last unit).
template <int kGroups, class Dot>
void MatMulGroups(const WeightMatrix& w, const uint8_t* base, size_t group_stride,
                  std::span<const Call> calls, float* y, Dot&& dot) {
  const int64_t groups = w.rows / 8;
  ForTiles((groups + kGroups - 1) / kGroups, std::max<int64_t>(1, kRowGrain / (8 * kGroups)),
           calls, kCallTile, [&](int64_t u, size_t c0, size_t c1) {
             const int64_t g = kGroups * u;
             const int n = static_cast<int>(std::min<int64_t>(kGroups, groups - g));
             const uint8_t* group = base + g * group_stride;
             float out[4 * 8 * kGroups];
             for (size_t c = c0; c < c1; ++c) {
               const Call& call = calls[c];
               dot(group, n, call, out);
               for (int i = 0; i < call.count; ++i) {
                 std::copy(out + 8 * n * i, out + 8 * n * (i + 1),
                           y + static_cast<int64_t>(call.t + i) * w.rows + 8 * g);
               }
             }
           });
}

// Eight rows at a time: dot8(group, call, out) writes out[8 i + r].
template <class Dot8>
void MatMulX8(const WeightMatrix& w, const uint8_t* base, size_t group_stride,
              std::span<const Call> calls, float* y, Dot8&& dot8) {
  MatMulGroups<1>(w, base, group_stride, calls, y,
                  [&](const uint8_t* group, int, const Call& call, float* out) {
                    dot8(group, call, out);
                  });
}

// Sixteen rows (two interleaved groups) per call, for kernel sets with a
// 16-row product; a last odd group takes the 8-row kernel.
void MatMulInterleavedX16(const WeightMatrix& w, const InterleavedX8Kernels& k,
                          const Activations& act, std::span<const Call> calls, float* y) {
  const quant::ActivationBlockTerms* terms = k.block_terms != nullptr ? act.terms : nullptr;
  MatMulGroups<2>(w, w.data, w.group_bytes, calls, y,
                  [&](const uint8_t* group, int n, const Call& call, float* out) {
                    const quant::ActivationBlockTerms* t =
                        terms == nullptr ? nullptr : terms + call.t * act.n_blocks;
                    if (n == 2) {
                      k.gemm_x16(w.cols, group, w.group_bytes, act.row(call.t), act.row_bytes, t,
                                 act.n_blocks, call.count, out, call.gemm);
                    } else {
                      k.gemm(w.cols, group, act.row(call.t), act.row_bytes, t, act.n_blocks,
                             call.count, out, call.gemm);
                    }
                  });
}

void MatMulInterleavedX8(const WeightMatrix& w, const InterleavedX8Kernels& k,
                         const Activations& act, std::span<const Call> calls, float* y) {
  // Batches only: one token (decode) streams the weights from memory, where
  // the 8-row kernel reading one group after the other measured faster.
  const bool batched =
      std::any_of(calls.begin(), calls.end(), [](const Call& c) { return c.count > 1; });
  if (k.gemm_x16 != nullptr && batched) return MatMulInterleavedX16(w, k, act, calls, y);
  const quant::ActivationBlockTerms* terms = k.block_terms != nullptr ? act.terms : nullptr;
  MatMulX8(w, w.data, w.group_bytes, calls, y,
           [&](const uint8_t* group, const Call& call, float* out) {
             k.gemm(w.cols, group, act.row(call.t), act.row_bytes,
                    terms == nullptr ? nullptr : terms + call.t * act.n_blocks, act.n_blocks,
                    call.count, out, call.gemm);
           });
}

void MatMulPlainX8(const WeightMatrix& w, VecDotX8Fn dot8, const Activations& act,
                   std::span<const Call> calls, float* y) {
  MatMulX8(
      w, w.data, 8 * w.row_bytes, calls, y, [&](const uint8_t* rows, const Call& call, float* out) {
        dot8(w.cols, rows, w.row_bytes, act.row(call.t), act.row_bytes, call.count, out, call.gemm);
      });
}

// kTileRows rows x up to kTileActs consecutive one-token calls per kernel
// call; each output is exactly vec_dot's. Rows past the last whole tile take
// vec_dot.
void MatMulTile(const WeightMatrix& w, const TensorFormat& wf, const Activations& act,
                std::span<const Call> calls, float* y) {
  auto tile = [&](int64_t u, size_t c0, size_t c1) {
    const int64_t r0 = u * kTileRows;
    for (size_t c = c0; c < c1;) {
      const int t = calls[c].t;
      int n_act = 1;
      while (n_act < kTileActs && c + n_act < c1 && calls[c + n_act].t == t + n_act) ++n_act;
      if (r0 + kTileRows <= w.rows) {
        float out[kTileRows * kTileActs];
        wf.vec_dot_tile(w.cols, w.row(r0), w.row_bytes, act.row(t), act.row_bytes, n_act, out);
        for (int i = 0; i < n_act; ++i) {
          std::copy(out + kTileRows * i, out + kTileRows * (i + 1),
                    y + static_cast<int64_t>(t + i) * w.rows + r0);
        }
      } else {
        for (int i = 0; i < n_act; ++i) {
          for (int64_t r = r0; r < w.rows; ++r) {
            y[static_cast<int64_t>(t + i) * w.rows + r] =
                wf.vec_dot(w.cols, w.row(r), act.row(t + i));
          }
        }
      }
      c += n_act;
    }
  };
  const int64_t units = (w.rows + kTileRows - 1) / kTileRows;
  ForTiles(units, std::max<int64_t>(1, kRowGrain / kTileRows), calls,
           /*call_tile=*/kTileActs,  // one tile of tokens stays in L1 while the rows pass
           tile);
}

// One row and one token per kernel call; llamafile's sgemm (f32 / f16) takes
// the tokens of batches when rows % 4 == 0.
void MatMulVecDot(const WeightMatrix& w, const TensorFormat& wf, const Activations& act,
                  std::span<const Call> calls, float* y) {
  const VecDotFn batch_dot =
      wf.vec_dot_batch != nullptr && w.rows % 4 == 0 ? wf.vec_dot_batch : wf.vec_dot;
  ForTiles(w.rows, kRowGrain, calls, kCallTile, [&](int64_t r, size_t c0, size_t c1) {
    const uint8_t* wr = w.row(r);
    for (size_t c = c0; c < c1; ++c) {
      const Call& call = calls[c];
      y[static_cast<int64_t>(call.t) * w.rows + r] =
          (call.batch ? batch_dot : wf.vec_dot)(w.cols, wr, act.row(call.t));
    }
  });
}

}  // namespace

void MatMul(const WeightMatrix& w, const float* x, int n_tokens, float* y, MatMulScratch* scratch,
            std::span<const int> groups) {
  const TensorFormat& wf = Format(w.type);
  const Activations act = QuantizeActivations(w, wf, x, n_tokens, scratch);
  // llama.cpp repacks such weights 8 rows at a time only when every row has a
  // group (ne[1] % 8 == 0); otherwise all rows take the plain vec_dot.
  // Interleaved weights are always of such a type, with rows % 8 == 0.
  const bool x8 = wf.vec_dot_x8 != nullptr && w.rows % 8 == 0;
  PlanCalls(n_tokens, groups, x8, &scratch->calls);
  const std::span<const Call> calls = scratch->calls;
  if (w.interleaved()) {
    MatMulInterleavedX8(w, *wf.interleaved_x8, act, calls, y);
  } else if (x8) {
    MatMulPlainX8(w, wf.vec_dot_x8, act, calls, y);
  } else if (wf.vec_dot_tile != nullptr) {
    MatMulTile(w, wf, act, calls, y);
  } else {
    MatMulVecDot(w, wf, act, calls, y);
  }
}

bool Interleave(WeightMatrix* w, std::unique_ptr<uint8_t[]>* storage) {
  const InterleavedX8Kernels* k = Format(w->type).interleaved_x8;
  if (k == nullptr || w->interleaved() || w->rows % 8 != 0) return false;
  const size_t group_bytes =
      static_cast<size_t>(w->cols / Format(w->type).info.block_size) * k->block_bytes;
  auto out = std::make_unique_for_overwrite<uint8_t[]>(group_bytes * (w->rows / 8));
  uint8_t* dst = out.get();
  // Serial: runs once at load, before the stage's thread arena exists.
  for (int64_t g = 0; g < w->rows / 8; ++g) {
    k->interleave(w->row(8 * g), w->row_bytes, w->cols, dst + g * group_bytes);
  }
  w->data = dst;
  w->group_bytes = group_bytes;
  *storage = std::move(out);
  return true;
}

void DequantizeRow(const WeightMatrix& w, int64_t r, float* out) {
  SHARDLM_CHECK(!w.interleaved());  // embeddings are never interleaved
  Format(w.type).dequantize(w.row(r), out, w.cols);
}

}  // namespace shardlm
