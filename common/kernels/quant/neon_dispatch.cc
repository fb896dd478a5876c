// The quant::neon entry points: each forwards to the dot-product build of
// its kernel (neon_dotprod, `sdot`) when this CPU has the ARMv8.2 dot product
// (HWCAP_ASIMDDP), else to the plain ARMv8.0 NEON build (neon_base). Both
// builds compute the same bits; the check is one predictable branch per
// call, not per block.
#include <cstddef>
#include <cstdint>

#include "common/kernels/cpu_features.h"
#include "common/kernels/quant/kernels_neon.h"

namespace shardlm::quant::neon {
namespace {

// Read once, on first use (not at static initialization: no order issue).
bool HasDotProd() {
  static const bool dotprod = HostCpu().neon_dotprod;  // getauxval(AT_HWCAP) & HWCAP_ASIMDDP
  return dotprod;
}

// Calls the build of one kernel this CPU runs.
template <auto kBase, auto kDot, class... Args>
[[gnu::always_inline]] inline auto Call(Args... args) {
  return HasDotProd() ? kDot(args...) : kBase(args...);
}

}  // namespace

bool UsesDotProd() { return HasDotProd(); }

#define SHARDLM_DISPATCH(Name, Params, Args) \
  auto Name Params { return Call<neon_base::Name, neon_dotprod::Name> Args; }

SHARDLM_DISPATCH(DequantizeQ4_0, (const void* s, float* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(DequantizeQ8_0, (const void* s, float* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(QuantizeQ8_0, (const float* s, void* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(QuantizeQ8_1, (const float* s, void* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(QuantizeActivationQ8_0, (const float* s, void* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(QuantizeActivationQ8_1, (const float* s, void* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(DequantizeF16, (const void* s, float* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(DequantizeBF16, (const void* s, float* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(QuantizeF16, (const float* s, void* d, int64_t n)->void, (s, d, n))
SHARDLM_DISPATCH(SwiGlu, (int64_t n, const float* g, const float* u, float* o)->void, (n, g, u, o))
SHARDLM_DISPATCH(SoftmaxExp, (int64_t n, const float* x, float m, float* y)->double, (n, x, m, y))
#define SHARDLM_MIX(Name)                                                            \
  SHARDLM_DISPATCH(Name,                                                             \
                   (int64_t n, const float* p, const void* const* r, int64_t of,     \
                    int64_t d, int sl, float* sc, float* o)                          \
                       ->void,                                                       \
                   (n, p, r, of, d, sl, sc, o))
SHARDLM_MIX(MixRowsF32)
SHARDLM_MIX(MixRowsF16)
#undef SHARDLM_MIX
SHARDLM_DISPATCH(QuantizeQ8_K, (const float* s, void* d, int64_t n)->void, (s, d, n))

#define SHARDLM_VEC_DOT(Name) \
  SHARDLM_DISPATCH(Name, (int64_t n, const void* w, const void* a)->float, (n, w, a))
SHARDLM_VEC_DOT(VecDotF32)
SHARDLM_VEC_DOT(VecDotF16)
SHARDLM_VEC_DOT(VecDotBF16)
SHARDLM_VEC_DOT(VecDotBatchF32)
SHARDLM_VEC_DOT(VecDotBatchF16)
SHARDLM_VEC_DOT(VecDotQ4_0)
SHARDLM_VEC_DOT(VecDotQ4_1)
SHARDLM_VEC_DOT(VecDotQ5_0)
SHARDLM_VEC_DOT(VecDotQ5_1)
SHARDLM_VEC_DOT(VecDotQ8_0)
SHARDLM_VEC_DOT(VecDotQ2_K)
SHARDLM_VEC_DOT(VecDotQ3_K)
SHARDLM_VEC_DOT(VecDotQ4_K)
SHARDLM_VEC_DOT(VecDotQ5_K)
SHARDLM_VEC_DOT(VecDotQ6_K)

#define SHARDLM_TILE(Name)                                                                    \
  SHARDLM_DISPATCH(                                                                           \
      Name,                                                                                   \
      (int64_t n, const void* w, size_t rb, const void* a, size_t as, int k, float* o)->void, \
      (n, w, rb, a, as, k, o))
SHARDLM_TILE(VecDotTileQ4_0)
SHARDLM_TILE(VecDotTileQ4_1)
SHARDLM_TILE(VecDotTileQ5_0)
SHARDLM_TILE(VecDotTileQ5_1)
SHARDLM_TILE(VecDotTileQ8_0)
SHARDLM_TILE(VecDotTileQ3_K)
SHARDLM_TILE(VecDotTileQ5_K)
SHARDLM_TILE(VecDotTileQ6_K)

#define SHARDLM_X8(Name)                                                                       \
  SHARDLM_DISPATCH(                                                                            \
      Name,                                                                                    \
      (int64_t n, const void* w, size_t rb, const void* a, size_t as, int k, float* o, bool g) \
          ->void,                                                                              \
      (n, w, rb, a, as, k, o, g))
SHARDLM_X8(VecDotX8Q4_0)
SHARDLM_X8(VecDotX8Q2_K)
SHARDLM_X8(VecDotX8Q4_K)
SHARDLM_DISPATCH(GemmQ4_0x8,
                 (int64_t n, const void* w, const void* a, size_t as, const ActivationBlockTerms* t,
                  size_t ts, int k, float* o, bool g)
                     ->void,
                 (n, w, a, as, t, ts, k, o, g))
SHARDLM_DISPATCH(GemmQ4_Kx8,
                 (int64_t n, const void* w, const void* a, size_t as, const ActivationBlockTerms* t,
                  size_t ts, int k, float* o, bool g)
                     ->void,
                 (n, w, a, as, t, ts, k, o, g))

#undef SHARDLM_X8
#undef SHARDLM_TILE
#undef SHARDLM_VEC_DOT
#undef SHARDLM_DISPATCH

}  // namespace shardlm::quant::neon
