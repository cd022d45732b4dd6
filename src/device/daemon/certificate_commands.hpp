#pragma once

#include "core/json.hpp"
#include "device/board/cert_store.hpp"

// The admin socket's certificate commands (wire/admin.hpp, "certificate-..."): what
// `aspis dev certificate` does to the device's certificate store.
namespace aspis::device {

bool IsCertificateCommand(const json::Json& request);
// `store` null: the board has no Wi-Fi, so no store, and every command answers an error.
json::Json HandleCertificateCommand(board::CertStore* store, const json::Json& request);

}  // namespace aspis::device
