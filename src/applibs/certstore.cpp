#include <applibs/certstore.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "applibs/broker_client.hpp"

// The certificate store through aspisd's certstore.* calls (device/board/cert_store.hpp):
// identifiers and certificates travel in hex; aspisd checks CertStore, what the text holds and the
// store's room, and answers ENOTSUP on a board without Wi-Fi.
namespace {

using aspis::applibs::BrokerCall;
using aspis::applibs::HexOf;
using aspis::applibs::JsonBytes;
using aspis::applibs::JsonNumber;

int Fail(int error) {
  errno = error;
  return -1;
}

// `identifier` in hex, or empty with errno: EFAULT for NULL, EINVAL for an empty one or one not
// NUL-terminated within CERTSTORE_MAX_IDENTIFIER_LENGTH (as Azure Sphere's CertStore_* answer).
std::string Identifier(const char* identifier) {
  if (identifier == nullptr) {
    errno = EFAULT;
    return {};
  }
  const std::size_t length = strnlen(identifier, CERTSTORE_MAX_IDENTIFIER_LENGTH + 1);
  if (length == 0 || length > CERTSTORE_MAX_IDENTIFIER_LENGTH) {
    errno = EINVAL;
    return {};
  }
  return HexOf(identifier, length);
}

int Install(const char* identifier, const char* cert, std::size_t cert_length, const char* key,
            std::size_t key_length, const char* password) {
  const std::string id = Identifier(identifier);
  if (id.empty()) return -1;
  if (cert == nullptr || (key == nullptr && key_length != 0)) return Fail(EFAULT);
  if (cert_length == 0 || cert_length > CERTSTORE_MAX_CERT_SIZE) return Fail(ERANGE);
  std::string request = R"({"call":"certstore.install","id":")" + id + R"(","certificate":")" +
                        HexOf(cert, cert_length) + "\",\"key\":";
  request += key == nullptr ? std::string("null") : "\"" + HexOf(key, key_length) + "\"";
  request += ",\"password\":";
  if (password == nullptr) {
    request += "null";
  } else {
    const std::size_t length = strnlen(password, CERTSTORE_MAX_PRIVATE_KEY_PASSWORD_LENGTH + 1);
    if (length > CERTSTORE_MAX_PRIVATE_KEY_PASSWORD_LENGTH) return Fail(ERANGE);
    request += "\"" + HexOf(password, length) + "\"";
  }
  return BrokerCall(request + "}", {});
}

// The store's identifiers, in order; false with errno when aspisd refuses.
bool Identifiers(std::vector<std::string>& out) {
  std::string answer;
  if (BrokerCall(R"({"call":"certstore.list"})", {}, &answer) != 0) return false;
  const std::size_t list = answer.find("\"identifiers\":[");
  if (list == std::string::npos) return true;
  std::string_view rest = std::string_view(answer).substr(list + 15);
  // Each a quoted string of A-Z a-z 0-9 . - _ (nothing to unescape), up to the closing bracket.
  while (!rest.empty() && rest.front() != ']') {
    const std::size_t open = rest.find('"');
    const std::size_t close = open == std::string_view::npos ? open : rest.find('"', open + 1);
    if (close == std::string_view::npos) break;
    out.emplace_back(rest.substr(open + 1, close - open - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest.front() == ',') rest.remove_prefix(1);
  }
  return true;
}

// certstore.show's answer for `identifier`, or false with errno.
bool Show(const char* identifier, std::string& answer) {
  const std::string id = Identifier(identifier);
  if (id.empty()) return false;
  return BrokerCall(R"({"call":"certstore.show","id":")" + id + "\"}", {}, &answer) == 0;
}

int Name(const char* identifier, const char* key, char* out, std::size_t max) {
  if (out == nullptr) return Fail(EFAULT);
  std::string answer;
  if (!Show(identifier, answer)) return -1;
  const std::string name = JsonBytes(answer, key, max);
  std::memcpy(out, name.data(), name.size());
  out[name.size()] = '\0';
  return 0;
}

