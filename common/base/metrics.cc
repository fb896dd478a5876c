#include "common/base/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace shardlm {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {
  std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.Add(v);
}

std::vector<double> Histogram::LatencySeconds() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(counts_.size());
  uint64_t total = 0;
  for (size_t i = 0; i < counts_.size(); ++i) out[i] = total += counts_[i].load(std::memory_order_relaxed);
  return out;
}

std::string LabelValue(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void MetricsPage::Header(const std::string& name, const std::string& help, const char* type) {
  if (std::find(declared_.begin(), declared_.end(), name) != declared_.end()) return;
  declared_.push_back(name);
  absl::StrAppend(&text_, "# HELP ", name, " ", help, "\n# TYPE ", name, " ", type, "\n");
}

void MetricsPage::Counter(const std::string& name, const std::string& help, double value,
                          const std::string& labels) {
  Header(name, help, "counter");
  absl::StrAppend(&text_, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                  absl::StrFormat("%.17g", value), "\n");
}

void MetricsPage::Gauge(const std::string& name, const std::string& help, double value,
                        const std::string& labels) {
  Header(name, help, "gauge");
  absl::StrAppend(&text_, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                  absl::StrFormat("%.17g", value), "\n");
}

void MetricsPage::Histogram(const std::string& name, const std::string& help,
                            const class Histogram& h, const std::string& labels) {
  Header(name, help, "histogram");
  const std::vector<uint64_t> cum = h.Cumulative();
  const std::string sep = labels.empty() ? "" : ",";
  for (size_t i = 0; i < cum.size(); ++i) {
    const std::string le = i < h.bounds().size() ? absl::StrFormat("%g", h.bounds()[i]) : "+Inf";
    absl::StrAppend(&text_, name, "_bucket{", labels, sep, "le=\"", le, "\"} ", cum[i], "\n");
  }
  const std::string l = labels.empty() ? "" : absl::StrCat("{", labels, "}");
  absl::StrAppend(&text_, name, "_sum", l, " ", absl::StrFormat("%.17g", h.sum()), "\n");
  absl::StrAppend(&text_, name, "_count", l, " ", cum.back(), "\n");
}

}  // namespace shardlm
