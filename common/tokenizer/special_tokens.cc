#include "common/tokenizer/special_tokens.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace shardlm {
namespace {

// llama.cpp v0.4.0 (llama-vocab.cpp), the texts it recognises. The first
// of kEndOfTurn present is the EOT token when the GGUF names none (llama.cpp
// takes whichever its hash map yields first; Llama 3 and Qwen have one
// candidate each besides <|endoftext|>, which we list after theirs).
constexpr std::string_view kEndOfTurn[] = {"<|eot_id|>",
                                           "<|im_end|>",
                                           "<|end|>",
                                           "<end_of_turn>",
                                           "<|endoftext|>",
                                           "<|end_of_text|>",
                                           "<EOT>",
                                           "_<EOT>",
                                           "[EOT]",
                                           "<\xEF\xBD\x9C"
                                           "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                           "<end_of_utterance>"};
constexpr std::string_view kEndOfMessage = "<|eom_id|>";
// Fill-in-the-middle tokens: all become control tokens; pad, repo and file
// separator also end a generation.
constexpr std::string_view kFimControl[] = {"<|fim_prefix|>",
                                            "<fim-prefix>",
                                            "<fim_prefix>",
                                            "<PRE>",
                                            "\xE2\x96\x81<PRE>",
                                            "<|code_prefix|>",
                                            "<|prefix|>",
                                            "<|fim_suffix|>",
                                            "<fim-suffix>",
                                            "<fim_suffix>",
                                            "<SUF>",
                                            "\xE2\x96\x81<SUF>",
                                            "<|code_suffix|>",
                                            "<|suffix|>",
                                            "<|fim_middle|>",
                                            "<fim-middle>",
                                            "<fim_middle>",
                                            "<MID>",
                                            "\xE2\x96\x81<MID>",
                                            "<|code_middle|>",
                                            "<|middle|>",
                                            "<\xEF\xBD\x9C"
                                            "fim\xE2\x96\x81"
                                            "begin\xEF\xBD\x9C>",
                                            "<\xEF\xBD\x9C"
                                            "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                                            "<\xEF\xBD\x9C"
                                            "fim\xE2\x96\x81"
                                            "end\xEF\xBD\x9C>"};
constexpr std::string_view kFimEndOfGeneration[] = {
    "<|fim_pad|>",   "<fim-pad>",  "<fim_pad>", "<PAD>",      "[PAD]",       "<|fim_repo|>",
    "<|repo_name|>", "<fim-repo>", "<REPO>",    "<reponame>", "<|file_sep|>"};
constexpr std::string_view kEndOfGeneration[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "[e~["};

bool IsSpecialType(TokenType type) {
  return type == TokenType::kControl || type == TokenType::kUnknown ||
         type == TokenType::kUserDefined;
}

// C-locale isspace, as llama.cpp's strip loops use.
bool IsAsciiSpace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

SpecialTokens PrepareSpecialTokens(Vocabulary* vocab,
                                   absl::FunctionRef<int32_t(std::string_view)> lookup) {
  SpecialTokens special;
  const int32_t n = vocab->size();
  auto make_control = [&](int32_t id) {
    // llama.cpp ORs in the control attribute; our one type per token makes
    // it a control token, which encodes and decodes the same way.
    if (id != kNoToken) vocab->types[id] = TokenType::kControl;
  };

  if (vocab->eot_id == kNoToken) {
    for (std::string_view text : kEndOfTurn) {
      if ((vocab->eot_id = lookup(text)) != kNoToken) break;
    }
  }
  if (vocab->eom_id == kNoToken) vocab->eom_id = lookup(kEndOfMessage);
  // llama.cpp re-types the EOT/EOM it found by text (not one the GGUF named).
  for (std::string_view text : kEndOfTurn) {
    if (lookup(text) == vocab->eot_id) make_control(vocab->eot_id);
  }
  if (lookup(kEndOfMessage) == vocab->eom_id) make_control(vocab->eom_id);
  for (std::string_view text : kFimControl) make_control(lookup(text));
  for (std::string_view text : kFimEndOfGeneration) {
    const int32_t id = lookup(text);
    make_control(id);
    if (id != kNoToken) special.end_of_generation.insert(id);
  }
  for (std::string_view text : kEndOfGeneration) {
    const int32_t id = lookup(text);
    make_control(id);
    if (id != kNoToken) special.end_of_generation.insert(id);
  }
  // gpt-oss / solar-open: "<|end|>" ends a message there, not the generation.
  const bool has_return = lookup("<|return|>") != kNoToken;
  const bool has_call = lookup("<|call|>") != kNoToken || lookup("<|calls|>") != kNoToken;
  const bool has_flush = lookup("<|flush|>") != kNoToken;
  const int32_t end = lookup("<|end|>");
  if (end != kNoToken && ((has_return && has_call) || (has_call && has_flush))) {
    special.end_of_generation.erase(end);
    vocab->types[end] = TokenType::kUserDefined;
  }
  for (const int32_t id : {vocab->eos_id, vocab->eot_id, vocab->eom_id}) {
    if (id != kNoToken) special.end_of_generation.insert(id);
  }

  for (int32_t id = 0; id < n; ++id) {
    if (IsSpecialType(vocab->types[id]) && !vocab->tokens[id].empty()) {
      special.parse_order.push_back(id);
    }
  }
  std::stable_sort(
      special.parse_order.begin(), special.parse_order.end(),
      [&](int32_t a, int32_t b) { return vocab->tokens[a].size() > vocab->tokens[b].size(); });

  special.strip.assign(n, 0);
  std::string name = vocab->name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (const int32_t id : special.parse_order) special.strip[id] = SpecialTokens::kStripRight;
    if (const int32_t id = lookup("</s>"); id != kNoToken) {
      special.strip[id] = SpecialTokens::kStripRight;
    }
    for (std::string_view text : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (const int32_t id = lookup(text); id != kNoToken) special.strip[id] = 0;
    }
  }
  return special;
}

std::vector<Fragment> PartitionSpecial(std::string_view text, const Vocabulary& vocab,
                                       const SpecialTokens& special, bool parse_special) {
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({0, text.size(), kNoToken});
  std::vector<Fragment> next;
  for (const int32_t id : special.parse_order) {
    const TokenType type = vocab.types[id];
    if (!parse_special && (type == TokenType::kControl || type == TokenType::kUnknown)) continue;
    const std::string& needle = vocab.tokens[id];
    const uint8_t strip = special.strip[id];
    next.clear();
    bool found = false;
    for (const Fragment& f : fragments) {
      if (f.token != kNoToken) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.length;
      while (pos < end) {
        const size_t match = text.substr(0, end).find(needle, pos);
        if (match == std::string_view::npos) break;
        found = true;
        size_t left_end = match;
        if (strip & SpecialTokens::kStripLeft) {
          while (left_end > pos && IsAsciiSpace(text[left_end - 1])) --left_end;
        }
        if (left_end > pos) next.push_back({pos, left_end - pos, kNoToken});
        next.push_back({0, 0, id});
        pos = match + needle.size();
        if (strip & SpecialTokens::kStripRight) {
          while (pos < end && IsAsciiSpace(text[pos])) ++pos;
        }
      }
      if (pos < end) next.push_back({pos, end - pos, kNoToken});
    }
    if (found) fragments.swap(next);
  }
  return fragments;
}

}  // namespace shardlm
