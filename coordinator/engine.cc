#include "coordinator/engine.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "coordinator/grammar/token_constraint.h"
#include "coordinator/speculative/acceptance.h"
#include "coordinator/speculative/ngram_drafter.h"

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
  // Leading positions computed by the gemm-and-batched kernels (what a
  // fresh prefill computes them with): what a prefix-cache entry may hold.
  int exact_prefix = 0;
  bool cache_looked_up = false;
  Sampler sampler;
  StreamDetokenizer detokenizer;
  StopMatcher stops;
  std::unique_ptr<TokenConstraint> constraint;  // constrained sampling, or null
  absl::Status constraint_error;                // the grammar cannot go on: fail the request
  // Speculative decoding, when on for this request (null otherwise): the
  // drafter sees every token of `tokens`; `drafts` are the ones sent after
  // the last token in the current step (empty when none).
  std::unique_ptr<NgramDrafter> drafter;
  bool model_drafts = false;  // drafts from options.draft_model instead
  std::vector<int32_t> drafts;
  bool speculates() const { return drafter != nullptr || model_drafts; }
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

// A micro-batch: its sequences and the route (a replica per range) their
// KV lives on. Only the group's own thread runs its batches, so a sequence
// is never in flight twice.
struct Engine::Group {
  int index = 0;
  std::vector<std::unique_ptr<Sequence>> seqs;
  absl::Time stalled_since;  // when it lost its last replica of some range
  // Where its KV lives, as of its last RouteLocked. Written only by the
  // group's own thread under the engine's lock; that thread also reads it
  // with the lock released (its calls), other threads only under the lock.
  Route route;
};

// One observer call, made once the engine's lock is released.
struct Engine::Event {
  std::shared_ptr<GenerationObserver> observer;
  bool finish = false;  // OnFinish (else OnToken)
  GeneratedToken token;
  FinishReason reason = FinishReason::kError;
  GenerationStats stats;
  absl::Status error;

  static Event Token(std::shared_ptr<GenerationObserver> observer, GeneratedToken token) {
    Event e;
    e.observer = std::move(observer);
    e.token = std::move(token);
    return e;
  }
  static Event Finish(std::shared_ptr<GenerationObserver> observer, FinishReason reason,
                      const GenerationStats& stats, const absl::Status& error) {
    Event e;
    e.observer = std::move(observer);
    e.finish = true;
    e.reason = reason;
    e.stats = stats;
    e.error = error;
    return e;
  }
};

// One step's batch of a group and what it needs to apply the result.
struct Engine::Batch {
  ForwardRequest request;
  ForwardResult result;
  std::vector<Sequence*> seqs;
  std::vector<int> counts;  // tokens of each sequence in the batch
  // The plan BuildBatchLocked makes: tokens of each sequence before drafts,
  // and the budget left for drafts.
  std::vector<int> takes;
  int draft_budget = 0;
  // Set when this batch's previous try, with drafts, found a stage's KV
  // budget full: the retry goes without them (plain decoding fits where
  // the drafts' extra positions did not).
  bool without_drafts = false;
};

// Draft tokens per sequence and step at most: beyond this a draft is almost
// never accepted whole and the verification pass only costs compute.
constexpr int kMaxSpecDraft = 32;

absl::Status ValidateEngineOptions(const EngineOptions& o) {
  auto check = [](bool ok, const char* flag, int value, const char* range) {
    return ok ? absl::OkStatus()
              : absl::InvalidArgumentError(absl::StrCat(flag, " is ", value, ", must be ", range));
  };
  RETURN_IF_ERROR(check(o.max_active >= 1, "--max-active", o.max_active, ">= 1"));
  RETURN_IF_ERROR(check(o.max_queued >= 0, "--max-queued", o.max_queued, ">= 0"));
  RETURN_IF_ERROR(check(o.prefill_chunk >= 1, "--prefill-chunk", o.prefill_chunk, ">= 1"));
  RETURN_IF_ERROR(
      check(o.max_batch_tokens >= 1, "--max-batch-tokens", o.max_batch_tokens, ">= 1"));
  RETURN_IF_ERROR(check(o.micro_batches >= 0 && o.micro_batches <= 64, "--micro-batches",
                        o.micro_batches, "0 (one per layer range) to 64"));
  RETURN_IF_ERROR(check(o.spec_ngram >= 0 && o.spec_ngram <= kMaxSpecDraft, "--spec-ngram",
                        o.spec_ngram, absl::StrCat("0 (off) to ", kMaxSpecDraft).c_str()));
  if (o.draft_model != nullptr) {
    RETURN_IF_ERROR(check(o.spec_draft >= 1 && o.spec_draft <= kMaxSpecDraft, "--spec-draft",
                          o.spec_draft, absl::StrCat("1 to ", kMaxSpecDraft).c_str()));
    if (o.spec_ngram > 0) {
      return absl::InvalidArgumentError(
          "--spec-ngram and --draft-model: choose one way of drafting");
    }
  }
  if (o.prefix_cache_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefix-cache-tokens is ", o.prefix_cache_tokens, ", must be >= 0"));
  }
  return absl::OkStatus();
}

