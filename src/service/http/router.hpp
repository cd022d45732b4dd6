#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "service/http/message.hpp"

namespace aspis::service::http {

using Handler = std::function<Response(const Request&)>;

// Maps (method, path pattern) to handlers. Patterns are literal segments and `{name}` segments
// that match one non-empty segment: "/v1/tenants/{tenant}/devices/{device}". Routes are added
// before the server starts; Dispatch is then thread-safe.
class Router {
 public:
  void Add(std::string method, std::string pattern, Handler handler);

  struct Match {
    const Handler* handler = nullptr;  // null when nothing matched
    std::string pattern;               // the matched pattern, for metrics ("" when none)
    std::vector<std::string> allowed;  // methods the path accepts, when only the method missed
  };
  // Finds the route for `request` and fills `request.params`.
  Match Find(Request& request) const;

  // Runs the matching handler; 404 or 405 problems when none matches. Handlers must not throw;
  // if one does, the client gets a 500 problem and the server keeps serving. Sets `*pattern`
  // (when given) to the matched route pattern, or "" when none matched.
  Response Dispatch(Request& request, std::string* pattern = nullptr) const;
  // Dispatch in two steps, for callers that decide something from the match first: runs the
  // handler `match` (from Find on `request`) names, or answers 404 or 405 as Dispatch does.
  Response Handle(const Match& match, const Request& request) const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace aspis::service::http
