#include "coordinator/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace shardlm {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEndOfText: return "eos";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kDeadline: return "deadline";
    case FinishReason::kError: return "error";
  }
  return "unknown";
}

// Everything the coordinator keeps per sequence. `tokens` (prompt then every
// sampled token) is what lets any stage's KV be rebuilt by replaying it.
struct Engine::Sequence {
  uint64_t id = 0;
  GenerationRequest request;
  std::shared_ptr<GenerationObserver> observer;
  std::vector<int32_t> tokens;
  int n_prompt = 0;
  int n_cached = 0;  // leading tokens whose KV every stage holds
  Sampler sampler;
  StreamDetokenizer detokenizer;
  StopMatcher stops;
  absl::Time submitted, prefill_started, first_token, last_token;

  Sequence(GenerationRequest r, std::shared_ptr<GenerationObserver> o, const Tokenizer& tok,
           bool strip_leading_space)
      : request(std::move(r)),
        observer(std::move(o)),
        sampler(request.params),
        detokenizer(tok, DecodeOptions{.strip_leading_space = strip_leading_space}),
        stops(request.params.stop) {}
  int generated() const { return static_cast<int>(tokens.size()) - n_prompt; }
};

Engine::Engine(Pipeline* pipeline, const Tokenizer* tokenizer, EngineOptions options)
    : pipeline_(pipeline), tokenizer_(tokenizer), options_(options) {
  thread_ = std::thread([this] { Loop(); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

absl::StatusOr<uint64_t> Engine::Submit(GenerationRequest request,
                                        std::shared_ptr<GenerationObserver> observer) {
  const int n_ctx = pipeline_->model().n_ctx;
  if (request.prompt.empty()) {
    return absl::InvalidArgumentError("prompt: empty (it needs at least one token, e.g. BOS)");
  }
  if (static_cast<int>(request.prompt.size()) >= n_ctx) {
    return absl::InvalidArgumentError(absl::StrCat("prompt: ", request.prompt.size(),
                                                   " tokens do not fit the context of ", n_ctx,
                                                   " with room to generate"));
  }
  if (absl::Status st = tokenizer_->CheckIds(request.prompt); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("prompt: ", st.message()));
  }
  if (absl::Status st = request.params.Validate(tokenizer_->n_vocab()); !st.ok()) return st;
  // With nothing but control tokens (BOS) before it, the first generated
  // piece starts the text: drop its SentencePiece space as llama2.c does.
  bool only_control = true;
  for (int32_t t : request.prompt) {
    only_control &= tokenizer_->token_type(t) == TokenType::kControl;
  }
  auto seq = std::make_unique<Sequence>(std::move(request), std::move(observer), *tokenizer_,
                                        only_control);
  seq->tokens = seq->request.prompt;
  seq->n_prompt = static_cast<int>(seq->tokens.size());
  for (int32_t t : seq->tokens) seq->sampler.Accept(t);
  seq->submitted = absl::Now();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "server busy: ", active_count_, " sequences running and ", queue_.size(),
          " requests already waiting (the queue holds ", options_.max_queued, "); retry later"));
    }
    id = seq->id = next_id_++;
    queue_.push_back(std::move(seq));
  }
  cv_.notify_all();
  return id;
}

void Engine::Cancel(uint64_t id) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancel_requests_.push_back(id);
  }
  cv_.notify_all();
}

int Engine::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  return active_count_;
}

int Engine::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

void Engine::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        return stopping_ || !queue_.empty() || !cancel_requests_.empty() || !active_.empty();
      });
      if (stopping_) break;
    }
    Step();
  }
  // Shutting down: everything still here ends as cancelled.
  std::deque<std::unique_ptr<Sequence>> queued;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queued.swap(queue_);
  }
  for (auto& s : queued) Finish(s.get(), FinishReason::kCancelled, absl::OkStatus());
  for (auto& s : active_) Finish(s.get(), FinishReason::kCancelled, absl::OkStatus());
  active_.clear();
}

void Engine::Finish(Sequence* s, FinishReason reason, const absl::Status& error) {
  if (s->n_cached > 0 || s->prefill_started != absl::Time()) {
    if (absl::Status st = pipeline_->Release(s->id); !st.ok()) {
      SHARDLM_LOG(kWarning, "request %s: releasing KV failed: %s", s->request.request_id,
                  std::string(st.message()));
    }
  }
  // Text held back for a possible stop string or an unfinished character.
  std::string tail = s->detokenizer.Flush();
  tail = s->stops.Push(tail) + s->stops.Flush();
  if (!tail.empty()) s->observer->OnToken(GeneratedToken{.id = -1, .text = tail});
  GenerationStats st;
  st.prompt_tokens = s->n_prompt;
  st.generated_tokens = s->generated();
  const absl::Time now = absl::Now();
  st.total_ms = absl::ToDoubleMilliseconds(now - s->submitted);
  if (s->first_token != absl::Time()) {
    st.time_to_first_token_ms = absl::ToDoubleMilliseconds(s->first_token - s->submitted);
    const double prefill_s = absl::ToDoubleSeconds(s->first_token - s->prefill_started);
    if (prefill_s > 0) st.prompt_tokens_per_s = s->n_prompt / prefill_s;
    const double decode_s = absl::ToDoubleSeconds(s->last_token - s->first_token);
    if (decode_s > 0) st.generation_tokens_per_s = (st.generated_tokens - 1) / decode_s;
  }
  s->observer->OnFinish(reason, st, error);
}

