// The scheduler: continuous batching over a Pipeline. Active sequences are
// spread over a few micro-batches ("groups"), one per pipeline range by
// default, each driven by its own thread: while one group's batch is in
// stage 1, the next one's can be in stage 0, so all stages work at once.
// Every step of a group advances all its sequences in one batch — a decode
// token for each generating sequence plus prompt chunks of the ones still
// prefilling, so a long prompt never stalls running decodes. New requests
// join between steps; finished, cancelled and expired ones leave and their
// KV is released on every stage.
//
// Failover: the coordinator keeps every sequence's tokens. When a stage
// fails (connection lost, deadline passed), its replica is marked down, the
// group moves to a healthy replica of that range (ReplicaRouter decides
// routes) and replays its sequences' tokens to rebuild their KV; clients'
// streams just continue. Without a replica for failover_timeout, the
// group's requests fail with UNAVAILABLE naming the layer range.
//
// Observers are called without the engine's lock held (events are queued
// while it is held and handed over after it is released), in order per
// request, from one thread at a time per request.
#ifndef SHARDLM_COORDINATOR_ENGINE_H_
#define SHARDLM_COORDINATOR_ENGINE_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/metrics.h"
#include "common/tokenizer/stream_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/grammar/vocab_trie.h"
#include "coordinator/pipeline.h"
#include "coordinator/prefix_cache.h"
#include "coordinator/replica_router.h"
#include "coordinator/sampler.h"
#include "coordinator/speculative/draft_model.h"
#include "coordinator/stop_matcher.h"

namespace shardlm {

struct EngineOptions {
  int max_active = 16;         // sequences being decoded; more wait in the queue
  int max_queued = 64;         // requests waiting for a slot; beyond: RESOURCE_EXHAUSTED
  int prefill_chunk = 128;     // prompt tokens of one sequence per step
  int max_batch_tokens = 256;  // tokens per step of one micro-batch
  int micro_batches = 0;       // 0: max(pipeline ranges, replicas per range)
  absl::Duration failover_timeout = absl::Seconds(10);  // waiting for a live replica
  absl::Duration health_interval = absl::Seconds(1);    // probing stages (0: never)
  // Prefix reuse across requests (prefix_cache.h): a finished sequence's
  // prompt KV stays on the stages as a cache entry that later requests fork.
  bool prefix_cache = true;
  int64_t prefix_cache_tokens = 16384;  // cap on the tokens of all entries
  // Speculative decoding (coordinator/speculative/): up to this many
  // prompt-lookup draft tokens per generating sequence and step, verified
  // in the same pass as its last token; 0 = off.
  int spec_ngram = 0;
  // Or draft-model speculation: up to spec_draft greedy tokens of this
  // small model of the same vocabulary (null: none).
  std::shared_ptr<DraftModel> draft_model;
  int spec_draft = 4;
};

// Options out of range -> INVALID_ARGUMENT naming the flag.
absl::Status ValidateEngineOptions(const EngineOptions& options);

struct GenerationRequest {
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted
  SamplingParams params;
  absl::Time deadline = absl::InfiniteFuture();
  std::string request_id;  // for logs
};

struct GeneratedToken {
  int32_t id = 0;
  std::string text;  // complete UTF-8 released by this token (may be empty)
  float logprob = 0;
  std::vector<TokenLogprob> top_logprobs;
};

enum class FinishReason { kLength, kStop, kEndOfText, kCancelled, kDeadline, kError };
const char* FinishReasonName(FinishReason reason);

struct GenerationStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double time_to_first_token_ms = 0;  // submit -> first token sampled
  double total_ms = 0;
  double prompt_tokens_per_s = 0;      // prompt tokens / (first token - start of prefill)
  double generation_tokens_per_s = 0;  // (generated - 1) / (last token - first token)
};

// Receives one request's events, in order, on an engine thread that holds no
// engine lock (so it may call Engine::Cancel). It must not block: hand the
// data to a queue or a gRPC reactor and return.
class GenerationObserver {
 public:
  virtual ~GenerationObserver() = default;
  virtual void OnToken(const GeneratedToken& token) = 0;
  // The last call. `error` is OK unless reason is kError.
  virtual void OnFinish(FinishReason reason, const GenerationStats& stats,
                        const absl::Status& error) = 0;
};

// What the engine counts, for the Prometheus page.
struct EngineMetrics {
  Counter submitted;     // requests accepted
  Counter rejected;      // refused at submit (invalid, queue full)
  Counter finished[6];   // by FinishReason
  Counter prompt_tokens;
  Counter generated_tokens;
  Histogram time_to_first_token{Histogram::LatencySeconds()};
  Histogram inter_token{Histogram::LatencySeconds()};
  Histogram request_seconds{Histogram::LatencySeconds()};
  // Prefix cache: requests looked up, requests that forked a cached prefix,
  // and their prompt tokens / forked tokens.
  Counter prefix_queries, prefix_hits, prefix_query_tokens, prefix_hit_tokens;
  // Speculative decoding: draft tokens sent for verification, those the
  // target accepted, and verification passes (a sequence's step carrying at
  // least one draft token).
  Counter spec_draft_tokens, spec_accepted_tokens, spec_passes;
  // Batches run again without drafts because a stage's KV budget was full.
  Counter spec_retries_without_drafts;
  // Tokens a sequence emitted per pipeline pass that sampled it (1 without
  // speculation; up to drafts + 1 with it).
  Histogram tokens_per_pass{{1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32}};
};

