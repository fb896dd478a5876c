#include "coordinator/sampling_params.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/field_error.h"

namespace shardlm {
namespace {

absl::Status OutOfRange(const char* field, double value, const char* allowed) {
  return WithField(
      absl::InvalidArgumentError(absl::StrCat(field, " = ", value, " is out of range: ", allowed)),
      field);
}

}  // namespace

absl::Status SamplingParams::Validate(int n_vocab) const {
  if (!std::isfinite(temperature) || temperature < 0 || temperature > 100) {
    return OutOfRange("temperature", temperature, "0 <= temperature <= 100 (0 is greedy)");
  }
  if (top_k < 0) return OutOfRange("top_k", top_k, "top_k >= 0 (0 disables it)");
  if (!(top_p > 0 && top_p <= 1)) return OutOfRange("top_p", top_p, "0 < top_p <= 1");
  if (!(min_p >= 0 && min_p <= 1)) return OutOfRange("min_p", min_p, "0 <= min_p <= 1");
  if (!(repetition_penalty > 0 && repetition_penalty <= 10)) {
    return OutOfRange("repetition_penalty", repetition_penalty, "0 < repetition_penalty <= 10");
  }
  if (!(presence_penalty >= -2 && presence_penalty <= 2)) {
    return OutOfRange("presence_penalty", presence_penalty, "-2 <= presence_penalty <= 2");
  }
  if (!(frequency_penalty >= -2 && frequency_penalty <= 2)) {
    return OutOfRange("frequency_penalty", frequency_penalty, "-2 <= frequency_penalty <= 2");
  }
  if (penalty_window < 0 || penalty_window > 1 << 20) {
    return OutOfRange("penalty_window", penalty_window, "0 <= penalty_window <= 1048576");
  }
  if (max_tokens < 1 || max_tokens > 1 << 20) {
    return OutOfRange("max_tokens", max_tokens, "1 <= max_tokens");
  }
  if (stop.size() > 16) return OutOfRange("stop", stop.size(), "at most 16 stop strings");
  for (const std::string& s : stop) {
    if (s.empty() || s.size() > 256) {
      return InvalidFieldError("stop", "every stop string must have 1 to 256 bytes");
    }
  }
  if (top_logprobs < 0 || top_logprobs > 20) {
    return OutOfRange("top_logprobs", top_logprobs, "0 <= top_logprobs <= 20");
  }
  if (logit_bias.size() > 1024)
    return OutOfRange("logit_bias", logit_bias.size(), "at most 1024 entries");
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0 || token >= n_vocab) {
      return InvalidFieldError(
          "logit_bias",
          absl::StrCat("token ", token, " is outside the vocabulary [0, ", n_vocab, ")"));
    }
    if (!std::isfinite(bias) || bias < -100 || bias > 100) {
      return InvalidFieldError("logit_bias", absl::StrCat("bias ", bias, " for token ", token,
                                                          " must be within [-100, 100]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shardlm
