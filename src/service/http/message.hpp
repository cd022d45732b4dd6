#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "crypto/x509.hpp"

// HTTP requests and responses as plain values, so handlers and their tests never see Beast.
namespace aspis::service::http {

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string path;    // the target without its query
  std::string query;   // after '?', undecoded; empty when absent
  std::map<std::string, std::string, std::less<>> headers;  // names in lowercase
  std::string body;
  // The client's certificate when it sent one that chains to the server's client roots.
  std::optional<crypto::Certificate> client_certificate;
  // Path parameters of the matched route: "/v1/tenants/{tenant}" gives params["tenant"].
  std::map<std::string, std::string, std::less<>> params;

  // The header's value, or empty when absent. `name` in lowercase.
  std::string_view Header(std::string_view name) const;
  std::string_view Param(std::string_view name) const;
};

struct Response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  static Response Json(int status, std::string body);
  static Response Text(int status, std::string body, std::string content_type = "text/plain");
  // An RFC 9457 problem document (application/problem+json): `title` names the kind of problem,
  // `detail` says what happened in words a person can act on.
  static Response Problem(int status, std::string_view title, std::string_view detail);
};

}  // namespace aspis::service::http
