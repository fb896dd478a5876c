// A Stage with a layer range, a name and fixed KV figures, and nothing
// else: for tests of what the coordinator reports about its pipeline
// (web_ui_test's /pipeline.json, gateway_metrics_test's KV usage), which
// read a stage's info, name and kv_stats but never run it.
#ifndef SHARDLM_TESTS_FAKE_STAGE_H_
#define SHARDLM_TESTS_FAKE_STAGE_H_

#include <string>
#include <utility>

#include "coordinator/pipeline.h"

namespace shardlm::testing {

class FakeStage : public Stage {
 public:
  FakeStage(int first, int last, int n_layer, std::string name, KvStats kv = {})
      : name_(std::move(name)), kv_(kv) {
    info_.first_layer = first;
    info_.last_layer = last;
    info_.n_layer = n_layer;
    info_.n_embd = 8;
    info_.n_vocab = 32;
    info_.n_ctx = 128;
    info_.fingerprint = "fake";
  }
  const ShardInfo& info() const override { return info_; }
  absl::Status Forward(const ForwardRequest&, ForwardResult*) override {
    return absl::UnimplementedError("a fake stage computes nothing");
  }
  absl::Status Release(SeqId) override { return absl::OkStatus(); }
  KvStats kv_stats() const override { return kv_; }
  std::string name() const override { return name_; }

 private:
  ShardInfo info_;
  std::string name_;
  KvStats kv_;
};

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_FAKE_STAGE_H_
