#include "worker/llama_stage.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/kernels/tensor_format.h"
#include "worker/attention.h"
#include "worker/flash_attention.h"
#include "worker/ops.h"
#include "worker/qkv.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<LlamaStage>> LlamaStage::Open(const std::string& model_path,
                                                             const StageOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(model_path));
  return Create(std::shared_ptr<const GgufFile>(std::move(file)), options);
}

absl::StatusOr<std::unique_ptr<LlamaStage>> LlamaStage::Create(
    std::shared_ptr<const GgufFile> file, const StageOptions& options) {
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromGguf(*file));
  RETURN_IF_ERROR(CheckKvTypeFits(options.kv_type, config.head_dim));
  StageOptions o = options;
  if (o.last_layer < 0) o.last_layer = config.n_layer;
  if (o.n_ctx <= 0) o.n_ctx = config.n_ctx_train;
  if (o.n_threads < 0) return absl::InvalidArgumentError("thread count must be >= 0");
  ASSIGN_OR_RETURN(StageWeights weights,
                   StageWeights::Load(*file, config, o.first_layer, o.last_layer,
                                      o.interleave_weights));
  return std::unique_ptr<LlamaStage>(
      new LlamaStage(std::move(file), std::move(config), std::move(weights), o));
}

LlamaStage::LlamaStage(std::shared_ptr<const GgufFile> file, ModelConfig config,
                       StageWeights weights, const StageOptions& o)
    : file_(std::move(file)),
      config_(std::move(config)),
      weights_(std::move(weights)),
      arena_(o.n_threads > 0 ? o.n_threads : tbb::task_arena::automatic),
      kv_(o.last_layer - o.first_layer, config_.n_embd_kv(), o.n_ctx, o.kv_type,
          o.kv_budget_bytes) {
  info_.first_layer = o.first_layer;
  info_.last_layer = o.last_layer;
  info_.n_layer = config_.n_layer;
  info_.n_embd = config_.n_embd;
  info_.n_vocab = config_.n_vocab;
  info_.n_ctx = o.n_ctx;
  info_.fingerprint = ModelFingerprint(*file_);
  info_.kv_type = KvTypeName(kv_.type());
  info_.kv_bytes_per_token = kv_.bytes_per_token();
  PublishKvStats();
}

absl::Status LlamaStage::Validate(const ForwardRequest& r, std::vector<Run>* runs) const {
  RETURN_IF_ERROR(ValidateBatch(r, info_, runs));
  // Each run must continue (or rewind) its sequence's cache and fit the budget.
  int64_t extra = 0;
  for (const Run& run : *runs) {
    RETURN_IF_ERROR(kv_.CheckAppend(run.seq, run.start_pos, run.count, &extra));
  }
  return absl::OkStatus();
}

absl::Status LlamaStage::Forward(const ForwardRequest& request, ForwardResult* result) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Run> runs;
  RETURN_IF_ERROR(Validate(request, &runs));
  for (const Run& run : runs) kv_.Prepare(run.seq, run.start_pos, run.count);
  // The same for every layer: MatMul groups by run, so each sequence's tokens
  // get the numbers llama.cpp gives that sequence alone, whatever else shares
  // the batch; AttendHeads finds each token's run and place in it.
  groups_.clear();
  token_run_.resize(request.n_tokens());
  for (const Run& run : runs) {
    groups_.push_back(run.count);
    for (int i = 0; i < run.count; ++i) token_run_[run.begin + i] = {&run, i};
  }

  const absl::Time start = absl::Now();
  arena_.execute([&] {
    Embed(request);
    for (int l = 0; l < static_cast<int>(weights_.layers.size()); ++l) RunLayer(l, request, runs);
    result->hidden.clear();
    result->logits.clear();
    result->logit_rows.clear();
    if (info_.is_last()) {
      ComputeLogits(request, runs, result);
    } else {
      result->hidden.assign(x_.begin(), x_.begin() + request.n_tokens() * config_.n_embd);
    }
  });
  result->compute_ms = absl::ToDoubleMilliseconds(absl::Now() - start);
  forward_seconds_.Observe(result->compute_ms / 1000);
  tokens_.Add(static_cast<double>(request.n_tokens()));
  PublishKvStats();
  return absl::OkStatus();
}

void LlamaStage::Embed(const ForwardRequest& r) {
  const int n = static_cast<int>(r.n_tokens()), d = config_.n_embd;
  x_.resize(static_cast<size_t>(n) * d);
  if (!info_.is_first()) {
    std::copy(r.hidden.begin(), r.hidden.end(), x_.begin());
    return;
  }
  for (int t = 0; t < n; ++t) DequantizeRow(weights_.token_embd, r.tokens[t], &x_[t * d]);
}

// One Llama block over the batch, as llama2.c's transformer loop body.
void LlamaStage::RunLayer(int local, const ForwardRequest& r, const std::vector<Run>& runs) {
  const LayerWeights& w = weights_.layers[local];
  Attention(local, w, r, runs, groups_);
  FeedForward(w, static_cast<int>(r.n_tokens()), groups_);
}

