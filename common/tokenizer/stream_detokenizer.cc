#include "common/tokenizer/stream_detokenizer.h"

#include "common/tokenizer/utf8.h"

namespace shardlm {

std::string StreamDetokenizer::Push(int32_t id) {
  std::string piece = tokenizer_->TokenPiece(id, options_.render_special);
  if (piece.empty()) return {};
  // Same rule as Tokenizer::Decode: the first non-empty piece loses one
  // leading space.
  if (strip_ && piece[0] == ' ') piece.erase(0, 1);
  strip_ = false;
  pending_ += piece;
  std::string out;
  out.reserve(pending_.size());
  const size_t consumed = AppendValidUtf8(pending_, /*final=*/false, &out);
  pending_.erase(0, consumed);
  return out;
}

std::string StreamDetokenizer::Flush() {
  std::string out;
  AppendValidUtf8(pending_, /*final=*/true, &out);
  pending_.clear();
  return out;
}

}  // namespace shardlm
