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

class Metrics {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

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
  };

  mutable std::mutex mutex_;
  std::map<std::string, Family, std::less<>> families_;
};

}  // namespace aspis::service
