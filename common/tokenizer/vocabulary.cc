#include "common/tokenizer/vocabulary.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/model/gguf.h"
#include "common/tokenizer/pre_tokenizer.h"

namespace shardlm {
namespace {

// Converters write UINT32_MAX for "this vocabulary has no such token".
constexpr int64_t kNoneMarker = 0xFFFFFFFFll;

absl::Status ReadSpecialId(const GgufFile& gguf, std::string_view key, int32_t n_tokens,
                           int32_t* id) {
  if (gguf.Find(key) == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(const int64_t value, gguf.GetInt64(key));
  if (value >= 0 && value < n_tokens) {
    *id = static_cast<int32_t>(value);
  } else if (value != kNoneMarker && value != -1) {
    // llama.cpp keeps its default here too ("bad special token").
    SHARDLM_LOG(kWarning, "%s: %s = %d is not a token id (n_vocab %d); using %d", gguf.path(),
                std::string(key), value, n_tokens, *id);
  }
  return absl::OkStatus();
}

absl::Status ReadFlag(const GgufFile& gguf, std::string_view key, bool* flag) {
  if (gguf.Find(key) == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(*flag, gguf.GetBool(key));
  return absl::OkStatus();
}

absl::Status LengthMismatch(const GgufFile& gguf, std::string_view key, size_t got, size_t want) {
  return absl::InvalidArgumentError(absl::StrCat(gguf.path(), ": ", std::string(key), " has ", got,
                                                 " entries but tokenizer.ggml.tokens has ", want));
}

}  // namespace

std::string_view TokenTypeName(TokenType type) {
  // Indexed by the GGUF value (tokenizer.ggml.token_type), as llama.cpp names them.
  static constexpr std::string_view kNames[] = {"undefined",    "normal", "unknown", "control",
                                                "user_defined", "unused", "byte"};
  const auto i = static_cast<size_t>(type);
  return i < std::size(kNames) ? kNames[i] : "invalid";
}

absl::StatusOr<Vocabulary> Vocabulary::FromGguf(const GgufFile& gguf) {
  Vocabulary vocab;
  ASSIGN_OR_RETURN(vocab.model, gguf.GetString("tokenizer.ggml.model"));
  if (gguf.Find("tokenizer.ggml.pre") != nullptr) {
    ASSIGN_OR_RETURN(vocab.pre, gguf.GetString("tokenizer.ggml.pre"));
  }
  if (gguf.Find("general.name") != nullptr) {
    ASSIGN_OR_RETURN(vocab.name, gguf.GetString("general.name"));
  }
  if (vocab.model == "gpt2") {
    // llama.cpp's defaults for BPE vocabularies (llama_vocab::impl::load).
    vocab.bos_id = 11;
    vocab.eos_id = 11;
    vocab.unk_id = kNoToken;
    vocab.add_space_prefix = false;
    const PreTokenizerTraits* traits = PreTokenizer::Traits(vocab.pre);
    vocab.add_bos = traits != nullptr && traits->add_bos;
  }
  ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                   gguf.GetStringArray("tokenizer.ggml.tokens"));
  if (tokens->empty() || tokens->size() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(
        absl::StrCat(gguf.path(), ": tokenizer.ggml.tokens has ", tokens->size(), " entries"));
  }
  vocab.tokens = *tokens;
  const size_t n = vocab.tokens.size();

  if (gguf.Find("tokenizer.ggml.scores") != nullptr) {
    ASSIGN_OR_RETURN(vocab.scores, gguf.GetFloatArray("tokenizer.ggml.scores"));
    if (vocab.scores.size() != n) {
      return LengthMismatch(gguf, "tokenizer.ggml.scores", vocab.scores.size(), n);
    }
  } else {
    vocab.scores.assign(n, 0.0f);
  }

  vocab.types.assign(n, TokenType::kNormal);
  if (gguf.Find("tokenizer.ggml.token_type") != nullptr) {
    ASSIGN_OR_RETURN(const std::vector<int64_t> types,
                     gguf.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != n) {
      return LengthMismatch(gguf, "tokenizer.ggml.token_type", types.size(), n);
    }
    for (size_t i = 0; i < n; ++i) {
      // Unknown numbers are kept as kUndefined: decoded as nothing, never
      // treated as special, exactly like llama.cpp's "unsupported" types.
      const int64_t t = types[i];
      vocab.types[i] = t >= 1 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kUndefined;
    }
  }

  if (gguf.Find("tokenizer.ggml.merges") != nullptr) {
    ASSIGN_OR_RETURN(const std::vector<std::string>* merges,
                     gguf.GetStringArray("tokenizer.ggml.merges"));
    vocab.merges = *merges;
  }

  const int32_t n_tokens = static_cast<int32_t>(n);
  RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.bos_token_id", n_tokens, &vocab.bos_id));
  RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.eos_token_id", n_tokens, &vocab.eos_id));
  RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.unknown_token_id", n_tokens, &vocab.unk_id));
  RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.padding_token_id", n_tokens, &vocab.pad_id));
  RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.eot_token_id", n_tokens, &vocab.eot_id));
  RETURN_IF_ERROR(ReadSpecialId(gguf, "tokenizer.ggml.eom_token_id", n_tokens, &vocab.eom_id));
  // Defaults that point past a tiny vocabulary are dropped, not kept dangling.
  for (int32_t* id : {&vocab.bos_id, &vocab.eos_id, &vocab.unk_id}) {
    if (*id >= n_tokens) *id = kNoToken;
  }

  RETURN_IF_ERROR(ReadFlag(gguf, "tokenizer.ggml.add_bos_token", &vocab.add_bos));
  RETURN_IF_ERROR(ReadFlag(gguf, "tokenizer.ggml.add_eos_token", &vocab.add_eos));
  if (vocab.model != "gpt2") {
    RETURN_IF_ERROR(ReadFlag(gguf, "tokenizer.ggml.add_space_prefix", &vocab.add_space_prefix));
  }
  return vocab;
}

}  // namespace shardlm