// x += Wo · attn(RoPE(Wq·rms(x)), RoPE(Wk·rms(x)), Wv·rms(x))
void LlamaStage::Attention(int local, const LayerWeights& w, const ForwardRequest& r,
                           const std::vector<Run>& runs, const std::vector<int>& groups) {
  const ModelConfig& c = config_;
  const int n = static_cast<int>(r.n_tokens()), d = c.n_embd;
  const int n_q = c.n_head * c.head_dim, n_kv = c.n_embd_kv();
  xn_.resize(x_.size());
  q_.resize(static_cast<size_t>(n) * n_q);
  k_.resize(static_cast<size_t>(n) * n_kv);
  v_.resize(static_cast<size_t>(n) * n_kv);
  attn_.resize(q_.size());
  for (int t = 0; t < n; ++t) RmsNorm(&x_[t * d], w.attn_norm.data(), d, c.rms_eps, &xn_[t * d]);
  MatMul(w.wq, xn_.data(), n, q_.data(), &mm_, groups);
  MatMul(w.wk, xn_.data(), n, k_.data(), &mm_, groups);
  MatMul(w.wv, xn_.data(), n, v_.data(), &mm_, groups);
  // Biases, q/k norms and RoPE as the architecture has them (qkv.h).
  PrepareQkv(c, w, weights_.rope_freqs, r.positions, q_.data(), k_.data(), v_.data());
  CacheKeysValues(local, runs);
  AttendHeads(local, runs, n);
  tmp_.resize(x_.size());
  MatMul(w.wo, attn_.data(), n, tmp_.data(), &mm_, groups);
  AddInPlace(x_.data(), tmp_.data(), n * d);
}

// Appends each token's k_ and v_ rows at its position in its sequence's cache.
void LlamaStage::CacheKeysValues(int local, const std::vector<Run>& runs) {
  const int n_kv = config_.n_embd_kv();
  for (const Run& run : runs) {
    for (int i = 0; i < run.count; ++i) {
      const int t = run.begin + i, pos = run.start_pos + i;
      StoreKv(&k_[t * n_kv], &v_[t * n_kv], n_kv, kv_.type(), kv_.key_row(run.seq, local, pos),
              kv_.value_row(run.seq, local, pos));
    }
  }
}

// attn_ = softmax(q k^T / sqrt(head_dim)) v per token and query head, over
// its sequence's cached positions up to its own (causal), in parallel. The
// attention reads each run's rows in place in the cache's blocks, through
// their addresses (one pointer per position and layer; no row is copied).
void LlamaStage::AttendHeads(int local, const std::vector<Run>& runs, int n) {
  const ModelConfig& c = config_;
  const int n_q = c.n_head * c.head_dim;
  const AttentionShape shape{c.n_head, c.n_head_kv, c.head_dim};
  if (run_rows_.size() < runs.size()) run_rows_.resize(runs.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    RunRows& rows = run_rows_[r];
    const int n_pos = runs[r].start_pos + runs[r].count;
    kv_.RowPointers(runs[r].seq, local, /*values=*/false, n_pos, &rows.keys);
    kv_.RowPointers(runs[r].seq, local, /*values=*/true, n_pos, &rows.values);
  }
  tbb::parallel_for(
      tbb::blocked_range<int>(0, n * c.n_head), [&](const tbb::blocked_range<int>& br) {
        std::vector<float>& scratch = attn_scratch_.local();
        for (int idx = br.begin(); idx < br.end(); ++idx) {
          const int t = idx / c.n_head, h = idx % c.n_head;
          const Run& run = *token_run_[t].first;
          const RunRows& rows = run_rows_[&run - runs.data()];
          const KvRows keys{rows.keys.data()}, values{rows.values.data()};
          const int n_pos = run.start_pos + token_run_[t].second + 1;  // causal: up to itself
          if (KvTypeIsQuantized(kv_.type())) {  // llama.cpp needs flash attention for these
            FlashAttendHead(&q_[t * n_q], keys, values, kv_.type(), n_pos, shape, h,
                            &attn_[t * n_q], &scratch);
            continue;
          }
          AttendHead(&q_[t * n_q], keys, values, kv_.type(), n_pos, shape, h,
                     &attn_[t * n_q], &scratch, /*batched=*/run.count > 1);
        }
      });
}

// x += Wdown · (silu(Wgate·rms(x)) ⊙ Wup·rms(x))
void LlamaStage::FeedForward(const LayerWeights& w, int n, const std::vector<int>& groups) {
  const ModelConfig& c = config_;
  const int d = c.n_embd;
  for (int t = 0; t < n; ++t) RmsNorm(&x_[t * d], w.ffn_norm.data(), d, c.rms_eps, &xn_[t * d]);
  gate_.resize(static_cast<size_t>(n) * c.n_ff);
  up_.resize(gate_.size());
  MatMul(w.ffn_gate, xn_.data(), n, gate_.data(), &mm_, groups);
  MatMul(w.ffn_up, xn_.data(), n, up_.data(), &mm_, groups);
  // Row by row: llama.cpp's exp differs in the last n_ff % 16 columns.
  for (int t = 0; t < n; ++t) SwiGlu(&gate_[t * c.n_ff], &up_[t * c.n_ff], c.n_ff);
  MatMul(w.ffn_down, gate_.data(), n, tmp_.data(), &mm_, groups);
  AddInPlace(x_.data(), tmp_.data(), n * d);
}

