#include "common/tokenizer/tokenizer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"
#include "common/model/gguf.h"
#include "common/tokenizer/byte_unicode.h"
#include "common/tokenizer/utf8.h"

namespace shardlm {
namespace {

// SentencePiece's whitespace marker U+2581 "▁".
constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";

// A symbol of up to 4 bytes packed with its length, for joins_before_space_.
uint64_t SymbolKey(const char* p, size_t n) {
  uint64_t key = n << 32;
  for (size_t i = 0; i < n; ++i)
    key |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return key;
}

// "<0xAB>" -> 0xAB, or -1.
int ParseByteToken(const std::string& text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = text[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return -1;
    }
    value = value * 16 + digit;
  }
  return value;
}

// One initial character, later a merged run, of the SentencePiece encoder.
// `next`/`prev` chain the live symbols; a merged-away symbol has n == 0.
struct Symbol {
  size_t start;
  uint32_t n;
  int32_t prev;
  int32_t next;
};

// A candidate merge of two adjacent symbols into a token of `score`.
struct Bigram {
  float score;
  int32_t left;
  int32_t right;
  uint32_t size;
};

// Heap order of llama.cpp's llm_bigram_spm::comparator: highest score on
// top, and among equal scores the leftmost pair.
struct BigramLess {
  bool operator()(const Bigram& l, const Bigram& r) const {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Create(Vocabulary vocab) {
  std::unique_ptr<Tokenizer> tokenizer(new Tokenizer(std::move(vocab)));
  RETURN_IF_ERROR(tokenizer->Init());
  return tokenizer;
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  ASSIGN_OR_RETURN(Vocabulary vocab, Vocabulary::FromGguf(gguf));
  auto tokenizer = Create(std::move(vocab));
  if (!tokenizer.ok()) {
    return absl::Status(tokenizer.status().code(),
                        absl::StrCat(gguf.path(), ": ", tokenizer.status().message()));
  }
  return tokenizer;
}

absl::Status Tokenizer::Init() {
  Vocabulary& v = vocab_;
  const bool byte_level = v.model == "gpt2";
  if (v.model != "llama" && !byte_level) {
    return absl::UnimplementedError(
        absl::StrCat("tokenizer model \"", v.model,
                     "\" is not supported (supported: \"llama\", SentencePiece BPE; \"gpt2\", "
                     "byte-level BPE)"));
  }
  if (v.tokens.empty() || v.tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary has ", v.tokens.size(), " tokens"));
  }
  const size_t n = v.tokens.size();
  if (v.scores.empty()) v.scores.assign(n, 0.0f);
  if (v.types.empty()) v.types.assign(n, TokenType::kNormal);
  if (v.scores.size() != n || v.types.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("vocabulary has ", n, " tokens but ",
                                                   v.scores.size(), " scores and ", v.types.size(),
                                                   " token types"));
  }
  const std::pair<const char*, int32_t> ids[] = {{"bos", v.bos_id},     {"eos", v.eos_id},
                                                 {"unknown", v.unk_id}, {"padding", v.pad_id},
                                                 {"eot", v.eot_id},     {"eom", v.eom_id}};
  for (const auto& [name, id] : ids) {
    if (id != kNoToken && !IsValidId(id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " token id ", id, " is outside the vocabulary of ", n));
    }
  }
  if (v.add_bos && v.bos_id == kNoToken) {
    return absl::InvalidArgumentError("add_bos_token is set but the vocabulary has no BOS token");
  }
  if (v.add_eos && v.eos_id == kNoToken) {
    return absl::InvalidArgumentError("add_eos_token is set but the vocabulary has no EOS token");
  }