Engine::Engine(Pipeline* pipeline, const Tokenizer* tokenizer, EngineOptions options)
    : pipeline_(pipeline),
      tokenizer_(tokenizer),
      options_(options),
      prefix_cache_(options.prefix_cache_tokens) {
  next_id_ = (RandomUint64() & ~(uint64_t{1} << 63)) | 1;
  int groups = options_.micro_batches;
  if (groups <= 0) groups = std::max(pipeline_->n_ranges(), pipeline_->max_replicas());
  for (int g = 0; g < groups; ++g) {
    auto group = std::make_unique<Group>();
    group->index = g;
    groups_.push_back(std::move(group));
  }
  router_ = std::make_unique<ReplicaRouter>(pipeline_, groups, options_.health_interval);
  for (int g = 0; g < groups; ++g) threads_.emplace_back([this, g] { GroupLoop(g); });
}

Engine::~Engine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
  // Everything still here ends as cancelled.
  Outbox outbox;
  std::unique_lock<std::mutex> lock(mu_);
  for (auto& s : queue_) FinishLocked(s.get(), FinishReason::kCancelled, absl::OkStatus(), &outbox);
  queue_.clear();
  for (auto& group : groups_) {
    for (auto& s : group->seqs) {
      FinishLocked(s.get(), FinishReason::kCancelled, absl::OkStatus(), &outbox);
    }
    group->seqs.clear();
  }
  promotions_.clear();  // their sources are in releases_
  prefix_cache_.Clear(&releases_);
  DrainReleases(lock);
  lock.unlock();
  Deliver(&outbox);
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
  if (absl::Status st = request.params.Validate(tokenizer_->n_vocab()); !st.ok()) {
    metrics_.rejected.Add();
    return st;
  }
  // With nothing but control tokens (BOS) before it, the first generated
  // piece starts the text: drop its SentencePiece space as llama2.c does.
  bool only_control = true;
  for (int32_t t : request.prompt) {
    only_control &= tokenizer_->token_type(t) == TokenType::kControl;
  }
  auto seq = std::make_unique<Sequence>(std::move(request), std::move(observer), *tokenizer_,
                                        only_control);
  if (seq->request.params.grammar != nullptr) {
    // Every token's bytes in a trie, built once on the first constrained request.
    std::call_once(vocab_trie_once_, [this] { vocab_trie_ = VocabTrie::Build(*tokenizer_); });
    seq->constraint = std::make_unique<TokenConstraint>(
        seq->request.params.grammar, vocab_trie_,
        /*strip_first_space=*/only_control && tokenizer_->strips_leading_space());
  }
  seq->tokens = seq->request.prompt;
  seq->n_prompt = static_cast<int>(seq->tokens.size());
  // Grammar-constrained requests decode plainly: a draft would have to be
  // walked through the grammar's automaton position by position, and the
  // masks are computed per sampled position anyway.
  if (seq->request.params.speculation && seq->constraint == nullptr) {
    if (options_.draft_model != nullptr) {
      seq->model_drafts = true;
    } else if (options_.spec_ngram > 0) {
      seq->drafter = std::make_unique<NgramDrafter>();
      seq->drafter->Sync(seq->tokens);
    }
  }
  for (int32_t t : seq->tokens) seq->sampler.Accept(t);
  seq->submitted = absl::Now();
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (static_cast<int>(queue_.size()) >= options_.max_queued) {
      metrics_.rejected.Add();
      return absl::ResourceExhaustedError(absl::StrCat(
          "server busy: ", options_.max_active, " sequences running and ", queue_.size(),
          " requests already waiting (the queue holds ", options_.max_queued, "); retry later"));
    }
    id = seq->id = next_id_++;
    if (seq->request.request_id.empty()) seq->request.request_id = absl::StrCat("req-", id);
    SHARDLM_LOG(kDebug, "request %s: queued, %d prompt tokens", seq->request.request_id,
                seq->n_prompt);
    queue_.push_back(std::move(seq));
    metrics_.submitted.Add();
  }
  cv_.notify_all();
  return id;
}

void Engine::Cancel(uint64_t id) {
  std::unique_lock<std::mutex> lock(mu_);
  for (auto it = queue_.begin(); it != queue_.end(); ++it) {
    if ((*it)->id == id) {
      Outbox outbox;
      FinishLocked(it->get(), FinishReason::kCancelled, absl::OkStatus(), &outbox);
      queue_.erase(it);
      lock.unlock();
      Deliver(&outbox);
      return;
    }
  }
  // Running: its group retires it before its next batch.
  cancel_requests_.insert(id);
  lock.unlock();
  cv_.notify_all();
}