void LlamaStage::ComputeLogits(const ForwardRequest& r, const std::vector<Run>& runs,
                               ForwardResult* result) {
  const int d = config_.n_embd;
  if (r.want_logits.empty()) {
    for (const Run& run : runs) result->logit_rows.push_back(run.begin + run.count - 1);
  } else {
    for (size_t i = 0; i < r.n_tokens(); ++i) {
      if (r.want_logits[i]) result->logit_rows.push_back(static_cast<int32_t>(i));
    }
  }
  const int rows = static_cast<int>(result->logit_rows.size());
  if (rows == 0) return;
  xn_.resize(static_cast<size_t>(rows) * d);
  for (int i = 0; i < rows; ++i) {
    RmsNorm(&x_[result->logit_rows[i] * d], weights_.output_norm.data(), d, config_.rms_eps,
            &xn_[i * d]);
  }
  result->logits.resize(static_cast<size_t>(rows) * config_.n_vocab);
  std::vector<int> groups;  // each run's logit rows, as llama.cpp outputs them alone
  for (const Run& run : runs) {
    int k = 0;
    for (int32_t row : result->logit_rows) k += row >= run.begin && row < run.begin + run.count;
    if (k > 0) groups.push_back(k);
  }
  MatMul(weights_.output, xn_.data(), rows, result->logits.data(), &mm_, groups);
}

absl::Status LlamaStage::Fork(SeqId dst, SeqId src, int n, bool cache_entry) {
  std::lock_guard<std::mutex> lock(mu_);
  const absl::Status status = kv_.Fork(dst, src, n, cache_entry);
  PublishKvStats();
  return status;
}

absl::Status LlamaStage::Release(SeqId seq) {
  std::lock_guard<std::mutex> lock(mu_);
  kv_.Release(seq);
  PublishKvStats();
  return absl::OkStatus();
}

void LlamaStage::RenderMetrics(MetricsPage* page) const {
  const KvStats kv = kv_stats();
  const std::string labels = absl::StrCat("layers=\"", info_.first_layer, ":", info_.last_layer, "\"");
  page->Gauge("shardlm_worker_kv_sequences", "Sequences holding KV on this worker", kv.sequences, labels);
  page->Gauge("shardlm_worker_kv_tokens", "Cached positions summed over sequences", kv.tokens, labels);
  page->Gauge("shardlm_worker_kv_bytes", "Bytes allocated for keys and values", kv.bytes_used, labels);
  page->Gauge("shardlm_worker_kv_budget_bytes", "KV budget (0: unlimited)", kv.bytes_budget, labels);
  page->Gauge("shardlm_worker_kv_bytes_per_token",
              "Key and value bytes one cached position takes over this worker's layers",
              info_.kv_bytes_per_token, absl::StrCat(labels, ",type=\"", info_.kv_type, "\""));
  page->Gauge("shardlm_worker_kv_blocks", "KV blocks allocated", kv.blocks_used, labels);
  page->Gauge("shardlm_worker_kv_cache_only_blocks",
              "KV blocks held only by the coordinator's prefix cache", kv.blocks_cache_only, labels);
  page->Gauge("shardlm_worker_kv_budget_blocks", "KV budget in blocks (0: unlimited)",
              kv.blocks_budget, labels);
  page->Gauge("shardlm_worker_kv_block_positions", "Positions per KV block", kv.block_positions,
              labels);
  page->Gauge("shardlm_worker_kv_cache_sequences", "Prefix-cache sequences holding KV",
              kv.cache_sequences, labels);
  page->Gauge("shardlm_worker_weight_bytes", "Bytes of weights this worker serves", weights_.bytes(), labels);
  page->Counter("shardlm_worker_tokens_total", "Tokens run through this worker's layers", tokens_.value(), labels);
  page->Histogram("shardlm_worker_forward_seconds", "Compute time of a Forward batch", forward_seconds_,
                  labels);
  page->Gauge("shardlm_kernel_set_info", "Kernel set this worker computes with (label set)", 1,
              absl::StrCat("set=\"", std::string(BestKernelName()), "\""));
}

void LlamaStage::PublishKvStats() {
  const KvStats stats = kv_.stats();  // outside stats_mu_: kv_stats() never waits for this
  std::lock_guard<std::mutex> lock(stats_mu_);
  stats_ = stats;
}

KvStats LlamaStage::kv_stats() const {
  std::lock_guard<std::mutex> lock(stats_mu_);
  return stats_;
}

}  // namespace shardlm
