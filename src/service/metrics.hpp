#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

// Service metrics in the Prometheus text exposition format. Thread-safe.
namespace aspis::service {

// Label values must come from fixed sets (never from a client's bytes). As a backstop, a family
// holds at most kMaxSeriesPerFamily label sets; observations that would add another are dropped
// and counted in aspis_metrics_series_dropped_total, so memory and /metrics stay bounded.
class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  static constexpr std::size_t kMaxSeriesPerFamily = 1000;

  // Declares a metric family with its help text; `type` is "counter" or "histogram".
  void Describe(std::string name, std::string help, std::string type);

  void Increment(std::string_view name, const Labels& labels = {}, std::uint64_t by = 1);
  // Records one observation in seconds into the histogram `name`.
  void Observe(std::string_view name, const Labels& labels, std::chrono::nanoseconds value);

  // The whole registry as text/plain; version=0.0.4.
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<std::uint64_t> buckets;  // cumulative counts per bound in kBounds
    std::uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    std::string help;
    std::string type;
    std::map<std::string, std::uint64_t> counters;  // by rendered label set
    std::map<std::string, Histogram> histograms;
    std::size_t series() const { return counters.size() + histograms.size(); }
  };

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;  // guarded by mutex_
  std::uint64_t dropped_ = 0;                            // guarded by mutex_
};

}  // namespace aspis::service
