// Bit-exact ggml block layouts (ggml-common.h) of every quantized type this
// engine reads or writes. A row of n elements is n / block_size consecutive
// blocks. All f16 fields are raw IEEE half bits (see common/base/fp16.h).
//
// "Legacy" types quantize blocks of 32 with one scale (and a min for the _1
// types); "K-quants" use super-blocks of 256 split into 16 or 8 sub-blocks
// with quantized per-sub-block scales (and mins) times a super-block scale.
#ifndef SHARDLM_COMMON_KERNELS_QUANT_BLOCKS_H_
#define SHARDLM_COMMON_KERNELS_QUANT_BLOCKS_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shardlm::quant {

constexpr int kQK = 32;           // legacy block size
constexpr int kQKK = 256;         // K-quant super-block size
constexpr int kKScaleBytes = 12;  // 8 scales + 8 mins of 6 bits (q4_K, q5_K)

// q4_0: x = d * (q - 8), q in [0, 15]; element j in the low nibble of qs[j],
// element j + 16 in the high nibble (NOT sequential nibbles).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// q4_1: x = d * q + m, q in [0, 15]; nibble order as q4_0.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// q5_0: x = d * (q - 16), q in [0, 31]; low 4 bits as q4_0, bit 4 of element
// j is bit j of the little-endian uint32 qh.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// q5_1: x = d * q + m, q in [0, 31]; bit layout as q5_0.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// q8_0: x = d * q, q in [-127, 127] (files may hold -128).
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Per block of a q8_0 activation row, what the interleaved q4_0 kernel needs
// besides the levels, computed once per matmul in the quantization pass: the
// scale as a float, and offset = 8 * sum(q), since the interleaved weights
// store their levels unsigned (w = u - 8): sum w q = sum u q - offset.
struct ActivationBlockTerms {
  float d;
  int32_t offset;
};

// q4_0 x 8 rows, interleaved (this engine's load-time layout, not a GGUF
// type): block ib of 8 consecutive rows. d[r] is row r's scale; byte
// 32 k + 4 r + e of qs is byte 4 k + e of row r's qs (k < 4, e < 4). So one
// 32-byte load holds elements 4k..4k+3 (low nibbles) and 16+4k..16+4k+3
// (high nibbles) of all 8 rows, 4 bytes per row: a multiply-add against one
// activation's 4 bytes broadcast leaves each row's sum in its own lane, with
// no horizontal reduction. Same size as the 8 plain blocks.
struct BlockQ4_0x8 {
  uint16_t d[8];
  uint8_t qs[8 * kQK / 2];
};
static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0));