int Engine::active() const {
  std::lock_guard<std::mutex> lock(mu_);
  int n = 0;
  for (const auto& g : groups_) n += static_cast<int>(g->seqs.size());
  return n;
}

void Engine::RenderMetrics(MetricsPage* page) const {
  const EngineMetrics& m = metrics_;
  page->Counter("shardlm_requests_total", "Requests accepted", m.submitted.value());
  page->Counter("shardlm_requests_rejected_total", "Requests refused at submit (invalid, queue full)",
                m.rejected.value());
  for (int r = 0; r < 6; ++r) {
    page->Counter("shardlm_requests_finished_total", "Requests ended, by finish reason",
                  m.finished[r].value(),
                  absl::StrCat("reason=\"", FinishReasonName(static_cast<FinishReason>(r)), "\""));
  }
  page->Counter("shardlm_prompt_tokens_total", "Prompt tokens of ended requests", m.prompt_tokens.value());
  page->Counter("shardlm_generated_tokens_total", "Generated tokens of ended requests",
                m.generated_tokens.value());
  router_->RenderMetrics(page);
  page->Gauge("shardlm_queue_depth", "Requests waiting for a slot", queued());
  page->Gauge("shardlm_active_sequences", "Sequences being decoded", active());
  page->Histogram("shardlm_time_to_first_token_seconds", "Submit to first generated token",
                  m.time_to_first_token);
  page->Histogram("shardlm_inter_token_seconds", "Gap between consecutive tokens of a request",
                  m.inter_token);
  page->Histogram("shardlm_request_seconds", "Submit to end of request", m.request_seconds);
  page->Counter("shardlm_spec_draft_tokens_total",
                "Speculative decoding: draft tokens sent for verification",
                m.spec_draft_tokens.value());
  page->Counter("shardlm_spec_accepted_tokens_total",
                "Speculative decoding: draft tokens the target model accepted",
                m.spec_accepted_tokens.value());
  page->Counter("shardlm_spec_passes_total",
                "Speculative decoding: verification passes (a sequence's step with drafts)",
                m.spec_passes.value());
  page->Counter("shardlm_spec_retries_without_drafts_total",
                "Speculative decoding: batches run again without drafts because a stage's KV "
                "budget was full",
                m.spec_retries_without_drafts.value());
  page->Histogram("shardlm_tokens_per_pass", "Tokens a sequence emitted per pipeline pass",
                  m.tokens_per_pass);
  page->Counter("shardlm_prefix_cache_queries_total", "Requests looked up in the prefix cache",
                m.prefix_queries.value());
  page->Counter("shardlm_prefix_cache_hits_total", "Requests that reused a cached prefix",
                m.prefix_hits.value());
  page->Counter("shardlm_prefix_cache_query_tokens_total", "Prompt tokens of the requests looked up",
                m.prefix_query_tokens.value());
  page->Counter("shardlm_prefix_cache_hit_tokens_total",
                "Prompt tokens whose KV was reused instead of computed", m.prefix_hit_tokens.value());
  {
    std::lock_guard<std::mutex> lock(mu_);
    page->Gauge("shardlm_prefix_cache_entries", "Sequences the prefix cache keeps on the stages",
                prefix_cache_.entries());
    page->Gauge("shardlm_prefix_cache_tokens", "Tokens of the prefix cache's entries",
                static_cast<double>(prefix_cache_.tokens()));
  }
}

int Engine::queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(queue_.size());
}

void Engine::AdmitLocked() {
  int active = 0;
  for (const auto& g : groups_) active += static_cast<int>(g->seqs.size());
  bool admitted = false;
  while (!queue_.empty() && active < options_.max_active) {
    PickGroupLocked(*queue_.front())->seqs.push_back(std::move(queue_.front()));
    queue_.pop_front();
    ++active;
    admitted = true;
  }
  if (admitted) cv_.notify_all();
}

Engine::Group* Engine::PickGroupLocked(const Sequence& s) {
  Group* least = groups_.front().get();
  for (auto& g : groups_) {
    if (g->seqs.size() < least->seqs.size()) least = g.get();
  }
  if (!options_.prefix_cache || prefix_cache_.entries() == 0) return least;
  // One sequence more than the least loaded group at most: a popular prefix
  // never piles every request onto one group.
  Group* best = least;
  int best_common = prefix_cache_.Find(s.tokens, least->route).common;
  for (auto& g : groups_) {
    // Groups usually share a route (one replica per range); one on the best
    // route so far has nothing longer to offer: no second scan of it.
    if (g->seqs.size() > least->seqs.size() + 1 || g->route == best->route) continue;
    const int common = prefix_cache_.Find(s.tokens, g->route).common;
    if (common > best_common) {
      best = g.get();
      best_common = common;
    }
  }
  return best;
}

