// The tensors a model of a given ModelConfig is made of, as llama.cpp's
// loader names and shapes them for the architecture (GGUF names verbatim), and
// a check of a file against that plan: what is missing or mis-shaped (shardlm
// cannot run the file) and what it would ignore. Used by shardlm-inspect to
// say why a file does not run before a worker tries to load it.
#ifndef SHARDLM_COMMON_MODEL_TENSOR_PLAN_H_
#define SHARDLM_COMMON_MODEL_TENSOR_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/architecture.h"
#include "common/model/gguf.h"
#include "common/model/model_config.h"

namespace shardlm {

struct PlannedTensor {
  std::string name;  // "blk.3.attn_q.weight"
  int64_t ne0 = 0;   // row length (vectors: the length)
  int64_t ne1 = 0;   // rows; 0 for a vector
  TensorUse use = TensorUse::kRequired;
  bool matrix() const { return ne1 != 0; }
};

// Every tensor of the whole model (all layers, embedding and head).
std::vector<PlannedTensor> PlanTensors(const ModelConfig& c);

struct TensorCheck {
  std::vector<std::string> problems;  // "tensor 'blk.0.attn_q.bias' is missing"
  std::vector<std::string> ignored;   // names in the file the plan does not read
};

// Compares the file's tensor table with PlanTensors(c).
TensorCheck CheckTensors(const GgufFile& file, const ModelConfig& c);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_TENSOR_PLAN_H_
