#pragma once

#include <zstd.h>
#include <zstd_errors.h>

#include <memory>

// RAII owners of libzstd's contexts, declared once (CONVENTIONS: one header per C library).
namespace aspis::package {

struct ZstdCCtxFree {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct ZstdDCtxFree {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

using ZstdCompressor = std::unique_ptr<ZSTD_CCtx, ZstdCCtxFree>;
using ZstdDecompressor = std::unique_ptr<ZSTD_DCtx, ZstdDCtxFree>;

}  // namespace aspis::package
