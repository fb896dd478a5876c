// Kernel micro-benchmarks: one matrix product per weight type and kernel
// shape (vec_dot per row and token; vec_dot_x8 over groups of 8 rows;
// vec_dot_tile; the interleaved layout's gemm) against 1 or 4 quantized
// activation rows, reference vs best kernel set, reported as GB/s of
// weights streamed (per call, so 4 tokens count the weights once); and the quantizers (q8_0, q8_1,
// q8_K, f16; weight and activation kinds) in GB/s of floats read.
//
// Matrices are 2048 columns x {2048, 16384} rows: 2048 rows is 1.2-8.4 MB of
// weights depending on the type (past the 1 MB L2, inside a 32 MB L3); 16384
// rows (9-67 MB) mostly streams from DRAM, the decode regime. Decode reads
// every weight once per token, so GB/s here bounds tokens/s directly.
//
//   build-quant/bench/shardlm_kernels_bench --benchmark_filter=vec_dot
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/kernels/tensor_format.h"

namespace shardlm {
namespace {

constexpr int64_t kCols = 2048;
constexpr int kDistinctRows = 64;  // quantized once, then tiled to fill the matrix

std::vector<float> Gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss;
  std::vector<float> x(n);
  for (float& v : x) v = gauss(rng);
  return x;
}

std::string SetName(KernelSet set) {
  return set == KernelSet::kReference ? "reference" : std::string(KernelSetName(set));
}

// The sets measured: every one this CPU runs, or scalar and --cpu=NAME.
std::vector<KernelSet> g_sets;

// How the rows are multiplied: one vec_dot per row and token; vec_dot_x8
// over groups of 8 rows; vec_dot_tile over kTileRows rows x kTileActs
// tokens; the interleaved layout's gemm over groups of 8 rows, and its
// gemm_x16 over pairs of groups (sets that have one).
enum class Kind { kVecDot, kX8, kTile, kInterleaved, kInterleavedX16 };

void BM_MatMul(benchmark::State& state, GgmlType type, KernelSet set, Kind kind, int n_act) {
  const int64_t rows = state.range(0);
  const TensorFormat& f = Format(type, set);
  const size_t row_bytes = *RowBytes(type, kCols);
  // Weights: kDistinctRows quantized rows repeated; every row still has its
  // own addresses, so the memory traffic is that of a real matrix.
  std::vector<uint8_t> distinct(row_bytes * kDistinctRows);
  const std::vector<float> w = Gaussian(kCols * kDistinctRows, 1);
  Format(type, KernelSet::kReference).quantize(w.data(), distinct.data(), kCols * kDistinctRows);
  std::vector<uint8_t> matrix(row_bytes * rows);
  for (int64_t r = 0; r < rows; r += kDistinctRows) {
    std::memcpy(&matrix[r * row_bytes], distinct.data(),
                row_bytes * std::min<int64_t>(kDistinctRows, rows - r));
  }
  std::vector<uint8_t> interleaved;
  const size_t group_bytes =
      f.interleaved_x8 == nullptr ? 0 : kCols / f.info.block_size * f.interleaved_x8->block_bytes;
  const bool interleaved_kind = kind == Kind::kInterleaved || kind == Kind::kInterleavedX16;
  if (interleaved_kind) {
    interleaved.resize(rows / 8 * group_bytes);
    for (int64_t r = 0; r < rows; r += 8) {
      f.interleaved_x8->interleave(&matrix[r * row_bytes], row_bytes, kCols,
                                   &interleaved[r / 8 * group_bytes]);
    }
  }
  const size_t act_bytes = *RowBytes(f.vec_dot_type, kCols);
  std::vector<uint8_t> act(act_bytes * n_act);
  const TensorFormat& af = Format(f.vec_dot_type, KernelSet::kReference);  // f32: as is
  for (int t = 0; t < n_act; ++t) {
    const std::vector<float> x = Gaussian(kCols, 2 + t);
    (af.quantize_activation ? af.quantize_activation : af.quantize)(x.data(), &act[t * act_bytes],
                                                                    kCols);
  }
  const int64_t n_blocks = kCols / f.info.block_size;
  std::vector<quant::ActivationBlockTerms> terms(n_blocks * n_act);
  if (interleaved_kind && f.interleaved_x8->block_terms != nullptr) {
    for (int t = 0; t < n_act; ++t)
      f.interleaved_x8->block_terms(&act[t * act_bytes], kCols, &terms[t * n_blocks]);
  }
  std::vector<float> y(rows * n_act);
  float out[4 * 16];
  for (auto _ : state) {
    switch (kind) {
      case Kind::kVecDot:
        for (int t = 0; t < n_act; ++t)
          for (int64_t r = 0; r < rows; ++r)
            y[t * rows + r] = f.vec_dot(kCols, &matrix[r * row_bytes], &act[t * act_bytes]);
        break;
      case Kind::kX8:
        for (int64_t r = 0; r < rows; r += 8) {
          f.vec_dot_x8(kCols, &matrix[r * row_bytes], row_bytes, act.data(), act_bytes, n_act, out,
                       n_act == 4);
          std::copy(out, out + 8 * n_act, &y[r * n_act]);
        }
        break;
      case Kind::kTile:
        for (int64_t r = 0; r < rows; r += kTileRows) {
          for (int t = 0; t < n_act; t += kTileActs) {
            const int count = std::min(kTileActs, n_act - t);
            f.vec_dot_tile(kCols, &matrix[r * row_bytes], row_bytes, &act[t * act_bytes], act_bytes,
                           count, out);
            std::copy(out, out + kTileRows * count, &y[r * n_act + kTileRows * t]);
          }
        }
        break;
      case Kind::kInterleaved:
        for (int64_t r = 0; r < rows; r += 8) {
          f.interleaved_x8->gemm(kCols, &interleaved[r / 8 * group_bytes], act.data(), act_bytes,
                                 terms.data(), n_blocks, n_act, out, n_act == 4);
          std::copy(out, out + 8 * n_act, &y[r * n_act]);
        }
        break;
      case Kind::kInterleavedX16:
        for (int64_t r = 0; r < rows; r += 16) {
          f.interleaved_x8->gemm_x16(kCols, &interleaved[r / 8 * group_bytes], group_bytes,
                                     act.data(), act_bytes, terms.data(), n_blocks, n_act, out,
                                     n_act == 4);
          std::copy(out, out + 16 * n_act, &y[r * n_act]);
        }
        break;
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * rows *
                          static_cast<int64_t>(row_bytes));
  state.counters["MB_weights"] = static_cast<double>(rows * row_bytes) / 1e6;
  state.counters["tokens"] = n_act;
}

void BM_Quantize(benchmark::State& state, GgmlType type, KernelSet set, bool activation) {
  const int64_t n = state.range(0);
  const TensorFormat& f = Format(type, set);
  const QuantizeRowFn quantize = activation ? f.quantize_activation : f.quantize;
  if (quantize == nullptr) state.SkipWithError("no such quantizer");
  const std::vector<float> x = Gaussian(n, 3);
  std::vector<uint8_t> out(*RowBytes(type, n));
  for (auto _ : state) {
    quantize(x.data(), out.data(), n);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * n *
                          static_cast<int64_t>(sizeof(float)));
}

void RegisterAll() {
  const GgmlType weights[] = {GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ5_0, GgmlType::kQ5_1,
                              GgmlType::kQ8_0, GgmlType::kQ2_K, GgmlType::kQ3_K, GgmlType::kQ4_K,
                              GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kF16,  GgmlType::kBF16,
                              GgmlType::kF32};
  const struct {
    Kind kind;
    const char* name;
  } kinds[] = {{Kind::kVecDot, "vec_dot"},
               {Kind::kX8, "vec_dot_x8"},
               {Kind::kTile, "vec_dot_tile"},
               {Kind::kInterleaved, "interleaved_x8"},
               {Kind::kInterleavedX16, "interleaved_x16"}};
  for (GgmlType t : weights) {
    const TensorFormat& f = Format(t);
    for (const auto& k : kinds) {
      if ((k.kind == Kind::kX8 && f.vec_dot_x8 == nullptr) ||
          (k.kind == Kind::kTile && f.vec_dot_tile == nullptr) ||
          (k.kind == Kind::kInterleaved && f.interleaved_x8 == nullptr) ||
          (k.kind == Kind::kInterleavedX16 && f.interleaved_x8 == nullptr)) {
        continue;
      }
      // 1 token: the decode regime; 4 tokens: a prompt's batch per call.
      for (int n_act : {1, 4}) {
        for (KernelSet set : g_sets) {
          if (k.kind == Kind::kInterleavedX16 &&
              Format(t, set).interleaved_x8->gemm_x16 == nullptr) {
            continue;  // the set has no 16-row product
          }
          const std::string name = std::string(k.name) + "/" + std::string(TypeInfo(t).name) +
                                   "/" + SetName(set) + "/tokens:" + std::to_string(n_act);
          benchmark::RegisterBenchmark(name.c_str(), BM_MatMul, t, set, k.kind, n_act)
              ->Arg(2048)
              ->Arg(16384)
              ->Unit(benchmark::kMicrosecond);
        }
      }
    }
  }
  for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ8_1, GgmlType::kQ8_K, GgmlType::kF16}) {
    for (bool activation : {false, true}) {
      for (KernelSet set : g_sets) {
        const std::string name = std::string(activation ? "quantize_activation/" : "quantize/") +
                                 std::string(TypeInfo(t).name) + "/" + SetName(set);
        benchmark::RegisterBenchmark(name.c_str(), BM_Quantize, t, set, activation)
            ->Arg(kCols)
            ->Arg(5632);
      }
    }
  }
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) {
  using namespace shardlm;
  g_sets = AvailableKernelSets();
  // --cpu=NAME (before the benchmark flags): the reference and that set only.
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::printf("shardlm_kernels_bench [--cpu=NAME] [--benchmark_* flags]\n  --cpu=NAME  %s\n",
                  kCpuFlagHelp);
      return 0;
    }
    if (arg.rfind("--cpu=", 0) != 0) continue;
    absl::StatusOr<KernelSet> set = ParseKernelSet(arg.substr(6));
    absl::Status st = set.ok() ? KernelSetSupported(*set) : set.status();
    if (!st.ok()) {
      std::fprintf(stderr, "shardlm_kernels_bench: --cpu: %s\n", std::string(st.message()).c_str());
      return 2;
    }
    g_sets = {KernelSet::kReference};
    if (*set != KernelSet::kReference) g_sets.push_back(*set);
    std::copy(argv + i + 1, argv + argc + 1, argv + i);  // drop it (argv[argc] is null)
    --argc;
    break;
  }
  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
