// libFuzzer target for the worker's Forward handling: any bytes, parsed as a
// shardlm.v1.ForwardRequest, go through StageService::HandleForward (the
// validation, decoding, stage and encoding the gRPC handler runs) on a tiny
// synthetic model. It must never crash, and a rejected request must leave
// every sequence's KV cache as it was.
//
// Input: byte 0 = control bits, the rest = the serialized request.
//   bit 0: 0 = the first stage (layer 0, token ids), 1 = the last stage
//          (layer 1 + head, hidden states)
//   bit 1: overwrite protocol_version with the right one
//   bit 2: overwrite model_fingerprint with the right one
// (without bits 1-2 almost every input would stop at the header check).
//
// `forward_request_fuzzer -write_seeds=PREFIX` writes a few valid inputs to
// PREFIX-0, PREFIX-1, ... and exits (used by forward_request_fuzzer.seeds).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "tools/model_maker/model_maker.h"
#include "common/rpc/tensor_codec.h"
#include "worker/llama_stage.h"
#include "worker/stage_service.h"

namespace shardlm {
namespace {

void Fail(const std::string& what) {
  std::fprintf(stderr, "forward_request_fuzzer: %s\n", what.c_str());
  std::abort();
}

struct Target {
  std::shared_ptr<LlamaStage> stage;
  std::unique_ptr<StageService> service;
};

// Two stages of a 2-layer model: n_vocab 260, n_embd 32, n_ctx 64, and a
// 256 KiB KV budget so budget exhaustion is reachable too. Destroyed at exit
// (a function-local static, not a leaked pointer): oneTBB's thread-local
// scratch is cache-aligned, so LeakSanitizer would not see it as reachable.
std::vector<Target> MakeTargets() {
  ModelMakerOptions o;
  o.shape = ModelShape{260, 32, 2, 2, 1, 64, 64};
  o.type = "f32";
  const std::string path = "/tmp/forward_request_fuzzer-" + std::to_string(getpid()) + ".gguf";
  if (!MakeModel(o, path).ok()) Fail("cannot write the tiny model");
  std::vector<Target> targets;
  for (auto [first, last] : {std::pair{0, 1}, std::pair{1, 2}}) {
    StageOptions so;
    so.first_layer = first;
    so.last_layer = last;
    so.n_threads = 1;
    so.kv_type = KvType::kF32;
    so.kv_budget_bytes = 256 << 10;
    auto stage = LlamaStage::Open(path, so);
    if (!stage.ok()) Fail(std::string(stage.status().message()));
    Target t;
    t.stage = std::move(*stage);
    StageServiceOptions service_options;
    service_options.max_batch_tokens = 64;
    t.service = std::make_unique<StageService>(service_options);
    t.service->SetStage(t.stage, StageDetails{"fuzz", t.stage->weight_bytes()});
    targets.push_back(std::move(t));
  }
  unlink(path.c_str());  // the stages keep their mapping
  return targets;
}

bool SameKv(const KvStats& a, const KvStats& b) {
  return a.sequences == b.sequences && a.tokens == b.tokens && a.bytes_used == b.bytes_used;
}

void WriteSeeds(const std::string& prefix) {
  std::vector<std::string> seeds;
  auto add = [&](uint8_t control, const v1::ForwardRequest& r) {
    seeds.push_back(std::string(1, static_cast<char>(control)) + r.SerializeAsString());
  };
  v1::ForwardRequest tokens;
  for (int i = 0; i < 3; ++i) {
    tokens.add_seq_ids(7);
    tokens.add_positions(i);
    tokens.add_tokens(1 + 40 * i);
  }
  add(0b110, tokens);
  tokens.set_hidden_dtype(v1::DTYPE_F16);
  tokens.add_seq_ids(8);
  tokens.add_positions(0);
  tokens.add_tokens(5);
  add(0b110, tokens);
  for (v1::DType dtype : {v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16}) {
    v1::ForwardRequest hidden;
    std::vector<float> values(2 * 32);
    for (size_t i = 0; i < values.size(); ++i) values[i] = 0.05f * static_cast<float>(i % 9) - 0.2f;
    const int64_t shape[] = {2, 32};
    if (!EncodeTensor(values, shape, dtype, "hidden", hidden.mutable_hidden()).ok()) Fail("seed");
    for (int i = 0; i < 2; ++i) {
      hidden.add_seq_ids(3);
      hidden.add_positions(i);
      hidden.add_want_logits(true);
    }
    add(0b111, hidden);
  }
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::ofstream(prefix + "-" + std::to_string(i), std::ios::binary) << seeds[i];
  }
}

}  // namespace
}  // namespace shardlm

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  const std::string flag = "-write_seeds=";
  for (int i = 1; i < *argc; ++i) {
    const std::string arg = (*argv)[i];
    if (arg.rfind(flag, 0) == 0) {
      shardlm::WriteSeeds(arg.substr(flag.size()));
      std::exit(0);
    }
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  static std::vector<Target> targets = MakeTargets();
  if (size == 0) return 0;
  const uint8_t control = data[0];
  v1::ForwardRequest request;
  if (!request.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  Target& t = targets[control & 1];
  if (control & 2) request.set_protocol_version(kProtocolVersion);
  if (control & 4) request.set_model_fingerprint(t.stage->info().fingerprint);

  const KvStats before = t.stage->kv_stats();
  v1::ForwardResponse response;
  // What the Forward reactor does: the header on the gRPC thread, the rest
  // on the compute thread.
  absl::Status status = CheckForwardHeader(request, t.stage->info(), 64);
  if (status.ok()) status = t.service->HandleForward(request, &response);
  if (!status.ok()) {
    // Encoding the answer in f16 / bf16 can fail after the stage ran; every
    // other rejection must come before any cache is touched.
    const bool after_compute =
        request.hidden_dtype() != v1::DTYPE_F32 && request.hidden_dtype() != v1::DTYPE_UNSPECIFIED;
    if (!after_compute && !SameKv(before, t.stage->kv_stats())) {
      Fail("a rejected request changed the KV cache: " + std::string(status.message()));
    }
  } else {
    const ShardInfo& info = t.stage->info();
    const int64_t n = request.seq_ids_size();
    if (info.is_last()) {
      const auto rows = CheckTensor(response.logits(), "logits");
      if (!rows.ok() || *rows != response.logit_rows_size() * int64_t{info.n_vocab}) {
        Fail("logits do not match logit_rows");
      }
      for (int32_t row : response.logit_rows()) {
        if (row < 0 || row >= n) Fail("logit row outside the batch");
      }
    } else {
      const int64_t shape[] = {n, info.n_embd};
      if (!CheckTensorShape(response.hidden(), shape, "hidden").ok()) Fail("bad hidden shape");
    }
  }
  // Keep the caches small between inputs.
  v1::ReleaseRequest release;
  *release.mutable_seq_ids() = request.seq_ids();
  if (!t.service->HandleRelease(release).ok() && release.seq_ids_size() <= kMaxReleaseIds) {
    Fail("Release failed");
  }
  return 0;
}
