#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <thread>

#include "service/metrics.hpp"
#include "service/store/store.hpp"

namespace aspis::service::attest {

// Writes unproven attestation attempts (anyone may send them) to the devices' attempt logs on a
// thread of its own, so that refusing one takes the same time whether the device is claimed or
// not: a caller must not learn which from the time the answer takes. Bounded: while `capacity`
// attempts wait, further ones are dropped and counted in aspis_attestation_attempts_dropped_total.
// Thread-safe.
class AttemptLog {
 public:
  static constexpr std::size_t kDefaultCapacity = 1024;

  AttemptLog(store::Store& store, Metrics& metrics, std::size_t capacity = kDefaultCapacity);
  // Writes what waits, then stops.
  ~AttemptLog();
  AttemptLog(const AttemptLog&) = delete;
  AttemptLog& operator=(const AttemptLog&) = delete;

  void Add(store::AttestationAttempt attempt);

 private:
  void Run(const std::stop_token& stop);

  store::Store& store_;
  Metrics& metrics_;
  const std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable_any ready_;
  std::deque<store::AttestationAttempt> waiting_;  // guarded by mutex_
  std::jthread writer_;                            // last: starts after the members it uses
};

}  // namespace aspis::service::attest
