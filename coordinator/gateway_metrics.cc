#include "coordinator/gateway_metrics.h"

#include <iterator>

#include "absl/strings/str_cat.h"

namespace shardlm {
namespace {

// vLLM's finished_reason values: a request ends by a stop (EOS or a stop
// string), by its length limit, or is aborted (cancelled, deadline, error).
constexpr const char* kVllmFinishedReasons[] = {"stop", "length", "abort"};
int VllmFinishedReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
    case FinishReason::kEndOfText:
      return 0;
    case FinishReason::kLength:
      return 1;
    default:
      return 2;
  }
}

}  // namespace

void RenderGatewayMetrics(const Engine& engine, const Pipeline& pipeline,
                          const std::string& model_id, MetricsPage* page) {
  const EngineMetrics& m = engine.metrics();
  const std::string model = absl::StrCat("model_name=\"", LabelValue(model_id), "\"");
  // The model-server protocol's three gauges.
  page->Gauge("vllm:num_requests_waiting", "Requests waiting for a slot (shardlm_queue_depth)",
              engine.queued(), model);
  page->Gauge("vllm:num_requests_running",
              "Requests being prefilled or decoded (shardlm_active_sequences)", engine.active(),
              model);
  const double kv = pipeline.KvCacheUsage();
  page->Gauge("vllm:kv_cache_usage_perc",
              "KV-cache utilisation, 0 to 1, of the fullest stage (shardlm_kv_cache_usage_ratio)",
              kv, model);
  // vLLM's older name of it, which older endpoint pickers read by default.
  page->Gauge("vllm:gpu_cache_usage_perc", "Same as vllm:kv_cache_usage_perc (older name)", kv,
              model);
  // Latencies, in seconds.
  page->Histogram("vllm:time_to_first_token_seconds",
                  "Submit to first generated token (shardlm_time_to_first_token_seconds)",
                  m.time_to_first_token, model);
  page->Histogram("vllm:inter_token_latency_seconds",
                  "Gap between consecutive tokens of a request (shardlm_inter_token_seconds)",
                  m.inter_token, model);
  page->Histogram("vllm:time_per_output_token_seconds",
                  "Same as vllm:inter_token_latency_seconds (older name)", m.inter_token, model);
  page->Histogram("vllm:e2e_request_latency_seconds",
                  "Submit to end of request (shardlm_request_seconds)", m.request_seconds, model);
  // Token and request counters (of ended requests).
  page->Counter("vllm:prompt_tokens_total", "Prompt tokens of ended requests",
                m.prompt_tokens.value(), model);
  page->Counter("vllm:generation_tokens_total", "Generated tokens of ended requests",
                m.generated_tokens.value(), model);
  // Prefix cache, in tokens as vLLM counts it.
  page->Counter("vllm:prefix_cache_queries",
                "Prompt tokens looked up in the prefix cache (shardlm_prefix_cache_query_tokens_total)",
                m.prefix_query_tokens.value(), model);
  page->Counter("vllm:prefix_cache_hits",
                "Prompt tokens whose KV was reused (shardlm_prefix_cache_hit_tokens_total)",
                m.prefix_hit_tokens.value(), model);
  // Speculative decoding.
  page->Counter("vllm:spec_decode_num_draft_tokens_total",
                "Draft tokens sent for verification (shardlm_spec_draft_tokens_total)",
                m.spec_draft_tokens.value(), model);
  page->Counter("vllm:spec_decode_num_accepted_tokens_total",
                "Draft tokens accepted (shardlm_spec_accepted_tokens_total)",
                m.spec_accepted_tokens.value(), model);
  double ended[std::size(kVllmFinishedReasons)] = {};
  for (size_t r = 0; r < std::size(m.finished); ++r) {
    ended[VllmFinishedReason(static_cast<FinishReason>(r))] += m.finished[r].value();
  }
  for (size_t i = 0; i < std::size(ended); ++i) {
    page->Counter("vllm:request_success_total", "Ended requests by vLLM's finished_reason",
                  ended[i],
                  absl::StrCat(model, ",finished_reason=\"", kVllmFinishedReasons[i], "\""));
  }
}

std::string RenderCoordinatorMetrics(const Engine& engine, const Pipeline& pipeline,
                                     const std::string& model_id) {
  MetricsPage page;
  engine.RenderMetrics(&page);
  pipeline.RenderMetrics(&page);
  RenderGatewayMetrics(engine, pipeline, model_id, &page);
  return page.text();
}

}  // namespace shardlm
