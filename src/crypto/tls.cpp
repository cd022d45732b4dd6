#include "crypto/tls.hpp"

#include <openssl/ssl.h>

#include "crypto/errors.hpp"
#include "crypto/key_library.hpp"
#include "crypto/openssl_ptr.hpp"

namespace aspis::crypto::tls {

namespace {

// A context whose operations are fetched where `key` lives (a TPM-held key signs in the TPM), and
// which keeps that library alive.
Expected<std::shared_ptr<SSL_CTX>> NewContext(const SSL_METHOD* method, const PrivateKey* key) {
  std::shared_ptr<const KeyLibrary> library = key != nullptr ? LibraryOf(*key) : nullptr;
  SSL_CTX* raw = library ? SSL_CTX_new_ex(library->context, library->properties.c_str(), method)
                         : SSL_CTX_new(method);
  if (raw == nullptr) return std::unexpected(OpenSslError("creating TLS context"));
  std::shared_ptr<SSL_CTX> ctx(raw, [library](SSL_CTX* c) mutable {
    SSL_CTX_free(c);
    library.reset();
  });
  if (SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION) != 1) {
    return std::unexpected(OpenSslError("setting minimum TLS version"));
  }
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  return ctx;
}

// A private copy of `cert` for libssl to own. Verifying a signature under a TPM-held key's library
// attaches provider state to the public keys involved; on copies it dies with the TLS context,
// never outliving the provider, and the caller's certificates stay untouched.
Expected<X509Ptr> OwnCopy(const Certificate& cert) {
  X509Ptr copy(X509_dup(cert.native()));
  if (!copy) return std::unexpected(OpenSslError("copying certificate"));
  return copy;
}

Expected<void> UseIdentity(SSL_CTX* ctx, std::span<const Certificate> chain,
                           const PrivateKey& key) {
  if (chain.empty()) return Fail(CryptoErrc::kInvalidArgument, "TLS identity has no certificate");
  if (!(chain.front().SubjectPublicKey() == key.Public())) {
    return Fail(CryptoErrc::kInvalidArgument, "TLS certificate does not match its private key");
  }
  auto leaf = OwnCopy(chain.front());
  if (!leaf) return std::unexpected(leaf.error());
  if (SSL_CTX_use_certificate(ctx, leaf->get()) != 1 ||
      SSL_CTX_use_PrivateKey(ctx, key.native()) != 1) {
    return std::unexpected(OpenSslError("loading TLS certificate and key"));
  }
  for (const auto& extra : chain.subspan(1)) {
    auto copy = OwnCopy(extra);
    if (!copy) return std::unexpected(copy.error());
    if (SSL_CTX_add1_chain_cert(ctx, copy->get()) != 1) {
      return std::unexpected(OpenSslError("adding TLS chain certificate"));
    }
  }
  return {};
}

Expected<void> TrustOnly(SSL_CTX* ctx, std::span<const Certificate> roots) {
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  for (const auto& root : roots) {
    auto copy = OwnCopy(root);
    if (!copy) return std::unexpected(copy.error());
    if (X509_STORE_add_cert(store, copy->get()) != 1) {
      return std::unexpected(OpenSslError("adding trusted TLS root"));
    }
  }
  return {};
}

}  // namespace

Expected<Context> ServerContext(std::span<const Certificate> chain, const PrivateKey& key,
                                std::span<const Certificate> client_roots) {
  auto ctx = NewContext(TLS_server_method(), &key);
  if (!ctx) return std::unexpected(ctx.error());
  if (auto ok = UseIdentity(ctx->get(), chain, key); !ok) return std::unexpected(ok.error());
  if (!client_roots.empty()) {
    if (auto ok = TrustOnly(ctx->get(), client_roots); !ok) return std::unexpected(ok.error());
    // Ask for a certificate, verify one if sent, but let the route decide whether one is needed.
    SSL_CTX_set_verify(ctx->get(), SSL_VERIFY_PEER, nullptr);
    // Sessions would let a resumed connection skip the client-certificate check's freshness.
    SSL_CTX_set_session_cache_mode(ctx->get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(ctx->get(), 0);
  }
  return Context(std::move(*ctx));
}

Expected<Context> ClientContext(std::span<const Certificate> roots,
                                std::span<const Certificate> chain, const PrivateKey* key) {
  if (roots.empty()) return Fail(CryptoErrc::kInvalidArgument, "TLS client trusts no root");
  auto ctx = NewContext(TLS_client_method(), key);
  if (!ctx) return std::unexpected(ctx.error());
  if (auto ok = TrustOnly(ctx->get(), roots); !ok) return std::unexpected(ok.error());
  SSL_CTX_set_verify(ctx->get(), SSL_VERIFY_PEER, nullptr);
  if (key != nullptr) {
    if (auto ok = UseIdentity(ctx->get(), chain, *key); !ok) return std::unexpected(ok.error());
  }
  return Context(std::move(*ctx));
}

std::optional<Certificate> PeerCertificate(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return std::nullopt;
  X509Ptr peer(SSL_get1_peer_certificate(ssl));
  if (!peer) return std::nullopt;
  auto cert = Certificate::FromNative(peer.get());
  if (!cert) return std::nullopt;
  return std::move(*cert);
}

}  // namespace aspis::crypto::tls