// Forks below this many positions are not worth the calls.
constexpr int kMinReusedPositions = 8;

void Engine::ForkCachedPrefixes(Group& group, std::unique_lock<std::mutex>& lock) {
  if (!options_.prefix_cache) return;
  const Route& route = group.route;
  struct Pending {
    Sequence* seq;
    SeqId entry;
    int n;
    absl::Status status;
  };
  std::vector<Pending> forks;
  for (auto& s : group.seqs) {
    if (s->cache_looked_up || s->prefill_started != absl::Time()) continue;
    s->cache_looked_up = true;
    metrics_.prefix_queries.Add();
    metrics_.prefix_query_tokens.Add(s->n_prompt);
    const PrefixCache::Match m =
        prefix_cache_.Acquire(absl::MakeConstSpan(s->tokens).first(s->n_prompt), route);
    if (m.common == 0) continue;
    const int n = ExactForkLength(m.common, s->n_prompt, options_.prefill_chunk);
    if (n < kMinReusedPositions) {
      prefix_cache_.Unpin(m.entry);
      continue;
    }
    forks.push_back({s.get(), m.entry, n, absl::OkStatus()});
  }
  if (forks.empty()) return;
  lock.unlock();
  for (Pending& f : forks) {
    f.status = pipeline_->Fork(f.seq->id, f.entry, f.n, /*cache_entry=*/false, route);
  }
  lock.lock();
  const absl::Time now = absl::Now();
  for (Pending& f : forks) {
    prefix_cache_.Unpin(f.entry);
    if (f.status.ok()) {
      f.seq->n_cached = f.seq->exact_prefix = f.n;
      f.seq->prefill_started = now;  // holds KV from now on
      metrics_.prefix_hits.Add();
      metrics_.prefix_hit_tokens.Add(f.n);
      SHARDLM_LOG(kDebug, "request %s: reuses %d cached prompt tokens of %d",
                  f.seq->request.request_id, f.n, f.seq->n_prompt);
      continue;
    }
    // The prompt is computed in full instead: nothing is lost but time.
    SHARDLM_LOG(kInfo, "request %s: prefix-cache fork failed, computing the prompt: %s",
                f.seq->request.request_id, std::string(f.status.message()));
    if (f.status.code() == absl::StatusCode::kResourceExhausted) {
      prefix_cache_.EvictOne(&releases_);
    } else {
      prefix_cache_.Drop(f.entry, &releases_);  // its KV is gone (e.g. a worker restarted)
    }
  }
}

void Engine::PromoteLocked(const Sequence& s, const Route& route) {
  // Chunks of a size not a multiple of 4 leave nothing exactly reusable.
  if (!options_.prefix_cache || s.prefill_started == absl::Time() ||
      options_.prefill_chunk % 4 != 0) {
    return;
  }
  const int n = std::min(s.exact_prefix, static_cast<int>(s.tokens.size()));
  if (n < kMinReusedPositions) return;
  std::vector<int32_t> tokens(s.tokens.begin(), s.tokens.begin() + n);
  if (prefix_cache_.Covers(tokens, route)) return;
  promotions_.push_back(Promotion{s.id, next_id_++, std::move(tokens), route});
}

void Engine::Deliver(Outbox* outbox) {
  for (Event& e : *outbox) {
    if (e.finish) {
      e.observer->OnFinish(e.reason, e.stats, e.error);
    } else {
      e.observer->OnToken(e.token);
    }
  }
  outbox->clear();
}

void Engine::FinishLocked(Sequence* s, FinishReason reason, const absl::Status& error,
                          Outbox* outbox) {
  if (s->prefill_started != absl::Time()) releases_.push_back(s->id);
  // Text held back for a possible stop string or an unfinished character.
  std::string tail = s->detokenizer.Flush();
  tail = s->stops.Push(tail) + s->stops.Flush();
  if (!tail.empty()) {
    GeneratedToken last;  // text only: no token of its own
    last.id = -1;
    last.text = std::move(tail);
    outbox->push_back(Event::Token(s->observer, std::move(last)));
  }
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
  SHARDLM_LOG(kInfo, "request %s: %s after %d prompt + %d generated tokens, first token %.1f ms, %.1f "
              "tokens/s%s",
              s->request.request_id, FinishReasonName(reason), st.prompt_tokens, st.generated_tokens,
              st.time_to_first_token_ms, st.generation_tokens_per_s,
              error.ok() ? "" : absl::StrCat(": ", error.message()));
  metrics_.finished[static_cast<int>(reason)].Add();
  metrics_.prompt_tokens.Add(st.prompt_tokens);
  metrics_.generated_tokens.Add(st.generated_tokens);
  metrics_.request_seconds.Observe(st.total_ms / 1000);
  outbox->push_back(Event::Finish(s->observer, reason, st, error));
}

