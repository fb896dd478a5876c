#include "tools/model_maker/synthetic.h"

#include <array>
#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shardlm {
namespace {

uint64_t SplitMix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Standard deviation of the sum of four independent uniform 16-bit values:
// each has variance (65536^2 - 1) / 12.
const double kIrwinHallStd = std::sqrt((65536.0 * 65536.0 - 1.0) / 3.0);

constexpr std::string_view kSpace = "\xe2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

SyntheticStream::SyntheticStream(uint64_t seed, std::string_view name) {
  // FNV-1a over the name, mixed with the seed: a stream per (seed, tensor).
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
  key_ = SplitMix64(h ^ SplitMix64(seed));
}

uint64_t SyntheticStream::Hash(uint64_t index) const {
  return SplitMix64(index * 0xD1342543DE82EF95ull + key_);
}

double SyntheticStream::Normal(uint64_t index) const {
  const uint64_t z = Hash(index);
  const int64_t sum = static_cast<int64_t>((z & 0xFFFF) + ((z >> 16) & 0xFFFF) + ((z >> 32) & 0xFFFF) + (z >> 48));
  return static_cast<double>(sum - 131070) / kIrwinHallStd;
}

double SyntheticStream::Uniform(uint64_t index) const {
  return static_cast<double>(Hash(index) >> 11) * (1.0 / 9007199254740992.0);
}

absl::StatusOr<SyntheticVocab> MakeSyntheticVocab(int64_t n_vocab) {
  if (n_vocab < 260) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n_vocab ", n_vocab, " is too small for the synthetic byte-level vocabulary (3 special + 256 byte "
        "tokens + at least one piece = 260): give a larger --n-vocab or --vocab-from"));
  }
  SyntheticVocab v;
  auto add = [&](std::string piece, int32_t type, float score) {
    v.tokens.push_back(std::move(piece));
    v.types.push_back(type);
    v.scores.push_back(score);
  };
  add("<unk>", kTokenUnknown, 0);
  add("<s>", kTokenControl, 0);
  add("</s>", kTokenControl, 0);
  for (int b = 0; b < 256; ++b) add(absl::StrFormat("<0x%02X>", b), kTokenByte, 0);

  // Candidate pieces, shortest first; each longer piece is the merge of two
  // earlier ones, so llama.cpp's SPM BPE can build it. Scores decrease with
  // rank so earlier (shorter) merges win ties.
  std::vector<std::string> pieces = {std::string(kSpace)};
  for (char c = 33; c < 127; ++c) {
    pieces.push_back(std::string(1, c));
    pieces.push_back(std::string(kSpace) + c);
  }
  const std::string space(kSpace);
  std::vector<std::string> words;  // lower-case letter strings of the previous length
  for (char c = 'a'; c <= 'z'; ++c) words.push_back(std::string(1, c));
  for (int len = 2; len <= 3 && v.tokens.size() + pieces.size() < static_cast<size_t>(n_vocab); ++len) {
    std::vector<std::string> longer;
    for (const std::string& w : words) {
      for (char c = 'a'; c <= 'z'; ++c) longer.push_back(w + c);
    }
    for (const std::string& w : longer) {
      pieces.push_back(w);            // "ab" = "a" + "b"
      pieces.push_back(space + w);    // "▁ab" = "▁a" + "b"
    }
    words = std::move(longer);
  }
  float score = 0;
  for (const std::string& p : pieces) {
    if (v.tokens.size() == static_cast<size_t>(n_vocab)) break;
    add(p, kTokenNormal, score);
    score -= 1;
  }
  for (int i = 0; v.tokens.size() < static_cast<size_t>(n_vocab); ++i) {
    add(absl::StrCat("<extra_", i, ">"), kTokenUserDefined, 0);
  }
  return v;
}

namespace {

// llama_ftype numbers (llama.h) for general.file_type.
constexpr std::array<WeightMix, 13> kMixes = {{
    {"f32", GgmlType::kF32, 0, false},
    {"f16", GgmlType::kF16, 1, false},
    {"bf16", GgmlType::kBF16, 32, false},
    {"q4_0", GgmlType::kQ4_0, 2, false},
    {"q4_1", GgmlType::kQ4_1, 3, false},
    {"q5_0", GgmlType::kQ5_0, 8, false},
    {"q5_1", GgmlType::kQ5_1, 9, false},
    {"q8_0", GgmlType::kQ8_0, 7, false},
    {"q4_k", GgmlType::kQ4_K, 14, false},  // reported as Q4_K_S, the nearest llama ftype
    {"q5_k", GgmlType::kQ5_K, 16, false},  // Q5_K_S
    {"q6_k", GgmlType::kQ6_K, 18, false},
    {"q4_k_m", GgmlType::kQ4_K, 15, true},
    {"q5_k_m", GgmlType::kQ5_K, 17, true},
}};

bool IsFloatType(GgmlType t) { return t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16; }

bool Fits(GgmlType t, int64_t row_length) { return row_length % TypeInfo(t).block_size == 0; }

}  // namespace

std::string WeightMixNames() {
  std::string out;
  for (const auto& m : kMixes) absl::StrAppend(&out, out.empty() ? "" : "|", m.name);
  return out;
}

absl::StatusOr<WeightMix> ParseWeightMix(std::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::string_view(name.data(), name.size()));
  for (const auto& m : kMixes) {
    if (lower == m.name) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown weight type '", lower, "' (valid: ", WeightMixNames(), ")"));
}

bool UseMoreBits(int layer, int n_layer) {
  return layer < n_layer / 8 || layer >= 7 * n_layer / 8 || (layer - n_layer / 8) % 3 == 2;
}

GgmlType MatrixType(const WeightMix& mix, MatrixKind kind, int layer, int n_layer, int64_t row_length,
                    bool* fallback) {
  if (fallback != nullptr) *fallback = false;
  GgmlType t = mix.base;
  if (IsFloatType(t)) return t;  // llama.cpp applies its mix rules only to quantized ftypes
  if (kind == MatrixKind::kOutput) {
    if (t != GgmlType::kQ8_0) t = GgmlType::kQ6_K;  // falls back to Q8_0 below if rows are short
  } else if (mix.more_bits_k_m && (kind == MatrixKind::kAttnV || kind == MatrixKind::kFfnDown) &&
             UseMoreBits(layer, n_layer)) {
    t = GgmlType::kQ6_K;
  }
  if (Fits(t, row_length)) return t;
  if (fallback != nullptr) *fallback = true;
  switch (t) {
    case GgmlType::kQ4_K: t = GgmlType::kQ5_0; break;
    case GgmlType::kQ5_K: t = GgmlType::kQ5_1; break;
    case GgmlType::kQ6_K: t = GgmlType::kQ8_0; break;
    default: t = GgmlType::kF16; break;  // llama.cpp gives up here; F16 fits any row
  }
  return Fits(t, row_length) ? t : GgmlType::kF16;
}

}  // namespace shardlm
