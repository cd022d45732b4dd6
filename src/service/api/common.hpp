#pragma once

#include <string>
#include <string_view>

#include "core/error.hpp"
#include "core/json.hpp"
#include "service/http/message.hpp"
#include "service/store/store.hpp"

// What the operator and device routes share: how errors and devices look in responses.
namespace aspis::service::api {

// A store error as the HTTP answer: 404, 409, or a logged 500 that says nothing of the cause.
http::Response FromError(const Error& error);

// A device as the API shows it.
json::Json DeviceJson(const store::Device& device);
// "tpm (EK issuer: ...)", "software (no hardware protection)" or "unknown (not attested yet)".
std::string RootOfTrustName(const store::Device& device);
// Stored boot PCR values (store::Device::boot_pcrs) as {"<index>": "<hex>"}.
json::Json BootPcrsJson(std::string_view stored);

}  // namespace aspis::service::api
