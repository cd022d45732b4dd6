#pragma once

#include <filesystem>
#include <string>

#include "cli/command.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "wire/https_client.hpp"
#include "wire/operator_api.hpp"

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

// A connection to the service over HTTPS with the pinned root, for several requests.
Expected<wire::HttpsConnection> Connect(const Session& session);
// One request with the session's token; `headers` are added to Authorization.
Expected<wire::HttpResponse> Send(wire::HttpsConnection& connection, const Session& session,
                                  const std::string& method, const std::string& target,
                                  std::string_view body,
                                  std::vector<std::pair<std::string, std::string>> headers = {});
// A non-2xx answer as an Error carrying the problem's detail; a JSON answer parsed; any other as
// a JSON string.
Expected<json::Json> Decode(const wire::HttpResponse& response);

// One JSON request on a new connection: Connect, Send, Decode.
Expected<json::Json> Request(const Session& session, const std::string& method,
                             const std::string& target, const json::Json& body = nullptr);
// The same with a request of the operator API (wire/operator_api.hpp) as the body.
Expected<json::Json> SendText(const Session& session, const std::string& method,
                              const std::string& target, std::string_view json_body);
template <class Message>
requires requires(const Message& m) {
  { wire::api::Serialize(m) } -> std::same_as<std::string>;
}
Expected<json::Json> Request(const Session& session, const std::string& method,
                             const std::string& target, const Message& message) {
  return SendText(session, method, target, wire::api::Serialize(message));
}

// The answer read with `from` (wire::api::*From), one object or each item of a list, and given
// back as the service's type writes it: a field the service left out or mistyped is an error
// here, not a blank column.
template <class From>
Expected<json::Json> Typed(Expected<json::Json> answer, From from) {
  if (!answer) return answer;
  const auto read = [&](const json::Json& doc) -> Expected<json::Json> {
    auto typed = from(doc);
    if (!typed) return std::unexpected(typed.error());
    return wire::api::ToJson(*typed);
  };
  if (!answer->is_array()) return read(*answer);
  json::Json list = json::Json::array();
  for (const auto& item : *answer) {
    auto typed = read(item);
    if (!typed) return typed;
    list.push_back(std::move(*typed));
  }
  return list;
}

// A verb that calls the service with the saved login.
class ServiceCommand : public Command {
 public:
  Expected<json::Json> Run() final {
    auto session = LoadSession();
    if (!session) return std::unexpected(session.error());
    return Call(*session);
  }

 protected:
  virtual Expected<json::Json> Call(const Session& session) = 0;
};

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