void Engine::DrainReleases(std::unique_lock<std::mutex>& lock) {
  if (releases_.empty() && promotions_.empty()) return;
  std::vector<SeqId> ids;
  ids.swap(releases_);
  std::vector<Promotion> promotions;
  promotions.swap(promotions_);
  lock.unlock();
  // Before the sources are released: an entry keeps (shares) the blocks of
  // its source's prompt and drops the rest.
  std::vector<bool> made(promotions.size());
  for (size_t i = 0; i < promotions.size(); ++i) {
    const Promotion& p = promotions[i];
    const absl::Status st = pipeline_->Fork(p.entry, p.src, static_cast<int>(p.tokens.size()),
                                            /*cache_entry=*/true, p.route);
    made[i] = st.ok();
    if (!st.ok()) {
      SHARDLM_LOG(kDebug, "prefix cache: keeping %d tokens failed: %s",
                  static_cast<int>(p.tokens.size()), std::string(st.message()));
    }
  }
  if (options_.draft_model != nullptr) {
    for (SeqId id : ids) options_.draft_model->Release(id);
  }
  if (absl::Status st = pipeline_->Release(ids); !st.ok()) {
    SHARDLM_LOG(kWarning, "releasing the KV of %d finished sequences failed: %s",
                static_cast<int>(ids.size()), std::string(st.message()));
  }
  lock.lock();
  for (size_t i = 0; i < promotions.size(); ++i) {
    if (!made[i]) continue;
    Promotion& p = promotions[i];
    prefix_cache_.Insert(p.entry, std::move(p.tokens), std::move(p.route), &releases_);
  }
}

void Engine::EmitTokenLocked(Sequence* s, const SampledToken& sampled, Outbox* outbox) {
  const absl::Time now = absl::Now();
  if (s->first_token == absl::Time()) {
    s->first_token = now;
    metrics_.time_to_first_token.Observe(absl::ToDoubleSeconds(now - s->submitted));
  } else {
    metrics_.inter_token.Observe(absl::ToDoubleSeconds(now - s->last_token));
  }
  s->last_token = now;
  s->tokens.push_back(sampled.token);
  s->sampler.Accept(sampled.token);
  if (s->drafter != nullptr) s->drafter->Sync(s->tokens);
  if (s->constraint != nullptr) {
    if (absl::Status st = s->constraint->Accept(sampled.token); !st.ok()) s->constraint_error = st;
  }
  const SamplingParams& p = s->request.params;
  const bool eos = tokenizer_->IsEndOfGeneration(sampled.token) && !p.ignore_eos;
  GeneratedToken out{sampled.token, "", sampled.logprob, sampled.top_logprobs};
  if (!eos) out.text = s->stops.Push(s->detokenizer.Push(sampled.token));
  outbox->push_back(Event::Token(s->observer, std::move(out)));
}

void Engine::RetireEndedLocked(Group& group, const absl::flat_hash_set<uint64_t>& cancels,
                               Outbox* outbox) {
  const absl::Time now = absl::Now();
  auto ended = [&](const std::unique_ptr<Sequence>& s) {
    if (cancels.contains(s->id)) {
      FinishLocked(s.get(), FinishReason::kCancelled, absl::OkStatus(), outbox);
      return true;
    }
    if (now > s->request.deadline) {
      FinishLocked(s.get(), FinishReason::kDeadline, absl::DeadlineExceededError("deadline passed"),
                   outbox);
      return true;
    }
    return false;
  };
  group.seqs.erase(std::remove_if(group.seqs.begin(), group.seqs.end(), ended), group.seqs.end());
}

bool Engine::BuildBatchLocked(Group& group, Batch* b) {
  b->request.seq_ids.clear();
  b->request.positions.clear();
  b->request.tokens.clear();
  b->request.want_logits.clear();
  b->seqs.clear();
  b->counts.clear();
  b->takes.clear();
  int budget = options_.max_batch_tokens;
  // What each sequence sends: decode tokens first (cheap, latency-bound),
  // then prompt chunks; draft tokens only from what that leaves, so
  // speculation never takes a prompt chunk's share.
  struct Planned {
    Sequence* s;
    int take;
  };
  std::vector<Planned> plan;
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& s : group.seqs) {
      const int pending = static_cast<int>(s->tokens.size()) - s->n_cached;
      const bool decoding = pending == 1 && s->generated() > 0;
      if (pending <= 0 || decoding != (pass == 0) || budget <= 0) continue;
      // Admitted while ForkCachedPrefixes had the lock released: its prefix
      // is looked up first, at the group's next step.
      if (options_.prefix_cache && !s->cache_looked_up) continue;
      // Chunks end at multiples of prefill_chunk, as a fresh prefill's do,
      // also after a forked prefix (same kernels, same numbers).
      const int chunk = options_.prefill_chunk;
      const int take = std::min({pending, chunk - s->n_cached % chunk, budget});
      if (s->prefill_started == absl::Time()) s->prefill_started = absl::Now();
      s->drafts.clear();
      plan.push_back({s.get(), take});
      budget -= take;
    }
  }
  for (const Planned& p : plan) {
    b->seqs.push_back(p.s);
    b->takes.push_back(p.take);
  }
  b->draft_budget = budget;
  return !b->seqs.empty();
}

