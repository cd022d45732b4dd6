#include "service/http/router.hpp"

#include <exception>

#include "core/log.hpp"

namespace aspis::service::http {

namespace {

std::vector<std::string> Split(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t slash = path.find('/', start);
    const std::size_t end = slash == std::string_view::npos ? path.size() : slash;
    if (end > start) out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool IsParam(const std::string& segment) {
  return segment.size() > 2 && segment.front() == '{' && segment.back() == '}';
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler) {
  std::vector<std::string> segments = Split(pattern);
  routes_.push_back(
      {std::move(method), std::move(pattern), std::move(segments), std::move(handler)});
}

Router::Match Router::Find(Request& request) const {
  const std::vector<std::string> segments = Split(request.path);
  Match match;
  for (const Route& route : routes_) {
    if (route.segments.size() != segments.size()) continue;
    std::map<std::string, std::string, std::less<>> params;
    bool matches = true;
    for (std::size_t i = 0; i < segments.size() && matches; ++i) {
      if (IsParam(route.segments[i])) {
        params[route.segments[i].substr(1, route.segments[i].size() - 2)] = segments[i];
      } else {
        matches = route.segments[i] == segments[i];
      }
    }
    if (!matches) continue;
    if (route.method != request.method) {
      match.allowed.push_back(route.method);
      continue;
    }
    request.params = std::move(params);
    match.handler = &route.handler;
    match.pattern = route.pattern;
    return match;
  }
  return match;
}

Response Router::Dispatch(Request& request, std::string* pattern) const {
  const Match match = Find(request);
  if (pattern != nullptr) *pattern = match.pattern;
  return Handle(match, request);
}

Response Router::Handle(const Match& match, const Request& request) const {
  if (match.handler == nullptr) {
    if (!match.allowed.empty()) {
      std::string allow;
      for (const auto& m : match.allowed) allow += (allow.empty() ? "" : ", ") + m;
      Response response = Response::Problem(
          405, "Method not allowed",
          request.method + " is not supported on " + request.path + "; use " + allow);
      response.headers.emplace_back("Allow", allow);
      return response;
    }
    return Response::Problem(404, "Not found", "no resource at " + request.path);
  }
  try {
    return (*match.handler)(request);
  } catch (const std::exception& e) {
    log::Error("handler for {} {} threw: {}", request.method, match.pattern, e.what());
  } catch (...) {
    log::Error("handler for {} {} threw a non-standard exception", request.method, match.pattern);
  }
  return Response::Problem(500, "Internal error",
                           "the service failed while handling this request; it has been logged");
}

}  // namespace aspis::service::http