void Engine::EmitToken(Sequence* s, const SampledToken& sampled) {
  const absl::Time now = absl::Now();
  if (s->first_token == absl::Time()) s->first_token = now;
  s->last_token = now;
  s->tokens.push_back(sampled.token);
  s->sampler.Accept(sampled.token);
  const SamplingParams& p = s->request.params;
  const bool eos = tokenizer_->IsEndOfGeneration(sampled.token) && !p.ignore_eos;
  GeneratedToken out{sampled.token, "", sampled.logprob, sampled.top_logprobs};
  if (!eos) out.text = s->stops.Push(s->detokenizer.Push(sampled.token));
  s->observer->OnToken(out);
}

bool Engine::Step() {
  // 1. Admit, cancel, expire.
  std::vector<uint64_t> cancels;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancels.swap(cancel_requests_);
    while (!queue_.empty() && static_cast<int>(active_.size()) < options_.max_active) {
      active_.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
  const absl::Time now = absl::Now();
  auto ended = [&](const std::unique_ptr<Sequence>& s) {
    if (std::find(cancels.begin(), cancels.end(), s->id) != cancels.end()) {
      Finish(s.get(), FinishReason::kCancelled, absl::OkStatus());
      return true;
    }
    if (now > s->request.deadline) {
      Finish(s.get(), FinishReason::kDeadline, absl::DeadlineExceededError("deadline passed"));
      return true;
    }
    return false;
  };
  active_.erase(std::remove_if(active_.begin(), active_.end(), ended), active_.end());
  {
    // Cancels of requests still in the queue.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (std::find(cancels.begin(), cancels.end(), (*it)->id) != cancels.end()) {
        Finish(it->get(), FinishReason::kCancelled, absl::OkStatus());
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    active_count_ = static_cast<int>(active_.size());
  }
  if (active_.empty()) return false;

  // 2. One batch: decode tokens first (they are cheap and latency-bound),
  // then prompt chunks within the remaining token budget.
  batch_.seq_ids.clear();
  batch_.positions.clear();
  batch_.tokens.clear();
  batch_.want_logits.clear();
  std::vector<Sequence*> in_batch;
  std::vector<int> counts;
  int budget = options_.max_batch_tokens;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& s : active_) {
      const int pending = static_cast<int>(s->tokens.size()) - s->n_cached;
      const bool decoding = pending == 1 && s->generated() > 0;
      if (pending <= 0 || decoding != (pass == 0) || budget <= 0) continue;
      const int take = std::min({pending, options_.prefill_chunk, budget});
      if (s->prefill_started == absl::Time()) s->prefill_started = absl::Now();
      for (int i = 0; i < take; ++i) {
        const int pos = s->n_cached + i;
        batch_.seq_ids.push_back(s->id);
        batch_.positions.push_back(pos);
        batch_.tokens.push_back(s->tokens[pos]);
        batch_.want_logits.push_back(i == take - 1 && take == pending);
      }
      in_batch.push_back(s.get());
      counts.push_back(take);
      budget -= take;
    }
  }
  if (in_batch.empty()) return false;

  // 3. Forward through every stage.
  absl::Status st = pipeline_->Forward(batch_, &result_);
  if (!st.ok()) {
    SHARDLM_LOG(kError, "forward of %d tokens failed: %s", static_cast<int>(batch_.n_tokens()),
                std::string(st.message()));
    for (Sequence* s : in_batch) {
      Finish(s, FinishReason::kError, st);
      s->n_cached = -1;  // marks it for removal below
    }
    active_.erase(std::remove_if(active_.begin(), active_.end(),
                                 [](const auto& s) { return s->n_cached < 0; }),
                  active_.end());
    return true;
  }

  // 4. Sample for every sequence whose chunk reached its last token.
  const int n_vocab = pipeline_->model().n_vocab;
  size_t row = 0;
  for (size_t i = 0; i < in_batch.size(); ++i) {
    Sequence* s = in_batch[i];
    s->n_cached += counts[i];
    if (s->n_cached != static_cast<int>(s->tokens.size())) continue;  // prompt not done yet
    const float* logits = result_.logits.data() + row * n_vocab;
    ++row;
    EmitToken(s, s->sampler.Sample(absl::MakeConstSpan(logits, n_vocab)));
  }

  // 5. Retire finished sequences.
  auto done = [&](const std::unique_ptr<Sequence>& s) {
    if (s->generated() == 0) return false;
    const SamplingParams& p = s->request.params;
    FinishReason reason;
    if (tokenizer_->IsEndOfGeneration(s->tokens.back()) && !p.ignore_eos) {
      reason = FinishReason::kEndOfText;
    } else if (s->stops.stopped()) {
      reason = FinishReason::kStop;
    } else if (s->generated() >= p.max_tokens ||
               static_cast<int>(s->tokens.size()) >= pipeline_->model().n_ctx) {
      reason = FinishReason::kLength;
    } else {
      return false;
    }
    Finish(s.get(), reason, absl::OkStatus());
    return true;
  };
  active_.erase(std::remove_if(active_.begin(), active_.end(), done), active_.end());
  return true;
}

}  // namespace shardlm
