#pragma once

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include <cstdlib>
#include <memory>
#include <utility>

// The one place that says how each tpm2-tss handle is released.
namespace aspis::rot::tpm2 {

struct TctiDeleter {
  void operator()(TSS2_TCTI_CONTEXT* tcti) const { Tss2_TctiLdr_Finalize(&tcti); }
};
using TctiPtr = std::unique_ptr<TSS2_TCTI_CONTEXT, TctiDeleter>;

struct EsysDeleter {
  void operator()(ESYS_CONTEXT* esys) const { Esys_Finalize(&esys); }
};
using EsysPtr = std::unique_ptr<ESYS_CONTEXT, EsysDeleter>;

// Memory that ESAPI allocated for an output parameter.
struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <class T>
using EsysOut = std::unique_ptr<T, EsysFree>;

// An ESYS_TR released when the owner is done with it: transient objects and sessions are flushed
// from the TPM (swtpm has no resource manager and holds only three), and handles to persistent
// objects and NV indices are closed in ESAPI without touching the TPM object.
class EsysHandle {
 public:
  enum class Release { kFlush, kClose };

  EsysHandle() = default;
  EsysHandle(ESYS_CONTEXT* esys, ESYS_TR handle, Release release)
      : esys_(esys), handle_(handle), release_(release) {}
  EsysHandle(EsysHandle&& other) noexcept
      : esys_(other.esys_),
        handle_(std::exchange(other.handle_, ESYS_TR_NONE)),
        release_(other.release_) {}
  EsysHandle& operator=(EsysHandle&& other) noexcept {
    std::swap(esys_, other.esys_);
    std::swap(handle_, other.handle_);
    std::swap(release_, other.release_);
    return *this;
  }
  ~EsysHandle() {
    if (handle_ == ESYS_TR_NONE) return;
    if (release_ == Release::kFlush) {
      Esys_FlushContext(esys_, handle_);
    } else {
      Esys_TR_Close(esys_, &handle_);
    }
  }

  ESYS_TR get() const { return handle_; }
  // For handles the TPM already released (a completed hash sequence).
  void Forget() { handle_ = ESYS_TR_NONE; }

 private:
  ESYS_CONTEXT* esys_ = nullptr;
  ESYS_TR handle_ = ESYS_TR_NONE;
  Release release_ = Release::kFlush;
};

}  // namespace aspis::rot::tpm2
