// Prometheus metrics: counters, gauges and histograms that components own
// and update lock-free on their hot paths, and the text exposition format
// (version 0.0.4) that a scrape renders from them.
#ifndef SHARDLM_COMMON_BASE_METRICS_H_
#define SHARDLM_COMMON_BASE_METRICS_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace shardlm {

class Counter {
 public:
  void Add(double v = 1) {
    double cur = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
    }
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Buckets are upper bounds (le); the +Inf bucket is implicit.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Latency buckets in seconds, 0.5 ms .. 60 s.
  static std::vector<double> LatencySeconds();

  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bucket (+Inf last), sum and count.
  std::vector<uint64_t> Cumulative() const;
  double sum() const { return sum_.value(); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> counts_;  // per bucket, +Inf last
  Counter sum_;
};

// Builds a text exposition page.
class MetricsPage {
 public:
  // `labels` like `stage="0:11"` (already escaped), may be empty.
  void Counter(const std::string& name, const std::string& help, double value,
               const std::string& labels = "");
  void Gauge(const std::string& name, const std::string& help, double value,
             const std::string& labels = "");
  void Histogram(const std::string& name, const std::string& help, const class Histogram& h,
                 const std::string& labels = "");
  const std::string& text() const { return text_; }

 private:
  void Header(const std::string& name, const std::string& help, const char* type);
  std::string text_;
  std::vector<std::string> declared_;
};

// Escapes a label value for the text format.
std::string LabelValue(const std::string& v);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_METRICS_H_
