#include "device/daemon/certificate_commands.hpp"

#include <cerrno>
#include <optional>
#include <string>
#include <system_error>

#include "wire/admin.hpp"

namespace aspis::device {

namespace admin = wire::admin;
using json::Json;

namespace {

// What each errno of the store means to the person at the command line.
Json Failed(int error) {
  std::string why;
  switch (error) {
    case EINVAL:
      why =
          "the identifier must be 1 to 16 of A-Z a-z 0-9 . - _, the public key file one PEM "
          "certificate, and the private key the certificate's, opened by the password given";
      break;
    case ERANGE:
      why =
          "too long: identifiers up to 16 characters, certificates and keys up to 8 KiB, "
          "passwords up to 256 bytes";
      break;
    case ENOSPC:
      why = "the certificate store is full (24 KiB)";
      break;
    case ENOENT:
      why = "no certificate has this identifier";
      break;
    default:
      why = std::generic_category().message(error);
  }
  return Json{{"error", "the certificate store: " + why}};
}

std::optional<std::string> Text(const Json& request, const char* field) {
  const Json value = request.value(field, Json());
  if (!value.is_string()) return std::nullopt;
  return value.get<std::string>();
}

}  // namespace

bool IsCertificateCommand(const json::Json& request) {
  return request.value("command", Json()).is_string() &&
         request.value("command", "").starts_with("certificate-");
}

json::Json HandleCertificateCommand(board::CertStore* store, const json::Json& request) {
  if (store == nullptr) {
    return Json{{"error", "this device keeps no certificate store: its board has no Wi-Fi"}};
  }
  const std::string command = request.value("command", "");
  if (command == admin::kCertificateList) {
    const auto identifiers = store->Identifiers();
    if (!identifiers) return Failed(identifiers.error());
    return Json{{"certificates", *identifiers}};
  }
  if (command == admin::kCertificateQuota) {
    const auto available = store->AvailableSpace();
    if (!available) return Failed(available.error());
    return Json{{"available_bytes", *available}, {"capacity_bytes", board::kCertStoreCapacity}};
  }
  const auto id = Text(request, "certificate");
  if (!id) return Json{{"error", command + " needs a certificate identifier"}};
  if (command == admin::kCertificateAdd) {
    const auto type = Text(request, "type");
    const auto certificate = Text(request, "public_key");
    if (!certificate || (type != "rootca" && type != "client")) {
      return Json{{"error", "certificate-add needs a type (rootca or client) and a public key"}};
    }
    board::CertStoreResult<void> added;
    if (type == "rootca") {
      added = store->InstallRootCa(*id, *certificate);
    } else {
      const auto key = Text(request, "private_key");
      if (!key) return Json{{"error", "a client certificate needs its private key"}};
      const auto password = Text(request, "password");
      added = store->InstallClient(
          *id, *certificate, *key,
          password ? std::optional<std::string_view>(*password) : std::nullopt);
    }
    if (!added) return Failed(added.error());
    return Json{{"certificate", *id}};
  }
  if (command == admin::kCertificateDelete) {
    if (auto deleted = store->Delete(*id); !deleted) return Failed(deleted.error());
    return Json{{"certificate", *id}, {"deleted", true}};
  }
  if (command == admin::kCertificateShow) {
    const auto shown = store->Show(*id);
    if (!shown) return Failed(shown.error());
    return Json{{"certificate", *id},
                {"type", shown->client ? "client" : "rootca"},
                {"subject", shown->subject},
                {"issuer", shown->issuer},
                {"not_before", shown->not_before.time_since_epoch().count()},
                {"not_after", shown->not_after.time_since_epoch().count()}};
  }
  return Json{{"error", "unknown command \"" + command + "\""}};
}

}  // namespace aspis::device
