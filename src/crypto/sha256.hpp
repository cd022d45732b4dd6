#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "core/bytes.hpp"
#include "core/error.hpp"

struct evp_md_ctx_st;

namespace aspis::crypto {

using Digest = std::array<std::uint8_t, 32>;

// Streaming SHA-256. Not thread-safe; movable, not copyable.
class Sha256 {
 public:
  static Expected<Sha256> Create();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  ~Sha256();

  Expected<void> Update(ByteView data);
  // Returns the digest; the object may be reused for a new message afterwards.
  Expected<Digest> Finish();

 private:
  explicit Sha256(evp_md_ctx_st* ctx) : ctx_(ctx) {}
  evp_md_ctx_st* ctx_;
};

// One-shot SHA-256.
Expected<Digest> Sha256Of(ByteView data);

inline std::string ToHex(const Digest& d) { return HexEncode(d); }

}  // namespace aspis::crypto