void Engine::AssembleBatch(Batch* b) {
  const int n_ctx = pipeline_->model().n_ctx;
  const int max_draft = options_.draft_model != nullptr ? options_.spec_draft : options_.spec_ngram;
  int budget = b->without_drafts ? 0 : b->draft_budget;
  b->without_drafts = false;
  for (Sequence* s : b->seqs) {
    if (!s->speculates() || budget <= 0 || s->generated() == 0 ||
        s->n_cached + 1 != static_cast<int>(s->tokens.size())) {
      continue;
    }
    // A step emits up to drafts + 1 tokens: no drafts past max_tokens or
    // the context, where they could never be kept.
    const int size = static_cast<int>(s->tokens.size());
    const int room = std::min(
        {max_draft, budget, s->request.params.max_tokens - s->generated() - 1, n_ctx - size - 1});
    if (room <= 0) continue;
    if (s->drafter != nullptr) {
      s->drafts = s->drafter->Propose(room);
    } else {
      absl::StatusOr<std::vector<int32_t>> d =
          options_.draft_model->Propose(s->id, s->tokens, room);
      if (d.ok()) {
        s->drafts = std::move(*d);
      } else {  // the served model goes on without drafts
        SHARDLM_LOG(kWarning, "request %s: %s", s->request.request_id,
                    std::string(d.status().message()));
      }
    }
    budget -= static_cast<int>(s->drafts.size());
  }
  for (size_t k = 0; k < b->seqs.size(); ++k) {
    Sequence* s = b->seqs[k];
    const int take = b->takes[k];
    const int pending = static_cast<int>(s->tokens.size()) - s->n_cached;
    for (int i = 0; i < take; ++i) {
      const int pos = s->n_cached + i;
      b->request.seq_ids.push_back(s->id);
      b->request.positions.push_back(pos);
      b->request.tokens.push_back(s->tokens[pos]);
      b->request.want_logits.push_back(i == take - 1 && take == pending);
    }
    // Drafts follow the last token: a logits row for every one of them.
    const int n_drafts = static_cast<int>(s->drafts.size());
    for (int i = 0; i < n_drafts; ++i) {
      b->request.seq_ids.push_back(s->id);
      b->request.positions.push_back(s->n_cached + 1 + i);
      b->request.tokens.push_back(s->drafts[i]);
      b->request.want_logits.push_back(1);
    }
    b->counts.push_back(take + n_drafts);
  }
}

void Engine::ComputeMasks(const Batch& b) {
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    Sequence* s = b.seqs[i];
    const bool samples = s->n_cached + b.counts[i] == static_cast<int>(s->tokens.size());
    if (samples && s->constraint != nullptr) s->constraint->Mask();  // kept until its Accept
  }
}

void Engine::ApplyResultLocked(Group& group, Batch& b, Outbox* outbox) {
  const int n_vocab = pipeline_->model().n_vocab;
  size_t row = 0;
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    Sequence* s = b.seqs[i];
    const int count = b.counts[i];
    const int n_drafts = static_cast<int>(s->drafts.size());  // a decode step's
    if (n_drafts == 0) {
      if (s->exact_prefix == s->n_cached && count >= 4) {  // gemm needs 4, batched 2
        s->exact_prefix += count - count % 4;
      }
      s->n_cached += count;
      if (s->n_cached != static_cast<int>(s->tokens.size())) continue;  // prompt not done yet
      // The prompt is in: its exactly computed positions become a cache entry
      // now, so requests arriving while this one generates reuse them too.
      if (s->generated() == 0) PromoteLocked(*s, group.route);
    }
    const float* logits = b.result.logits.data() + row * n_vocab;
    if (s->speculates()) {
      row += n_drafts + 1;
      VerifyLocked(s, logits, n_drafts + 1, outbox);
      continue;
    }
    ++row;
    metrics_.tokens_per_pass.Observe(1);
    // Computed by ComputeMasks outside the lock; here a cached reference.
    const TokenMask* allowed = s->constraint != nullptr ? &s->constraint->Mask() : nullptr;
    if (allowed != nullptr && allowed->Count() == 0) {
      s->constraint_error = absl::InternalError(
          "grammar: no token of the vocabulary can continue the output");
      continue;
    }
    EmitTokenLocked(s, s->sampler.Sample(absl::MakeConstSpan(logits, n_vocab), allowed), outbox);
  }
  auto done = [&](const std::unique_ptr<Sequence>& s) {
    if (!s->constraint_error.ok()) {
      FinishLocked(s.get(), FinishReason::kError, s->constraint_error, outbox);
      return true;
    }
    if (s->generated() == 0 || s->n_cached != static_cast<int>(s->tokens.size()) - 1) return false;
    FinishReason reason;
    if (!ShouldFinish(*s, &reason)) return false;
    FinishLocked(s.get(), reason, absl::OkStatus(), outbox);
    return true;
  };
  group.seqs.erase(std::remove_if(group.seqs.begin(), group.seqs.end(), done), group.seqs.end());
}

