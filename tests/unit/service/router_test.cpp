#include <gtest/gtest.h>

#include <stdexcept>

#include "core/json.hpp"
#include "service/http/router.hpp"
#include "service/http/server.hpp"

namespace aspis::service::http {
namespace {

Request Make(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

TEST(Router, MatchesLiteralAndParameterSegments) {
  Router router;
  router.Add("GET", "/v1/tenants/{tenant}/devices/{device}", [](const Request& r) {
    return Response::Json(200,
                          std::string(r.Param("tenant")) + "/" + std::string(r.Param("device")));
  });
  Request request = Make("GET", "/v1/tenants/t1/devices/d9");
  std::string pattern;
  const Response response = router.Dispatch(request, &pattern);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, "t1/d9");
  EXPECT_EQ(pattern, "/v1/tenants/{tenant}/devices/{device}");
}

TEST(Router, UnknownPathIsA404Problem) {
  Router router;
  router.Add("GET", "/v1/tenants", [](const Request&) { return Response::Json(200, "[]"); });
  Request request = Make("GET", "/v1/tenants/x/y");
  const Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 404);
  EXPECT_EQ(response.content_type, "application/problem+json");
  auto doc = json::Parse(response.body);
  ASSERT_TRUE(doc);
  EXPECT_EQ((*doc)["status"], 404);
  EXPECT_EQ((*doc)["title"], "Not found");
}

TEST(Router, WrongMethodIsA405WithAllow) {
  Router router;
  router.Add("GET", "/v1/tenants", [](const Request&) { return Response::Json(200, "[]"); });
  router.Add("POST", "/v1/tenants", [](const Request&) { return Response::Json(201, "{}"); });
  Request request = Make("DELETE", "/v1/tenants");
  const Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 405);
  ASSERT_EQ(response.headers.size(), 1u);
  EXPECT_EQ(response.headers[0].second, "GET, POST");
}

TEST(Router, EmptySegmentsDoNotMatchParameters) {
  Router router;
  router.Add("GET", "/v1/devices/{device}", [](const Request&) { return Response::Json(200, ""); });
  Request request = Make("GET", "/v1/devices/");
  EXPECT_EQ(router.Dispatch(request).status, 404);
}

TEST(Router, ThrowingHandlerBecomesA500Problem) {
  Router router;
  router.Add("GET", "/boom", [](const Request&) -> Response { throw std::runtime_error("bug"); });
  Request request = Make("GET", "/boom");
  const Response response = router.Dispatch(request);
  EXPECT_EQ(response.status, 500);
  EXPECT_EQ(response.body.find("bug"), std::string::npos);  // internals stay in the log
}

TEST(Router, HandleAfterFindRunsTheMatchedRoute) {
  Router router;
  router.Add("GET", "/v1/devices/{device}",
             [](const Request& r) { return Response::Json(200, std::string(r.Param("device"))); });
  Request request = Make("GET", "/v1/devices/d7");
  const Router::Match match = router.Find(request);
  EXPECT_EQ(match.pattern, "/v1/devices/{device}");
  EXPECT_EQ(router.Handle(match, request).body, "d7");
  Request unknown = Make("GET", "/v1/nothing");
  EXPECT_EQ(router.Handle(router.Find(unknown), unknown).status, 404);
}

// Clients choose methods; metrics labels must come from a fixed set.
TEST(MethodLabel, UnknownMethodsAreOther) {
  for (const char* method : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    EXPECT_EQ(MethodLabel(method), method);
  }
  for (const char* method : {"BREW", "get", "PROPFIND", "", "GET ", "GET\n"}) {
    EXPECT_EQ(MethodLabel(method), "other") << method;
  }
}

}  // namespace
}  // namespace aspis::service::http
