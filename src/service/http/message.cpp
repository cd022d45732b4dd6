#include "service/http/message.hpp"

#include "core/json.hpp"

namespace aspis::service::http {

namespace {

std::string_view Lookup(const std::map<std::string, std::string, std::less<>>& map,
                        std::string_view key) {
  const auto it = map.find(key);
  return it == map.end() ? std::string_view() : std::string_view(it->second);
}

}  // namespace

std::string_view Request::Header(std::string_view name) const { return Lookup(headers, name); }

std::string_view Request::Param(std::string_view name) const { return Lookup(params, name); }

Response Response::Json(int status, std::string body) {
  return Response{status, "application/json", std::move(body), {}};
}

Response Response::Text(int status, std::string body, std::string content_type) {
  return Response{status, std::move(content_type), std::move(body), {}};
}

Response Response::Problem(int status, std::string_view title, std::string_view detail) {
  const json::Json doc{
      {"type", "about:blank"}, {"title", title}, {"status", status}, {"detail", detail}};
  return Response{status, "application/problem+json", json::Dump(doc), {}};
}

}  // namespace aspis::service::http
