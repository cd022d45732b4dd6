#pragma once

#include <filesystem>
#include <string>

#include "core/error.hpp"
#include "core/json.hpp"

namespace CLI {
class App;
}

// The operator's login and the calls made with it.
namespace aspis::cli {

// $ASPIS_CONFIG, else $HOME/.config/aspis/config.json.
std::filesystem::path ConfigPath();

struct Session {
  std::string url;
  std::string token;
  std::string root_ca_pem;
  std::string tenant;  // the default tenant, when the token belongs to one
};

// The saved login. Errors: kNotFound saying how to log in.
Expected<Session> LoadSession();

// A request to the service over HTTPS with the pinned root; a non-2xx answer is an Error carrying
// the problem's detail. JSON answers are parsed; others come back as a JSON string.
Expected<json::Json> Request(const Session& session, const std::string& method,
                             const std::string& target, const json::Json& body = nullptr);

// The `--tenant` option most operator verbs take, defaulting to the login's tenant.
class TenantOption {
 public:
  void AddTo(CLI::App* verb);
  std::string Of(const Session& session) const {
    return tenant_.empty() ? session.tenant : tenant_;
  }

 private:
  std::string tenant_;
};

}  // namespace aspis::cli
