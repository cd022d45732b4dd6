#pragma once

#include <filesystem>
#include <string>

#include "service/service.hpp"
#include "wire/https_client.hpp"

namespace aspis::testing {

// How the tests run aspis-service in their own process: data and master key under `dir`, a free
// port of 127.0.0.1, two threads. Tests change what they need before Service::Start.
service::ServiceConfig ServiceConfig(const std::filesystem::path& dir);

// One HTTPS request to a running aspis-service, trusting its root CA, with a bearer token when
// `token` is not empty. A transport failure fails the calling test and returns status 0.
wire::HttpResponse CallService(const service::Service& service, const std::string& token,
                               const std::string& method, const std::string& target,
                               const std::string& body = {});

}  // namespace aspis::testing
