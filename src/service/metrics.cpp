#include "service/metrics.hpp"

#include <fmt/format.h>

#include <array>

namespace aspis::service {

namespace {

constexpr std::string_view kDroppedFamily = "aspis_metrics_series_dropped_total";

// Latency bucket upper bounds in seconds.
constexpr std::array<double, 12> kBounds = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,   0.25,   0.5,   1.0,  2.5,   5.0};

std::string Escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// `{a="1",b="2"}`; empty when there are no labels.
std::string RenderLabels(const Metrics::Labels& labels) {
  std::string out;
  for (const auto& [name, value] : labels) {
    out += (out.empty() ? "" : ",") + name + "=\"" + Escape(value) + "\"";
  }
  return out.empty() ? out : "{" + out + "}";
}

std::string WithBucket(const std::string& labels, const std::string& le) {
  const std::string bucket = "le=\"" + le + "\"";
  if (labels.empty()) return "{" + bucket + "}";
  return labels.substr(0, labels.size() - 1) + "," + bucket + "}";
}

}  // namespace

void Metrics::Describe(std::string name, std::string help, std::string type) {
  const std::lock_guard lock(mutex_);
  Family& family = families_[std::move(name)];
  family.help = std::move(help);
  family.type = std::move(type);
}

void Metrics::Increment(std::string_view name, const Labels& labels, std::uint64_t by) {
  const std::string key = RenderLabels(labels);
  const std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end())
    it = families_.emplace(std::string(name), Family{"", "counter", {}, {}}).first;
  Family& family = it->second;
  auto series = family.counters.find(key);
  if (series == family.counters.end()) {
    if (family.series() >= kMaxSeriesPerFamily) {
      ++dropped_;
      return;
    }
    series = family.counters.emplace(key, 0).first;
  }
  series->second += by;
}

void Metrics::Observe(std::string_view name, const Labels& labels, std::chrono::nanoseconds value) {
  const std::string key = RenderLabels(labels);
  const double seconds = std::chrono::duration<double>(value).count();
  const std::lock_guard lock(mutex_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{"", "histogram", {}, {}}).first;
  }
  Family& family = it->second;
  auto series = family.histograms.find(key);
  if (series == family.histograms.end()) {
    if (family.series() >= kMaxSeriesPerFamily) {
      ++dropped_;
      return;
    }
    series = family.histograms.emplace(key, Histogram{}).first;
    series->second.buckets.resize(kBounds.size());
  }
  Histogram& h = series->second;
  for (std::size_t i = 0; i < kBounds.size(); ++i) {
    if (seconds <= kBounds[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += seconds;
}

std::string Metrics::Render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  for (const auto& [name, family] : families_) {
    if (!family.help.empty()) out += "# HELP " + name + " " + family.help + "\n";
    out += "# TYPE " + name + " " + family.type + "\n";
    for (const auto& [labels, value] : family.counters) {
      out += name + labels + " " + std::to_string(value) + "\n";
    }
    for (const auto& [labels, h] : family.histograms) {
      for (std::size_t i = 0; i < kBounds.size(); ++i) {
        out += fmt::format("{}_bucket{} {}\n", name,
                           WithBucket(labels, fmt::format("{}", kBounds[i])), h.buckets[i]);
      }
      out += fmt::format("{}_bucket{} {}\n", name, WithBucket(labels, "+Inf"), h.count);
      out += fmt::format("{}_sum{} {}\n", name, labels, h.sum);
      out += fmt::format("{}_count{} {}\n", name, labels, h.count);
    }
  }
  out += fmt::format(
      "# HELP {0} Observations dropped because their family had too many label sets\n"
      "# TYPE {0} counter\n{0} {1}\n",
      kDroppedFamily, dropped_);
  return out;
}

}  // namespace aspis::service
