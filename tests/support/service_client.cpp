#include "support/service_client.hpp"

#include <gtest/gtest.h>

#include "crypto/tls.hpp"

namespace aspis::testing {

service::ServiceConfig ServiceConfig(const std::filesystem::path& dir) {
  return {.data_dir = dir / "data",
          .listen = "127.0.0.1:0",
          .master_key_file = dir / "master.key",
          .threads = 2};
}

wire::HttpResponse CallService(const service::Service& service, const std::string& token,
                               const std::string& method, const std::string& target,
                               const std::string& body) {
  const std::vector<crypto::Certificate> roots{service.root_ca()};
  wire::HttpsClient client({"127.0.0.1", service.port()}, *crypto::tls::ClientContext(roots));
  std::vector<std::pair<std::string, std::string>> headers;
  if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
  auto response = client.Send(method, target, body, headers);
  EXPECT_TRUE(response) << response.error().message();
  return response ? *response : wire::HttpResponse{};
}

}  // namespace aspis::testing
