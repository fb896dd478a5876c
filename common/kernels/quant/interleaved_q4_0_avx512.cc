// The kernels of interleaved_q4_0_avx2.cc built for the avx512 kernel set: compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni (+ AVX2/FMA/F16C),
// into namespace quant::avx512, with VNNI integer dot products
// (simd_avx2.h explains why the results stay bit-exact). One source, two builds.
#define SHARDLM_SIMD_AVX512 1
#include "common/kernels/quant/interleaved_q4_0_avx2.cc"