  token_to_id_.reserve(n);
  token_byte_.assign(n, -1);
  byte_to_token_.fill(kNoToken);
  std::array<int32_t, 256> single_byte_token;
  single_byte_token.fill(kNoToken);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = v.tokens[i];
    const int32_t id = static_cast<int32_t>(i);
    token_to_id_[text] = id;
    max_token_bytes_ = std::max(max_token_bytes_, text.size());
    if (text.size() == 1) single_byte_token[static_cast<uint8_t>(text[0])] = id;
    if (v.types[i] == TokenType::kByte) {
      const int byte = ParseByteToken(text);
      if (byte < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("byte token ", id, " has text \"", text, "\", expected <0xXX>"));
      }
      token_byte_[i] = static_cast<int16_t>(byte);
    }
    if (byte_level) continue;
    for (size_t k = text.find(kSpaceMarker, 1); k != std::string::npos;
         k = text.find(kSpaceMarker, k + 1)) {
      for (size_t len = 1; len <= std::min<size_t>(4, k); ++len) {
        joins_before_space_.insert(SymbolKey(text.data() + k - len, len));
      }
    }
  }
  // llama.cpp's byte_to_token: "<0xXX>" if present, else the one-byte text.
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    const char name[7] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>', 0};
    const int32_t id = LookupToken(name);
    byte_to_token_[b] = id != kNoToken ? id : single_byte_token[b];
  }
  special_ = PrepareSpecialTokens(&v, [this](std::string_view text) { return LookupToken(text); });
  if (byte_level) {
    v.add_space_prefix = false;
    ASSIGN_OR_RETURN(bpe_, BpeTokenizer::Create(v, &token_to_id_));
  }
  strips_leading_space_ = !byte_level && v.add_space_prefix;
  return absl::OkStatus();
}

int32_t Tokenizer::LookupToken(std::string_view text) const {
  // Heterogeneous lookup: no std::string is built per probe. Debian's abseil
  // has its own string_view type, hence the explicit conversion.
  auto it = token_to_id_.find(absl::string_view(text.data(), text.size()));
  return it == token_to_id_.end() ? kNoToken : it->second;
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_bos && vocab_.add_bos) out.push_back(vocab_.bos_id);

  bool prev_special = true;  // the start of the text counts as "after a special"
  for (const Fragment& f : PartitionSpecial(text, vocab_, special_, parse_special)) {
    if (f.token != kNoToken) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view fragment = text.substr(f.offset, f.length);
    if (bpe_ != nullptr) {
      bpe_->Encode(fragment, &out);
    } else {
      EncodeFragment(fragment, vocab_.add_space_prefix && prev_special, &out);
    }
    prev_special = false;
  }
  if (add_bos && vocab_.add_eos) out.push_back(vocab_.eos_id);
  return out;
}

void Tokenizer::EncodeFragment(std::string_view raw, bool add_prefix,
                               std::vector<int32_t>* out) const {
  // Step 2: dummy prefix and "▁" for every space.
  std::string text;
  text.reserve(raw.size() + raw.size() / 2 + 3);
  if (add_prefix) text.append(kSpaceMarker);
  for (const char c : raw) {
    if (c == ' ') {
      text.append(kSpaceMarker);
    } else {
      text.push_back(c);
    }
  }

  std::vector<Symbol> symbols;
  std::vector<Bigram> heap;
  const char* const base = text.data();

  auto try_add_bigram = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const uint32_t size = symbols[left].n + symbols[right].n;
    if (size > max_token_bytes_) return;
    const int32_t id = LookupToken(std::string_view(base + symbols[left].start, size));
    if (id == kNoToken) return;
    heap.push_back({vocab_.scores[id], left, right, size});
    std::push_heap(heap.begin(), heap.end(), BigramLess());
  };

  auto emit_symbol = [&](const Symbol& s) {
    const std::string_view piece(base + s.start, s.n);
    const int32_t id = LookupToken(piece);
    if (id != kNoToken) {
      out->push_back(id);
      return;
    }
    // Step 4: byte fallback.
    for (const char c : piece) {
      const int32_t byte_id = byte_to_token_[static_cast<uint8_t>(c)];
      if (byte_id != kNoToken) {
        out->push_back(byte_id);
      } else if (vocab_.unk_id != kNoToken) {
        out->push_back(vocab_.unk_id);
      }
    }
  };

  // Step 3 on symbols [0, symbols.size()), one independent word.
  auto merge_word = [&]() {
    const int32_t m = static_cast<int32_t>(symbols.size());
    if (m == 0) return;
    symbols.back().next = -1;
    heap.clear();
    for (int32_t i = 1; i < m; ++i) try_add_bigram(i - 1, i);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), BigramLess());
      const Bigram bigram = heap.back();
      heap.pop_back();
      Symbol& left = symbols[bigram.left];
      Symbol& right = symbols[bigram.right];
      // Stale: one side was merged away or grew since this pair was queued.
      if (left.n == 0 || right.n == 0 || left.n + right.n != bigram.size) continue;
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = bigram.left;
      try_add_bigram(left.prev, bigram.left);
      try_add_bigram(bigram.left, left.next);
    }
    for (int32_t i = 0; i != -1; i = symbols[i].next) emit_symbol(symbols[i]);
  };

  // Split into llama.cpp's initial symbols (lead-byte length, clipped at the
  // end), cutting into words before each "▁" that no token can join to the
  // symbol before it.
  const size_t size = text.size();
  size_t offset = 0;
  while (offset < size) {
    const uint32_t n = static_cast<uint32_t>(
        std::min(Utf8LeadLength(static_cast<uint8_t>(text[offset])), size - offset));
    if (!symbols.empty() && n == kSpaceMarker.size() &&
        std::string_view(base + offset, n) == kSpaceMarker) {
      const Symbol& last = symbols.back();
      if (!joins_before_space_.contains(SymbolKey(base + last.start, last.n))) {
        merge_word();
        symbols.clear();
      }
    }
    const int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({offset, n, index - 1, index + 1});
    offset += n;
  }
  merge_word();
}