bool Engine::ShouldFinish(const Sequence& s, FinishReason* reason) const {
  const SamplingParams& p = s.request.params;
  if (tokenizer_->IsEndOfGeneration(s.tokens.back()) && !p.ignore_eos) {
    *reason = FinishReason::kEndOfText;
  } else if (s.stops.stopped()) {
    *reason = FinishReason::kStop;
  } else if (s.constraint != nullptr && s.constraint->IsComplete()) {
    *reason = FinishReason::kStop;  // the grammar admits nothing more
  } else if (s.generated() >= p.max_tokens ||
             static_cast<int>(s.tokens.size()) >= pipeline_->model().n_ctx) {
    *reason = FinishReason::kLength;
  } else {
    return false;
  }
  return true;
}

void Engine::VerifyLocked(Sequence* s, const float* logits, int rows, Outbox* outbox) {
  const int n_vocab = pipeline_->model().n_vocab;
  const uint64_t seed = s->request.params.seed;
  int emitted = 0;
  for (int j = 0; j < rows; ++j) {
    const absl::Span<const float> row(logits + static_cast<size_t>(j) * n_vocab, n_vocab);
    // p after every transform, with the penalties seeing the tokens emitted
    // before this position (EmitTokenLocked feeds the sampler each one).
    const TokenDistribution p = s->sampler.Distribution(row);
    // The drafter's proposal for this position: drafts[j] when every draft
    // before it was accepted (ngram_drafter.h), also past the drafts sent.
    int32_t draft = -1;
    if (s->drafter != nullptr) {
      draft = s->drafter->ProposeNext();
    } else if (j < static_cast<int>(s->drafts.size())) {
      draft = s->drafts[j];  // the draft model's (its proposals past them are not computed)
    }
    const int64_t pos = static_cast<int64_t>(s->tokens.size());
    const int32_t token = SpeculativeSample(p, draft, /*q=*/nullptr, PositionUniform(seed, pos, 0),
                                            PositionUniform(seed, pos, 1));
    EmitTokenLocked(s, s->sampler.WithLogprobs(row, token), outbox);
    ++emitted;
    const bool accepted = j < static_cast<int>(s->drafts.size()) && token == s->drafts[j];
    if (accepted) metrics_.spec_accepted_tokens.Add();
    FinishReason reason;
    // Tokens after a stop (string, end-of-text, length) are never emitted.
    if (!accepted || ShouldFinish(*s, &reason)) break;
  }
  if (!s->drafts.empty()) {
    metrics_.spec_passes.Add();
    metrics_.spec_draft_tokens.Add(static_cast<double>(s->drafts.size()));
  }
  metrics_.tokens_per_pass.Observe(emitted);
  // The KV of the last token, the accepted drafts (and the rejected ones
  // beyond, which the next step overwrites: a stage rewinds to the first
  // position it is sent) is in; the last emitted token is not.
  s->n_cached = static_cast<int>(s->tokens.size()) - 1;
  s->drafts.clear();
}

// Errors that say the worker is gone or stuck, not that the batch was bad.
bool IsStageFailure(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kCancelled:
    case absl::StatusCode::kUnknown:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kDataLoss:
    case absl::StatusCode::kInternal:
      return true;
    default:
      return false;
  }
}

bool Engine::RouteLocked(Group& group, Outbox* outbox) {
  std::vector<SeqId> kv_holders;
  for (const auto& s : group.seqs) {
    if (s->prefill_started != absl::Time()) kv_holders.push_back(s->id);
  }
  Route route;
  const RouteDecision decision = router_->Prepare(group.index, kv_holders, &route);
  if (!decision.ok) {
    const absl::Time now = absl::Now();
    if (group.stalled_since == absl::Time()) group.stalled_since = now;
    if (now - group.stalled_since >= options_.failover_timeout) {
      FailGroupLocked(group,
                      absl::UnavailableError(absl::StrCat(
                          "no live worker serves ", decision.missing, " (waited ",
                          absl::FormatDuration(options_.failover_timeout), ")")),
                      outbox);
      group.stalled_since = absl::Time();
    }
    return false;
  }
  group.stalled_since = absl::Time();
  if (decision.replay) {
    for (auto& s : group.seqs) s->n_cached = s->exact_prefix = 0;
    // Some stage of the old route lost its KV: its cache entries are
    // broken; release what the live stages still hold of them.
    if (!group.route.empty()) prefix_cache_.DropRoute(group.route, &releases_);
  }
  group.route = std::move(route);
  return true;
}

