#include "cli/session.hpp"

#include <CLI/CLI.hpp>

#include <cstdlib>

#include "core/file.hpp"
#include "crypto/tls.hpp"
#include "crypto/x509.hpp"
#include "wire/https_client.hpp"

namespace aspis::cli {

using json::Json;

std::filesystem::path ConfigPath() {
  if (const char* path = std::getenv("ASPIS_CONFIG"); path && *path) return path;  // NOLINT
  const char* home = std::getenv("HOME");                                          // NOLINT
  return std::filesystem::path(home ? home : ".") / ".config/aspis/config.json";
}

Expected<Session> LoadSession() {
  auto text = file::Read(ConfigPath(), file::kSmallFileLimit);
  if (!text) {
    return Fail(CoreErrc::kNotFound,
                "not logged in: run `aspis login --url URL --token TOKEN "
                "--root-ca FILE` first");
  }
  auto doc = json::Parse(AsString(*text));
  if (!doc) return std::unexpected(std::move(doc.error()).WithContext(ConfigPath().string()));
  return Session{doc->value("url", ""), doc->value("token", ""), doc->value("root_ca", ""),
                 doc->value("tenant", "")};
}

Expected<wire::HttpsConnection> Connect(const Session& session) {
  auto endpoint = wire::ParseHttpsUrl(session.url);
  if (!endpoint) return std::unexpected(endpoint.error());
  auto roots = crypto::Certificate::ChainFromPem(session.root_ca_pem);
  if (!roots) return std::unexpected(std::move(roots.error()).WithContext("pinned root CA"));
  auto tls = crypto::tls::ClientContext(*roots);
  if (!tls) return std::unexpected(tls.error());
  return wire::HttpsClient(*endpoint, *tls).Connect();
}

Expected<wire::HttpResponse> Send(wire::HttpsConnection& connection, const Session& session,
                                  const std::string& method, const std::string& target,
                                  std::string_view body,
                                  std::vector<std::pair<std::string, std::string>> headers) {
  headers.emplace_back("Authorization", "Bearer " + session.token);
  return connection.Send(method, target, body, headers);
}

Expected<Json> Decode(const wire::HttpResponse& response) {
  if (response.status < 200 || response.status > 299) {
    return Fail(CoreErrc::kInvalidArgument,
                wire::ProblemDetail(response) + " (HTTP " + std::to_string(response.status) + ")");
  }
  if (response.content_type.starts_with("application/json")) {
    auto doc = json::Parse(response.body);
    if (!doc) return std::unexpected(doc.error());
    return doc;
  }
  return Json(response.body);
}

Expected<Json> SendText(const Session& session, const std::string& method,
                        const std::string& target, std::string_view json_body) {
  auto connection = Connect(session);
  if (!connection) return std::unexpected(connection.error());
  auto response =
      Send(*connection, session, method, target, json_body, {{"Content-Type", "application/json"}});
  if (!response) return std::unexpected(response.error());
  return Decode(*response);
}

Expected<Json> Request(const Session& session, const std::string& method, const std::string& target,
                       const Json& body) {
  return SendText(session, method, target, body.is_null() ? "" : body.dump());
}

void TenantOption::AddTo(CLI::App* verb) {
  verb->add_option("--tenant", tenant_, "Tenant ID (default: the login's)");
}

}  // namespace aspis::cli