std::string Tokenizer::TokenPiece(int32_t id, bool render_special) const {
  if (!IsValidId(id)) return {};
  const std::string& text = vocab_.tokens[id];
  switch (vocab_.types[id]) {
    case TokenType::kNormal: {
      std::string piece;
      if (bpe_ != nullptr) {
        AppendByteLevelDecoded(text, &piece);
        return piece;
      }
      piece.reserve(text.size());
      for (size_t i = 0; i < text.size();) {
        if (text.compare(i, kSpaceMarker.size(), kSpaceMarker) == 0) {
          piece.push_back(' ');
          i += kSpaceMarker.size();
        } else {
          piece.push_back(text[i++]);
        }
      }
      return piece;
    }
    case TokenType::kByte:
      return std::string(1, static_cast<char>(token_byte_[id]));
    case TokenType::kUserDefined:
    case TokenType::kUnknown:
      return text;
    case TokenType::kControl:
      return render_special ? text : std::string();
    case TokenType::kUnused:
    case TokenType::kUndefined:
      return {};
  }
  return {};
}

const std::string& Tokenizer::TokenText(int32_t id) const {
  static const std::string* const kEmpty = new std::string();
  return IsValidId(id) ? vocab_.tokens[id] : *kEmpty;
}

TokenType Tokenizer::token_type(int32_t id) const {
  return IsValidId(id) ? vocab_.types[id] : TokenType::kUndefined;
}

float Tokenizer::token_score(int32_t id) const { return IsValidId(id) ? vocab_.scores[id] : 0.0f; }

std::string Tokenizer::Decode(absl::Span<const int32_t> ids, const DecodeOptions& options) const {
  std::string out;
  bool strip = options.strip_leading_space && strips_leading_space_;
  for (const int32_t id : ids) {
    std::string piece = TokenPiece(id, options.render_special);
    if (piece.empty()) continue;
    if (strip && piece[0] == ' ') piece.erase(0, 1);
    strip = false;
    out += piece;
  }
  return out;
}

absl::Status Tokenizer::CheckIds(absl::Span<const int32_t> ids) const {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!IsValidId(ids[i])) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", ids[i], " at position ", i,
                                                     " is outside [0, ", n_vocab(), ")"));
    }
  }
  return absl::OkStatus();
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return special_.end_of_generation.contains(id);
}

std::vector<int32_t> Tokenizer::EndOfGenerationIds() const {
  std::vector<int32_t> ids(special_.end_of_generation.begin(), special_.end_of_generation.end());
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace shardlm