class Engine {
 public:
  // `pipeline` and `tokenizer` must outlive the engine. Starts its threads.
  Engine(Pipeline* pipeline, const Tokenizer* tokenizer, EngineOptions options);
  ~Engine();  // cancels everything still running and joins the thread

  // Queues a request. INVALID_ARGUMENT for bad input (naming the field),
  // RESOURCE_EXHAUSTED when the queue is full. Returns the request's id.
  absl::StatusOr<uint64_t> Submit(GenerationRequest request,
                                  std::shared_ptr<GenerationObserver> observer);
  // Ends a request (OnFinish kCancelled) and frees its KV; unknown ids are ignored.
  void Cancel(uint64_t id);

  int active() const;
  int queued() const;
  // Counters, histograms, queue depth and active sequences as Prometheus text.
  void RenderMetrics(MetricsPage* page) const;
  // The same, for other names of them (coordinator/gateway_metrics.h).
  const EngineMetrics& metrics() const { return metrics_; }

 private:
  struct Sequence;
  struct Group;
  struct Batch;
  struct Event;
  // Observer calls collected under mu_, made after it is released.
  using Outbox = std::vector<Event>;

  void GroupLoop(int g);
  // Makes the outbox's observer calls, in order; called without mu_.
  static void Deliver(Outbox* outbox);
  // All *Locked functions run with mu_ held.
  void AdmitLocked();
  void RetireEndedLocked(Group& group, const absl::flat_hash_set<uint64_t>& cancels,
                         Outbox* outbox);
  // Builds the group's next batch; false when there is nothing to run.
  bool BuildBatchLocked(Group& group, Batch* batch);
  // Turns the plan BuildBatchLocked made into the request, drafting for
  // the sequences that speculate first; without mu_ (a draft model
  // computes), only the group's own thread touches its sequences.
  void AssembleBatch(Batch* batch);
  void ApplyResultLocked(Group& group, Batch& batch, Outbox* outbox);
  // Computes the grammar masks of the batch's sequences that sample from
  // its result, without mu_: a trie walk can take milliseconds, and only
  // the group's own thread touches its sequences' constraints.
  static void ComputeMasks(const Batch& batch);
  void HandleFailureLocked(Group& group, Batch& batch, const absl::Status& status,
                           const StageFailure& failure, Outbox* outbox);
  // Asks the router for the group's route (into group.route); false when
  // the group must wait for a live replica (or has just failed for lack of
  // one).
  bool RouteLocked(Group& group, Outbox* outbox);
  void FailGroupLocked(Group& group, const absl::Status& status, Outbox* outbox);
  void FinishLocked(Sequence* s, FinishReason reason, const absl::Status& error, Outbox* outbox);
  void EmitTokenLocked(Sequence* s, const SampledToken& sampled, Outbox* outbox);
  // Speculative decoding: emits the tokens a sequence with a drafter keeps
  // from the `rows` logits rows of its step (its last token, then each of
  // its drafts): accepted drafts and the token after them, one by one, up to
  // a finish condition. Leaves n_cached at the last emitted token.
  void VerifyLocked(Sequence* s, const float* logits, int rows, Outbox* outbox);
  // Why the sequence must end now (end-of-text, stop string, complete
  // grammar, length), or false.
  bool ShouldFinish(const Sequence& s, FinishReason* reason) const;
  // Sends the Release calls queued by FinishLocked (outside the lock), one
  // batched call per stage, after turning finished prompts into prefix-cache
  // entries (a Fork of their prompt's KV) where promoted.
  void DrainReleases(std::unique_lock<std::mutex>& lock);
  // Prefix cache: forks the longest cached prefix of each sequence of the
  // group that has not started, on group.route (Fork calls outside the lock).
  void ForkCachedPrefixes(Group& group, std::unique_lock<std::mutex>& lock);
  // Queues a cache entry made of the sequence's exactly computed prompt
  // positions (at the end of its prefill), when worth keeping.
  void PromoteLocked(const Sequence& s, const Route& route);
  // The group a queued request joins: the least loaded, or one at most one
  // sequence busier whose route caches a longer prefix of the prompt.
  Group* PickGroupLocked(const Sequence& s);

  Pipeline* pipeline_;
  const Tokenizer* tokenizer_;
  EngineOptions options_;
  EngineMetrics metrics_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  // Sequence ids key the workers' KV caches: start at a random point so two
  // coordinators sharing workers (e.g. during a rolling update) never collide.
  uint64_t next_id_;
  std::deque<std::unique_ptr<Sequence>> queue_;
  std::vector<std::unique_ptr<Group>> groups_;
  absl::flat_hash_set<uint64_t> cancel_requests_;
  std::vector<SeqId> releases_;  // finished sequences whose KV is still held
  PrefixCache prefix_cache_;
  struct Promotion {
    SeqId src = 0, entry = 0;
    std::vector<int32_t> tokens;
    Route route;
  };
  std::vector<Promotion> promotions_;  // cache entries to fork before releases_ go
  std::unique_ptr<ReplicaRouter> router_;
  std::vector<std::thread> threads_;
  std::once_flag vocab_trie_once_;
  std::shared_ptr<const VocabTrie> vocab_trie_;  // for constrained sampling
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_ENGINE_H_
