#pragma once

#include <string>
#include <string_view>

#include "core/bytes.hpp"
#include "core/error.hpp"

namespace aspis::crypto {

// Standard base64 with padding (RFC 4648 section 4).
std::string Base64Encode(ByteView data);
// Strict: rejects characters outside the alphabet, bad padding and lengths not a multiple of 4.
Expected<Bytes> Base64Decode(std::string_view text);

// Compares in time independent of where the inputs differ (lengths are not secret).
bool ConstantTimeEquals(ByteView a, ByteView b);

// Bytes from OpenSSL's CSPRNG.
Expected<Bytes> RandomBytes(std::size_t count);

// HMAC-SHA256 of `data` under `key`.
Expected<Bytes> HmacSha256(ByteView key, ByteView data);

// A random (version 4) UUID in its lowercase 8-4-4-4-12 form.
Expected<std::string> RandomUuid();

}  // namespace aspis::crypto