// q8_1 (activations for q4_1/q5_1): as q8_0 plus s = d * sum(qs), so the
// weight's min term m * sum(x) costs one multiply per block.
struct BlockQ8_1 {
  uint16_t d;
  uint16_t s;
  int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

// q2_K: 16 sub-blocks of 16. x = d * (sc & 15) * q - dmin * (sc >> 4),
// q in [0, 3]. Element 128h + 32k + l (l < 32) is bits 2k..2k+1 of
// qs[32h + l]; sub-block j = element / 16 uses scales[j].
struct BlockQ2_K {
  uint8_t scales[kQKK / 16];
  uint8_t qs[kQKK / 4];
  uint16_t d;
  uint16_t dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// q3_K: 16 sub-blocks of 16. x = d * (sc - 32) * (q - 4 * !hbit), low 2 bits
// of q placed as in q2_K, hbit of element 128h + 32k + l is bit 4h + k of
// hmask[l]. The 16 six-bit scales: low 4 bits in scales[0..7] (nibbles, j
// and j + 8), high 2 bits in scales[8..11] (bits 2(j/4) of byte 8 + j%4).
struct BlockQ3_K {
  uint8_t hmask[kQKK / 8];
  uint8_t qs[kQKK / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// q4_K: 8 sub-blocks of 32. x = d * sc_j * q - dmin * m_j, q in [0, 15],
// sc_j and m_j are 6-bit (see UnpackScaleMinK4). Element 64g + l (l < 32) is
// the low nibble of qs[32g + l], element 64g + 32 + l its high nibble.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// q5_K: q4_K plus a fifth bit: bit c of qh[l] is bit 4 of element 32c + l.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQKK / 8];
  uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// q6_K: 16 sub-blocks of 16. x = d * scales[j] * (q - 32), q in [0, 63].
// In half h (128 elements), element 32k + l: low 4 bits are the low (k = 0,1)
// or high (k = 2,3) nibble of ql[64h + l + 32 (k & 1)], high 2 bits are bits
// 2k..2k+1 of qh[32h + l].
struct BlockQ6_K {
  uint8_t ql[kQKK / 2];
  uint8_t qh[kQKK / 4];
  int8_t scales[kQKK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// q4_K x 8 rows, interleaved (load-time layout, not a GGUF type): super-
// block i of 8 consecutive rows, scales and mins unpacked to bytes as
// [sub-block][row]. qs holds 4 groups g of 8 chunks m of 32 bytes: byte
// 256 g + 32 m + 4 r + e is byte 32 g + 4 m + e of row r's qs, so the low
// nibbles of one chunk are elements 64g + 4m .. +3 of all 8 rows and the high
// nibbles elements 64g + 32 + 4m .. +3. 1184 bytes (8 plain blocks: 1152).
struct BlockQ4_Kx8 {
  uint16_t d[8];
  uint16_t dmin[8];
  uint8_t scales[8][8];  // [sub-block j][row r]
  uint8_t mins[8][8];
  uint8_t qs[8 * kQKK / 2];
};
static_assert(sizeof(BlockQ4_Kx8) == 1184);

// q8_K (activations for K-quants): float scale, q in [-127, 127], and the sum
// of each group of 16 qs so the weights' min terms need no extra pass.
struct BlockQ8_K {
  float d;
  int8_t qs[kQKK];
  int16_t bsums[kQKK / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// ggml's nearest_int: adding 1.5 * 2^23 leaves the float's ulp at 1, so the
// FPU's round-to-nearest-even rounds x to an integer, read from the low
// mantissa bits. Valid for |x| <= 2^22; quantizers never exceed that.
[[gnu::always_inline]] inline int NearestInt(float x) {
  const float biased = x + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, sizeof(bits));
  return (bits & 0x007FFFFF) - 0x00400000;
}

// The helpers below are used by the scalar files and by the -mavx2 files:
// always_inline keeps an AVX2-compiled out-of-line copy from being linked
// into the scalar code (one-definition rule with different target flags).

// The value of largest magnitude among x[0..n) (the first one on ties), its
// magnitude in *amax (0 for all zeros): ggml's quantizers divide by the
// signed value so that it maps exactly onto the end level.
[[gnu::always_inline]] inline float SignedAbsMax(const float* x, int n, float* amax) {
  float max = 0;
  *amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > *amax) {
      *amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Row i of rows `stride` bytes apart from `base` (weights, or activations),
// as its blocks.
template <class Block>
[[gnu::always_inline]] inline const Block* RowAt(const void* base, size_t stride, int i) {
  return reinterpret_cast<const Block*>(static_cast<const uint8_t*>(base) + i * stride);
}

// Shared by the q4_K and q5_K kernels (scalar and SIMD): the 12 scale bytes
// hold eight 6-bit scales and eight 6-bit mins. For j < 4: sc = b[j] & 63,
// m = b[j + 4] & 63. For j >= 4: the low 4 bits are the nibbles of b[j + 4]
// and the high 2 bits are the top bits of b[j - 4] (sc) and b[j] (m).
[[gnu::always_inline]] inline void UnpackScaleMinK4(const uint8_t* b, uint8_t* sc, uint8_t* m) {
  for (int j = 0; j < 4; ++j) {
    sc[j] = b[j] & 63;
    m[j] = b[j + 4] & 63;
  }
  for (int j = 4; j < 8; ++j) {
    sc[j] = static_cast<uint8_t>((b[j + 4] & 0xF) | ((b[j - 4] >> 6) << 4));
    m[j] = static_cast<uint8_t>((b[j + 4] >> 4) | ((b[j] >> 6) << 4));
  }
}

// Shared by the q3_K kernels: the sixteen 6-bit scales minus 32.
[[gnu::always_inline]] inline void UnpackScalesQ3K(const uint8_t* b, int8_t* sc) {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? (b[j] & 0xF) : (b[j - 8] >> 4);
    const int hi = (b[8 + j % 4] >> (2 * (j / 4))) & 3;
    sc[j] = static_cast<int8_t>((lo | (hi << 4)) - 32);
  }
}

}  // namespace shardlm::quant

#endif  // SHARDLM_COMMON_KERNELS_QUANT_BLOCKS_H_
