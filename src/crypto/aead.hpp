#pragma once

#include "core/bytes.hpp"
#include "core/error.hpp"

// AES-256-GCM sealing of small secrets (keys at rest, the software root of trust's sealed blobs).
namespace aspis::crypto::aead {

inline constexpr std::size_t kKeySize = 32;

// Returns nonce (12 bytes, random) || ciphertext || tag (16 bytes). `aad` is authenticated, not
// stored: Open must be given the same bytes.
Expected<Bytes> Seal(ByteView key, ByteView plaintext, ByteView aad);
// Fails with kBadSignature when the blob, key or `aad` differ from sealing time.
Expected<Bytes> Open(ByteView key, ByteView sealed, ByteView aad);

}  // namespace aspis::crypto::aead
