/* Aspis applibs: the device's certificate store (Azure Sphere's applibs/certstore.h), which holds
 * the root CA and client certificates Wi-Fi networks authenticate with (EAP-TLS), up to 24 KiB in
 * all, shared by every app granted it. Every function needs the manifest's "CertStore": true
 * (EACCES without it); on a board without Wi-Fi each fails with ENOTSUP. Functions return -1 with
 * errno on failure: EFAULT for a NULL pointer, ERANGE for a length out of bounds, EINVAL for an
 * identifier outside its alphabet or text that is not what it should be, ENOSPC when the store is
 * full, ENOENT for an identifier not installed. */
#pragma once

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CERTSTORE_MAX_CERT_SIZE 8192
#define CERTSTORE_MAX_PRIVATE_KEY_PASSWORD_LENGTH 256
#define CERTSTORE_MAX_IDENTIFIER_LENGTH 16
#define CERTSTORE_SUBJECTNAME_MAX_LENGTH 300
#define CERTSTORE_ISSUERNAME_MAX_LENGTH 300

/* A certificate's name in the store: 1 to 16 of A-Z a-z 0-9 . - _, NUL-terminated. */
typedef struct CertStore_Identifier {
  char identifier[CERTSTORE_MAX_IDENTIFIER_LENGTH + 1];
} CertStore_Identifier;

typedef struct CertStore_SubjectName {
  char name[CERTSTORE_SUBJECTNAME_MAX_LENGTH + 1];
} CertStore_SubjectName;

typedef struct CertStore_IssuerName {
  char name[CERTSTORE_ISSUERNAME_MAX_LENGTH + 1];
} CertStore_IssuerName;

/* Installs a client certificate and its private key (PEM) as `identifier`, replacing one of that
 * name; `privateKeyPassword` is NULL unless the key is encrypted. The key must be the
 * certificate's, and the password must open it (EINVAL otherwise). */
int CertStore_InstallClientCertificate(const char* identifier, const char* certBlob,
                                       size_t certBlobLength, const char* privateKeyBlob,
                                       size_t privateKeyBlobLength, const char* privateKeyPassword);
/* Installs a root CA certificate (PEM) as `identifier`, replacing one of that name. */
int CertStore_InstallRootCACertificate(const char* identifier, const char* certBlob,
                                       size_t certBlobLength);
int CertStore_DeleteCertificate(const char* identifier);
/* Renames a certificate, replacing one named `destIdentifier`. */
int CertStore_MoveCertificate(const char* sourceIdentifier, const char* destIdentifier);
ssize_t CertStore_GetCertificateCount(void);
/* The identifier of the certificate at `index` (0 to the count less one, ERANGE otherwise), in
 * byte order of the identifiers: deleting one moves those after it down. */
int CertStore_GetCertificateIdentifierAt(size_t index, CertStore_Identifier* outIdentifier);
/* Free space in the store, in bytes. */
ssize_t CertStore_GetAvailableSpace(void);
int CertStore_GetCertificateSubjectName(const char* identifier,
                                        struct CertStore_SubjectName* outSubjectName);
int CertStore_GetCertificateIssuerName(const char* identifier,
                                       struct CertStore_IssuerName* outIssuerName);
/* The validity period's ends, in UTC. */
/* Names as RFC 2253 writes them ("CN=device,O=Contoso"), cut at 300 bytes. */
int CertStore_GetCertificateNotBefore(const char* identifier, struct tm* outNotBefore);
int CertStore_GetCertificateNotAfter(const char* identifier, struct tm* outNotAfter);

#ifdef __cplusplus
}
#endif
