#pragma once

#include <memory>
#include <span>
#include <vector>

#include "core/error.hpp"
#include "crypto/key.hpp"
#include "crypto/x509.hpp"

struct ssl_ctx_st;
struct ssl_st;

// TLS contexts for Aspis servers and clients (TLS 1.2 and 1.3 only), built here so that every
// OpenSSL setting lives in the crypto module. Contexts are immutable once built and thread-safe,
// except that a context with a TPM-held key shares that key's one-thread-at-a-time rule. Whatever
// takes its own reference on native() must keep the Context alive as long.
namespace aspis::crypto::tls {

class Context {
 public:
  explicit Context(std::shared_ptr<ssl_ctx_st> ctx) : ctx_(std::move(ctx)) {}
  ssl_ctx_st* native() const { return ctx_.get(); }

 private:
  std::shared_ptr<ssl_ctx_st> ctx_;
};

// A server presenting `chain` (leaf first) with `key`. When `client_roots` is not empty, clients
// are asked for a certificate, which must chain to one of them if sent; clients that send none are
// still admitted, and the application decides per route (PeerCertificate).
Expected<Context> ServerContext(std::span<const Certificate> chain, const PrivateKey& key,
                                std::span<const Certificate> client_roots = {});

// A client that trusts only `roots` (pinned, not the system store) and, when `key` is given,
// presents `chain` as its certificate.
Expected<Context> ClientContext(std::span<const Certificate> roots,
                                std::span<const Certificate> chain = {},
                                const PrivateKey* key = nullptr);

// The peer's certificate on an established connection when it was sent and verified; nullopt
// otherwise.
std::optional<Certificate> PeerCertificate(ssl_st* ssl);

}  // namespace aspis::crypto::tls
