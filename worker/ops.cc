#include "worker/ops.h"

#include <cmath>

#include "common/kernels/tensor_format.h"

namespace shardlm {

void RmsNorm(const float* x, const float* weight, int n, float eps, float* out) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void RmsNormRows(float* x, const float* weight, int n_rows, int n, float eps) {
  // RmsNorm reads all of a row before it writes it: in place is safe.
  for (int r = 0; r < n_rows; ++r) {
    float* row = x + static_cast<int64_t>(r) * n;
    RmsNorm(row, weight, n, eps, row);
  }
}

void AddRowBias(float* y, const float* bias, int n_rows, int n) {
  for (int r = 0; r < n_rows; ++r) {
    float* row = y + static_cast<int64_t>(r) * n;
    for (int i = 0; i < n; ++i) row[i] += bias[i];
  }
}

void SwiGlu(float* gate, const float* up, int n) { Forward().swiglu(n, gate, up, gate); }

void Softmax(float* x, int n) {
  float max = x[0];
  for (int i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  const double sum = Forward().softmax_exp(n, x, max, x);
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void AddInPlace(float* y, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace shardlm
