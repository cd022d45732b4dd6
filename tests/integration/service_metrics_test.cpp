// aspis-service's /metrics under a label flood: labels come from fixed sets, so clients cannot mint
// series; and the registry's own cap on series per family.
#include <gtest/gtest.h>

#include <sstream>

#include "crypto/tls.hpp"
#include "service/metrics.hpp"
#include "service/service.hpp"
#include "support/service_client.hpp"
#include "support/temp_dir.hpp"
#include "wire/https_client.hpp"

namespace aspis::service {
namespace {

using testing::TempDir;

// Lines of `text` that start with `prefix`.
std::size_t CountLines(const std::string& text, std::string_view prefix) {
  std::istringstream lines(text);
  std::size_t count = 0;
  for (std::string line; std::getline(lines, line);) count += line.starts_with(prefix) ? 1 : 0;
  return count;
}

class ServiceMetrics : public ::testing::Test {
 protected:
  void SetUp() override {
    auto service = Service::Start(testing::ServiceConfig(dir_.path()), SystemClock::Instance());
    ASSERT_TRUE(service) << service.error().message();
    service_ = std::move(*service);
  }

  wire::HttpsClient Client() const {
    const std::vector<crypto::Certificate> roots{service_->root_ca()};
    return wire::HttpsClient({"127.0.0.1", service_->port()}, *crypto::tls::ClientContext(roots));
  }

  TempDir dir_;
  std::unique_ptr<Service> service_;
};

// One connection throughout: the server observes each request before reading the next, so the
// /metrics answer at the end counts everything sent before it.
TEST_F(ServiceMetrics, LabelFloodOfBogusMethodsAndPathsLeavesABoundedSetOfSeries) {
  auto connection = Client().Connect();
  ASSERT_TRUE(connection) << connection.error().message();
  EXPECT_EQ(connection->Send("GET", "/healthz")->status, 200);
  for (int i = 0; i < 30; ++i) {
    const std::string n = std::to_string(i);
    EXPECT_EQ(connection->Send("BREW" + n, "/teapot/" + n)->status, 404);
    EXPECT_EQ(connection->Send("GET", "/nope-" + n)->status, 404);
  }
  auto metrics = connection->Send("GET", "/metrics");
  ASSERT_TRUE(metrics) << metrics.error().message();
  ASSERT_EQ(metrics->status, 200);
  const std::string& body = metrics->body;
  EXPECT_NE(body.find(R"(aspis_http_requests_total{method="other",route="other",status="404"} 30)"),
            std::string::npos)
      << body;
  EXPECT_NE(body.find(R"(aspis_http_requests_total{method="GET",route="other",status="404"} 30)"),
            std::string::npos)
      << body;
  // The positive twin: a known method on a known route keeps both.
  EXPECT_NE(body.find(R"(aspis_http_requests_total{method="GET",route="/healthz",status="200"} 1)"),
            std::string::npos)
      << body;
  EXPECT_EQ(body.find("BREW"), std::string::npos);
  EXPECT_EQ(body.find("teapot"), std::string::npos);
  EXPECT_EQ(body.find("nope"), std::string::npos);
  EXPECT_EQ(CountLines(body, "aspis_http_requests_total{"), 3u) << "61 requests, 3 series";
  EXPECT_EQ(CountLines(body, "aspis_http_request_duration_seconds_count{"), 3u);
}

TEST(Metrics, FamilyKeepsAtMostTheSeriesCapAndCountsTheRest) {
  Metrics metrics;
  constexpr std::size_t kCap = Metrics::kMaxSeriesPerFamily;
  for (std::size_t i = 0; i < kCap + 40; ++i) {
    metrics.Increment("spill_total", {{"id", std::to_string(i)}});
    metrics.Observe("spill_seconds", {{"id", std::to_string(i)}}, std::chrono::milliseconds(3));
  }
  metrics.Increment("spill_total", {{"id", "0"}});  // a series already held still counts
  const std::string text = metrics.Render();
  EXPECT_EQ(CountLines(text, "spill_total{"), kCap);
  EXPECT_EQ(CountLines(text, "spill_seconds_count{"), kCap);
  EXPECT_NE(text.find("spill_total{id=\"0\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("\naspis_metrics_series_dropped_total 80\n"), std::string::npos);
}

}  // namespace
}  // namespace aspis::service
