// The metric names Kubernetes inference gateways and existing dashboards
// read, on the coordinator's /metrics page. The Gateway API Inference
// Extension's endpoint picker (EPP) scrapes each model server of an
// InferencePool for the model-server protocol's TotalQueuedRequests,
// TotalRunningRequests and KVCacheUtilization, by default under vLLM's names
// (vllm:num_requests_waiting, vllm:num_requests_running,
// vllm:kv_cache_usage_perc); llm-d's and vLLM's Grafana dashboards read
// vLLM's latency histograms and token counters. The coordinator renders its
// own shardlm_* families (Engine, Pipeline) and here the same values once
// more under those names, so such a gateway or dashboard needs no
// configuration. docs/DEPLOY.md "Metrics" lists every name.
#ifndef SHARDLM_COORDINATOR_GATEWAY_METRICS_H_
#define SHARDLM_COORDINATOR_GATEWAY_METRICS_H_

#include <string>

#include "common/base/metrics.h"
#include "coordinator/engine.h"
#include "coordinator/pipeline.h"

namespace shardlm {

// Appends the vLLM-named aliases, each labelled model_name="<model_id>" as
// vLLM labels them (the id clients put in "model", e.g. "stories260K").
void RenderGatewayMetrics(const Engine& engine, const Pipeline& pipeline,
                          const std::string& model_id, MetricsPage* page);

// The coordinator's whole page: the engine's and the pipeline's families,
// then the aliases.
std::string RenderCoordinatorMetrics(const Engine& engine, const Pipeline& pipeline,
                                     const std::string& model_id);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GATEWAY_METRICS_H_