int Time(const char* identifier, const char* key, struct tm* out) {
  if (out == nullptr) return Fail(EFAULT);
  std::string answer;
  if (!Show(identifier, answer)) return -1;
  const time_t seconds = static_cast<time_t>(JsonNumber(answer, key));
  if (gmtime_r(&seconds, out) == nullptr) return Fail(EOVERFLOW);
  return 0;
}

}  // namespace

extern "C" {

int CertStore_InstallClientCertificate(const char* identifier, const char* certBlob,
                                       size_t certBlobLength, const char* privateKeyBlob,
                                       size_t privateKeyBlobLength,
                                       const char* privateKeyPassword) {
  if (privateKeyBlob == nullptr) return Fail(EFAULT);
  if (privateKeyBlobLength == 0 || privateKeyBlobLength > CERTSTORE_MAX_CERT_SIZE) {
    return Fail(ERANGE);
  }
  return Install(identifier, certBlob, certBlobLength, privateKeyBlob, privateKeyBlobLength,
                 privateKeyPassword);
}

int CertStore_InstallRootCACertificate(const char* identifier, const char* certBlob,
                                       size_t certBlobLength) {
  return Install(identifier, certBlob, certBlobLength, nullptr, 0, nullptr);
}

int CertStore_DeleteCertificate(const char* identifier) {
  const std::string id = Identifier(identifier);
  if (id.empty()) return -1;
  return BrokerCall(R"({"call":"certstore.delete","id":")" + id + "\"}", {});
}

int CertStore_MoveCertificate(const char* sourceIdentifier, const char* destIdentifier) {
  const std::string from = Identifier(sourceIdentifier);
  if (from.empty()) return -1;
  const std::string to = Identifier(destIdentifier);
  if (to.empty()) return -1;
  return BrokerCall(R"({"call":"certstore.move","from":")" + from + R"(","to":")" + to + "\"}", {});
}

ssize_t CertStore_GetCertificateCount(void) {
  std::vector<std::string> identifiers;
  if (!Identifiers(identifiers)) return -1;
  return static_cast<ssize_t>(identifiers.size());
}

int CertStore_GetCertificateIdentifierAt(size_t index, CertStore_Identifier* outIdentifier) {
  if (outIdentifier == nullptr) return Fail(EFAULT);
  std::vector<std::string> identifiers;
  if (!Identifiers(identifiers)) return -1;
  if (index >= identifiers.size() || identifiers[index].size() > CERTSTORE_MAX_IDENTIFIER_LENGTH) {
    return Fail(ERANGE);
  }
  std::memcpy(outIdentifier->identifier, identifiers[index].c_str(), identifiers[index].size() + 1);
  return 0;
}

ssize_t CertStore_GetAvailableSpace(void) {
  std::string answer;
  if (BrokerCall(R"({"call":"certstore.space"})", {}, &answer) != 0) return -1;
  return static_cast<ssize_t>(JsonNumber(answer, "available"));
}

int CertStore_GetCertificateSubjectName(const char* identifier,
                                        struct CertStore_SubjectName* outSubjectName) {
  return Name(identifier, "subject", outSubjectName == nullptr ? nullptr : outSubjectName->name,
              CERTSTORE_SUBJECTNAME_MAX_LENGTH);
}

int CertStore_GetCertificateIssuerName(const char* identifier,
                                       struct CertStore_IssuerName* outIssuerName) {
  return Name(identifier, "issuer", outIssuerName == nullptr ? nullptr : outIssuerName->name,
              CERTSTORE_ISSUERNAME_MAX_LENGTH);
}

int CertStore_GetCertificateNotBefore(const char* identifier, struct tm* outNotBefore) {
  return Time(identifier, "not_before", outNotBefore);
}

int CertStore_GetCertificateNotAfter(const char* identifier, struct tm* outNotAfter) {
  return Time(identifier, "not_after", outNotAfter);
}

}  // extern "C"
