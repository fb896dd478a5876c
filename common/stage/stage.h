// The Stage interface: one contiguous range of transformer layers [first,
// last) of one model. The first stage also owns the token embedding, the last
// the final norm and output head. Two transports implement it — in-process
// (LlamaStage) and gRPC (a remote worker) — so the single-process CLI and the
// distributed pipeline run the very same code.
#ifndef SHARDLM_COMMON_STAGE_STAGE_H_
#define SHARDLM_COMMON_STAGE_STAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace shardlm {

using SeqId = uint64_t;

// A batch of tokens from one or more sequences. Tokens of one sequence are
// consecutive in the batch with consecutive positions; the first position of
// a sequence may be at most its current KV length (a smaller one rewinds the
// cache to it, which makes replays after a failure idempotent).
struct ForwardRequest {
  std::vector<SeqId> seq_ids;      // [n_tokens]
  std::vector<int32_t> positions;  // [n_tokens]
  std::vector<int32_t> tokens;     // [n_tokens], first stage only
  std::vector<float> hidden;       // [n_tokens, n_embd], later stages only
  // Last stage: which tokens need logits. Empty means the last token of each
  // sequence in the batch (what generation needs).
  std::vector<uint8_t> want_logits;

  size_t n_tokens() const { return seq_ids.size(); }
};

struct ForwardResult {
  std::vector<float> hidden;        // [n_tokens, n_embd] from a non-last stage
  std::vector<float> logits;        // [logit_rows.size(), n_vocab] from the last stage
  std::vector<int32_t> logit_rows;  // batch index of each logits row
  double compute_ms = 0;            // time the stage spent computing (not travelling)
};

struct ShardInfo {
  int first_layer = 0;  // inclusive
  int last_layer = 0;   // exclusive
  int n_layer = 0;      // layers in the whole model
  int n_embd = 0;
  int n_vocab = 0;
  int n_ctx = 0;        // maximum positions per sequence
  std::string fingerprint;  // see ModelFingerprint()
  std::string kv_type;             // KV cache element type ("f16", "f32", "q8_0"); "" unknown
  int64_t kv_bytes_per_token = 0;  // key + value bytes per cached position, all its layers
  bool is_first() const { return first_layer == 0; }
  bool is_last() const { return last_layer == n_layer; }
};

struct KvStats {
  int64_t sequences = 0;     // request sequences holding KV on this stage
  int64_t tokens = 0;        // their cached positions, summed
  int64_t bytes_used = 0;
  int64_t bytes_budget = 0;  // 0 = unlimited
  // KV lives in blocks of block_positions positions, shared between
  // sequences with a common prefix (Fork).
  int64_t cache_sequences = 0;    // sequences kept by the coordinator's prefix cache
  int64_t blocks_used = 0;        // blocks allocated
  int64_t blocks_cache_only = 0;  // of those, held only by prefix-cache sequences
  int64_t blocks_budget = 0;      // 0 = unlimited
  int64_t block_positions = 0;
};

class Stage {
 public:
  virtual ~Stage() = default;
  virtual const ShardInfo& info() const = 0;
  // Runs the batch through this stage's layers and appends the new keys and
  // values to each sequence's cache. INVALID_ARGUMENT for a malformed batch
  // (ValidateBatch in batch_validation.h, or a run that does not continue
  // its cache; nothing is changed), RESOURCE_EXHAUSTED when the KV budget
  // is full.
  virtual absl::Status Forward(const ForwardRequest& request, ForwardResult* result) = 0;
  // Frees the sequence's KV; releasing an unknown sequence is not an error.
  virtual absl::Status Release(SeqId seq) = 0;
  // Frees many sequences' KV (a remote stage sends one call); the first
  // error, after trying every sequence.
  virtual absl::Status Release(absl::Span<const SeqId> seqs) {
    absl::Status first_error;
    for (SeqId seq : seqs) {
      absl::Status st = Release(seq);
      if (!st.ok() && first_error.ok()) first_error = st;
    }
    return first_error;
  }
  // Makes `dst` hold the KV of the first `n` positions of `src` (blocks are
  // shared, not recomputed): prefix reuse across requests. `cache_entry`
  // marks dst as a prefix-cache entry rather than a running request (stats
  // only). INVALID_ARGUMENT: unknown src, n outside [1, length of src], dst
  // already exists; RESOURCE_EXHAUSTED when the budget has no block left.
  virtual absl::Status Fork(SeqId dst, SeqId src, int n, bool cache_entry) {
    (void)dst, (void)src, (void)n, (void)cache_entry;
    return absl::UnimplementedError(name() + " cannot fork sequences");
  }
  virtual KvStats kv_stats() const = 0;
  // The KV use this side already knows, without a call: for metrics pages,
  // which must never wait for a slow worker. Remote stages answer from the
  // last Forward / Release reply or health probe; in-process stages exactly.
  virtual KvStats known_kv_stats() const { return kv_stats(); }
  // Where this stage runs and which layers it holds, for messages and
  // status pages.
  virtual std::string name() const {
    return "in-process layers " + std::to_string(info().first_layer) + ":" +
           std::to_string(info().last_layer);
  }
  // Cheap liveness check (remote stages ask the worker; a worker that came
  // back after a restart answers again). OK for in-process stages.
  virtual absl::Status Ping() { return absl::OkStatus(); }
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_STAGE_STAGE_H_
