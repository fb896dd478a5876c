// libFuzzer target for the GGUF reader (and, for inputs it accepts, the
// writer). Properties checked on every input:
//  - GgufFile::OpenFromMemory never crashes, hangs or reads outside the
//    input (ASan: libFuzzer's buffer is exactly `size` bytes);
//  - every accessor of an accepted file is safe: typed getters on every key,
//    FindTensor on every name, the first and last byte of every tensor;
//  - an accepted file, re-written by GgufWriter and parsed again, gives the
//    same metadata, tensor table and tensor bytes (reader and writer agree).
// Works from memory: the disk is never touched.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/model/gguf.h"
#include "common/model/gguf_writer.h"

namespace shardlm {
namespace {

void Fail(const std::string& what) {
  std::fprintf(stderr, "gguf_fuzzer: %s\n", what.c_str());
  std::abort();
}

// Float equality where NaN equals NaN (a signalling NaN may come back quiet).
bool SameFloat(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

bool SameValue(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type || a.u != b.u || a.i != b.i || a.s != b.s || !SameFloat(a.f, b.f)) return false;
  if (a.type != GgufValueType::kArray) return true;
  if (a.elem_type != b.elem_type || a.arr_u != b.arr_u || a.arr_i != b.arr_i || a.arr_s != b.arr_s ||
      a.arr_f.size() != b.arr_f.size()) {
    return false;
  }
  for (size_t j = 0; j < a.arr_f.size(); ++j) {
    if (!SameFloat(a.arr_f[j], b.arr_f[j])) return false;
  }
  return true;
}

void ExerciseAccessors(const GgufFile& f) {
  for (const GgufKeyValue& kv : f.metadata()) {
    if (f.Find(kv.key) != &kv.value) Fail("Find does not return the key's own value: " + kv.key);
    (void)f.GetString(kv.key);
    (void)f.GetUint32(kv.key);
    (void)f.GetInt64(kv.key);
    (void)f.GetFloat(kv.key);
    (void)f.GetBool(kv.key);
    (void)f.GetStringArray(kv.key);
    (void)f.GetFloatArray(kv.key);
    (void)f.GetIntArray(kv.key);
    (void)kv.value.array_size();
  }
  volatile uint8_t sink = 0;
  for (const GgufTensorInfo& t : f.tensors()) {
    if (f.FindTensor(t.name) != &t) Fail("FindTensor does not return the tensor: " + t.name);
    if (t.n_bytes == 0) Fail("tensor with zero bytes accepted: " + t.name);
    const uint8_t* data = f.TensorData(t);
    sink = sink + data[0] + data[t.n_bytes - 1];  // ASan checks both ends are inside the input
  }
  (void)sink;
}

void CheckRewrite(const GgufFile& f) {
  GgufWriter w(f.alignment());
  for (const GgufKeyValue& kv : f.metadata()) w.SetValue(kv.key, kv.value);
  for (const GgufTensorInfo& t : f.tensors()) {
    absl::Status st = w.AddTensorInfo(t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims));
    if (!st.ok()) Fail("writer refuses a tensor the reader accepted: " + std::string(st.message()));
  }
  std::string out;
  if (absl::Status st = w.OpenInMemory(&out); !st.ok()) Fail("OpenInMemory: " + std::string(st.message()));
  for (const GgufTensorInfo& t : f.tensors()) {
    absl::Status st = w.WriteTensorData(t.name, f.TensorData(t), t.n_bytes);
    if (!st.ok()) Fail("WriteTensorData: " + std::string(st.message()));
  }
  if (absl::Status st = w.Finish(); !st.ok()) Fail("Finish: " + std::string(st.message()));

  auto again = GgufFile::OpenFromMemory(reinterpret_cast<const uint8_t*>(out.data()), out.size(), "rewrite");
  if (!again.ok()) Fail("re-written file refused: " + again.status().ToString());
  const GgufFile& g = **again;
  if (g.alignment() != f.alignment()) Fail("alignment changed");
  if (g.metadata().size() != f.metadata().size()) Fail("metadata count changed");
  for (size_t k = 0; k < f.metadata().size(); ++k) {
    if (g.metadata()[k].key != f.metadata()[k].key || !SameValue(g.metadata()[k].value, f.metadata()[k].value)) {
      Fail("metadata changed: " + f.metadata()[k].key);
    }
  }
  if (g.tensors().size() != f.tensors().size()) Fail("tensor count changed");
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const GgufTensorInfo& a = f.tensors()[i];
    const GgufTensorInfo& b = g.tensors()[i];
    if (a.name != b.name || a.type != b.type || a.n_dims != b.n_dims || a.ne != b.ne || a.n_bytes != b.n_bytes) {
      Fail("tensor info changed: " + a.name);
    }
    if (std::memcmp(f.TensorData(a), g.TensorData(b), a.n_bytes) != 0) Fail("tensor bytes changed: " + a.name);
  }
}

}  // namespace
}  // namespace shardlm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto file = shardlm::GgufFile::OpenFromMemory(data, size, "fuzz-input");
  if (!file.ok()) {
    if (file.status().message().find("fuzz-input") == std::string::npos) {
      shardlm::Fail("error does not name the file: " + file.status().ToString());
    }
    return 0;
  }
  shardlm::ExerciseAccessors(**file);
  shardlm::CheckRewrite(**file);
  return 0;
}
