#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace aspis::bench {

// Google Benchmark's console table, then each measured operation beside the limit it is bound by
// (another benchmark of the same run): ops/s, time per op, the limit's ops/s and the ratio.
class LimitReporter : public benchmark::ConsoleReporter {
 public:
  // Pairs of benchmark names: {operation, its limit}.
  explicit LimitReporter(std::vector<std::pair<std::string, std::string>> rows)
      : rows_(std::move(rows)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.iterations > 0 && run.real_accumulated_time > 0) {
        rates_[run.benchmark_name()] =
            static_cast<double>(run.iterations) / run.real_accumulated_time;
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\n%-24s %10s %10s   %-24s %10s %7s\n", "operation", "ops/s", "us/op",
                "limit (same run)", "ops/s", "ratio");
    for (const auto& [name, limit_name] : rows_) {
      const double rate = rates_[name];
      const double limit = rates_[limit_name];
      std::printf("%-24s %10.0f %10.1f   %-24s %10.0f %7.3f\n", name.c_str(), rate,
                  rate > 0 ? 1e6 / rate : 0.0, limit_name.c_str(), limit,
                  limit > 0 ? rate / limit : 0.0);
    }
  }

 private:
  std::vector<std::pair<std::string, std::string>> rows_;
  std::map<std::string, double> rates_;
};

}  // namespace aspis::bench
