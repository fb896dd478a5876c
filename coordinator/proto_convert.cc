#include "coordinator/proto_convert.h"

#include <algorithm>
#include <utility>

#include "common/tokenizer/utf8.h"

namespace shardlm {

SamplingParams SamplingFromProto(const v1::SamplingParams& p) {
  SamplingParams s;
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_k()) s.top_k = p.top_k();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_min_p()) s.min_p = p.min_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  if (p.has_presence_penalty()) s.presence_penalty = p.presence_penalty();
  if (p.has_frequency_penalty()) s.frequency_penalty = p.frequency_penalty();
  if (p.has_penalty_window()) s.penalty_window = p.penalty_window();
  if (p.has_seed()) s.seed = p.seed();
  if (p.has_max_tokens()) s.max_tokens = p.max_tokens();
  s.stop.assign(p.stop().begin(), p.stop().end());
  s.ignore_eos = p.ignore_eos();
  for (const auto& [token, bias] : p.logit_bias()) s.logit_bias.push_back({token, bias});
  std::sort(s.logit_bias.begin(), s.logit_bias.end());  // map order is unspecified
  s.top_logprobs = p.top_logprobs();
  s.speculation = !p.no_speculation();
  return s;
}

OutputFormat OutputFormatFromProto(const v1::SamplingParams& p) {
  OutputFormat f;
  const int set = !p.json_schema().empty() + !p.grammar().empty() + p.json_object();
  if (set > 1) {
    f.kind = OutputFormat::Kind::kJsonObject;
    f.field = "sampling";
    f.error = "set at most one of json_schema, grammar and json_object";
    return f;
  }
  if (!p.json_schema().empty()) {
    f.kind = OutputFormat::Kind::kJsonSchema;
    f.source = p.json_schema();
    f.field = "sampling.json_schema";
  } else if (!p.grammar().empty()) {
    f.kind = OutputFormat::Kind::kGrammar;
    f.source = p.grammar();
    f.field = "sampling.grammar";
  } else if (p.json_object()) {
    f.kind = OutputFormat::Kind::kJsonObject;
    f.field = "sampling.json_object";
  }
  return f;
}

v1::SamplingParams SamplingToProto(const SamplingParams& s) {
  v1::SamplingParams p;
  p.set_temperature(s.temperature);
  p.set_top_k(s.top_k);
  p.set_top_p(s.top_p);
  p.set_min_p(s.min_p);
  p.set_repetition_penalty(s.repetition_penalty);
  p.set_presence_penalty(s.presence_penalty);
  p.set_frequency_penalty(s.frequency_penalty);
  p.set_penalty_window(s.penalty_window);
  p.set_seed(s.seed);
  p.set_max_tokens(s.max_tokens);
  for (const std::string& stop : s.stop) p.add_stop(stop);
  p.set_ignore_eos(s.ignore_eos);
  for (const auto& [token, bias] : s.logit_bias) (*p.mutable_logit_bias())[token] = bias;
  p.set_top_logprobs(s.top_logprobs);
  p.set_no_speculation(!s.speculation);
  return p;
}

namespace {

// The reasons a summary can carry; kError and kDeadline end a stream with a
// status instead.
constexpr std::pair<FinishReason, v1::FinishReason> kFinishReasons[] = {
    {FinishReason::kLength, v1::FINISH_REASON_LENGTH},
    {FinishReason::kStop, v1::FINISH_REASON_STOP},
    {FinishReason::kEndOfText, v1::FINISH_REASON_EOS},
    {FinishReason::kCancelled, v1::FINISH_REASON_CANCELLED},
};

}  // namespace

v1::FinishReason FinishReasonToProto(FinishReason reason) {
  for (const auto& [engine, proto] : kFinishReasons) {
    if (engine == reason) return proto;
  }
  return v1::FINISH_REASON_CANCELLED;
}

FinishReason FinishReasonFromProto(v1::FinishReason reason) {
  for (const auto& [engine, proto] : kFinishReasons) {
    if (proto == reason) return engine;
  }
  return FinishReason::kError;
}

v1::GeneratedChunk ChunkToProto(const GeneratedToken& t, const Tokenizer& tokenizer) {
  v1::GeneratedChunk c;
  c.set_token_id(t.id);
  c.set_text(t.text);
  c.set_logprob(t.logprob);
  for (const TokenLogprob& alt : t.top_logprobs) {
    v1::TokenLogprob* p = c.add_top_logprobs();
    p->set_token_id(alt.token);
    p->set_logprob(alt.logprob);
    // proto3 strings must be UTF-8 (strict clients fail the whole stream
    // otherwise): the text is sanitized, the exact bytes travel in `raw`.
    std::string piece = tokenizer.TokenPiece(alt.token);
    p->set_text(SanitizeUtf8(piece));
    p->set_raw(std::move(piece));
  }
  return c;
}

GeneratedToken TokenFromProto(const v1::GeneratedChunk& c) {
  GeneratedToken t;
  t.id = c.token_id();
  t.text = c.text();
  t.logprob = c.logprob();
  for (const v1::TokenLogprob& alt : c.top_logprobs()) {
    t.top_logprobs.push_back({alt.token_id(), alt.logprob()});
  }
  return t;
}

ClientRequest ClientRequestFromProto(const v1::GenerateRequest& r) {
  ClientRequest c;
  if (r.prompt_tokens_size() > 0) {
    c.kind = ClientRequest::Kind::kTokens;
    c.tokens.assign(r.prompt_tokens().begin(), r.prompt_tokens().end());
    c.prompt_field = "prompt_tokens";
  } else {
    c.kind = ClientRequest::Kind::kText;
    c.text = r.prompt();
    c.add_bos = r.has_add_bos() ? r.add_bos() : true;
  }
  c.params = SamplingFromProto(r.sampling());
  c.output_format = OutputFormatFromProto(r.sampling());
  c.request_id = r.request_id();
  return c;
}

ClientRequest ClientRequestFromProto(const v1::ChatRequest& r) {
  ClientRequest c;
  c.kind = ClientRequest::Kind::kChat;
  c.messages.reserve(r.messages_size());
  for (const v1::ChatMessage& m : r.messages()) c.messages.push_back({m.role(), m.content()});
  c.chat_template = r.template_();
  c.prompt_field = "messages";
  c.params = SamplingFromProto(r.sampling());
  c.output_format = OutputFormatFromProto(r.sampling());
  c.request_id = r.request_id();
  return c;
}

v1::GenerationSummary SummaryToProto(FinishReason reason, const GenerationStats& s) {
  v1::GenerationSummary m;
  m.set_finish_reason(FinishReasonToProto(reason));
  m.set_prompt_tokens(s.prompt_tokens);
  m.set_generated_tokens(s.generated_tokens);
  m.set_time_to_first_token_ms(s.time_to_first_token_ms);
  m.set_prompt_tokens_per_second(s.prompt_tokens_per_s);
  m.set_generation_tokens_per_second(s.generation_tokens_per_s);
  m.set_total_ms(s.total_ms);
  return m;
}

GenerationStats StatsFromProto(const v1::GenerationSummary& m) {
  GenerationStats s;
  s.prompt_tokens = m.prompt_tokens();
  s.generated_tokens = m.generated_tokens();
  s.time_to_first_token_ms = m.time_to_first_token_ms();
  s.prompt_tokens_per_s = m.prompt_tokens_per_second();
  s.generation_tokens_per_s = m.generation_tokens_per_second();
  s.total_ms = m.total_ms();
  return s;
}

}  // namespace shardlm