void Engine::FailGroupLocked(Group& group, const absl::Status& status, Outbox* outbox) {
  for (auto& s : group.seqs) FinishLocked(s.get(), FinishReason::kError, status, outbox);
  group.seqs.clear();
}

void Engine::HandleFailureLocked(Group& group, Batch& b, const absl::Status& status,
                                 const StageFailure& failure, Outbox* outbox) {
  if (status.code() == absl::StatusCode::kResourceExhausted && prefix_cache_.EvictOne(&releases_)) {
    // The budget goes to running requests first: drop a cached prefix
    // (released before the retry) and run the batch again.
    SHARDLM_LOG(kInfo, "micro-batch %d: KV budget full, evicted a prefix-cache entry (%d left)",
                group.index, prefix_cache_.entries());
    return;
  }
  const bool had_drafts = std::any_of(b.seqs.begin(), b.seqs.end(),
                                      [](const Sequence* s) { return !s->drafts.empty(); });
  if (status.code() == absl::StatusCode::kResourceExhausted && had_drafts) {
    // Speculation must never cost a request that plain decoding would
    // finish: run the batch again without the drafts' positions.
    SHARDLM_LOG(kInfo, "micro-batch %d: KV budget full with drafts, retrying without them",
                group.index);
    for (Sequence* s : b.seqs) s->drafts.clear();
    b.without_drafts = true;
    metrics_.spec_retries_without_drafts.Add();
    return;
  }
  if (failure.range < 0 || !IsStageFailure(status)) {
    // The batch itself was refused (bad input, KV budget): its sequences fail.
    SHARDLM_LOG(kError, "micro-batch %d: forward of %d tokens failed: %s", group.index,
                static_cast<int>(b.request.n_tokens()), std::string(status.message()));
    for (Sequence* s : b.seqs) s->n_cached = -1;  // marks them
    for (auto& s : group.seqs) {
      if (s->n_cached < 0) FinishLocked(s.get(), FinishReason::kError, status, outbox);
    }
    group.seqs.erase(std::remove_if(group.seqs.begin(), group.seqs.end(),
                                    [](const auto& s) { return s->n_cached < 0; }),
                     group.seqs.end());
    return;
  }
  // The status names the worker and its layers already.
  SHARDLM_LOG(kWarning, "forward failed: %s", std::string(status.message()));
  router_->ReportFailure(failure);
}

void Engine::GroupLoop(int g) {
  Group& group = *groups_[g];
  Batch batch;
  Outbox outbox;
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    if (!outbox.empty()) {
      // Finished prompts become cache entries before their clients hear of
      // the end: a client's next turn finds them.
      DrainReleases(lock);
      lock.unlock();
      Deliver(&outbox);
      lock.lock();
    }
    cv_.wait_for(lock, std::chrono::milliseconds(100), [&] {
      return stopping_ || !queue_.empty() || !group.seqs.empty() || !releases_.empty();
    });
    if (stopping_) break;
    AdmitLocked();
    DrainReleases(lock);
    if (stopping_) break;
    absl::flat_hash_set<uint64_t> cancels;
    for (auto& s : group.seqs) {
      if (cancel_requests_.erase(s->id) > 0) cancels.insert(s->id);
    }
    RetireEndedLocked(group, cancels, &outbox);
    if (group.seqs.empty()) continue;
    // Every range of the route must be alive (probes may have found a dead
    // one before a call did); wait a bounded time for a replica.
    if (!RouteLocked(group, &outbox)) {
      if (!group.seqs.empty()) cv_.wait_for(lock, std::chrono::milliseconds(50));  // no busy wait
      continue;
    }
    ForkCachedPrefixes(group, lock);
    if (stopping_) break;
    if (!BuildBatchLocked(group, &batch)) continue;
    lock.unlock();
    AssembleBatch(&batch);
    StageFailure failure;
    absl::Status st = pipeline_->Forward(batch.request, &batch.result, group.route, &failure);
    if (st.ok()) ComputeMasks(batch);
    lock.lock();
    if (st.ok()) {
      ApplyResultLocked(group, batch, &outbox);
    } else {
      HandleFailureLocked(group, batch, st, failure, &outbox);
    }
  }
  lock.unlock();
  Deliver(&outbox);
}

}  // namespace shardlm
