#include "service/attest/attempt_log.hpp"

#include "core/log.hpp"

namespace aspis::service::attest {

AttemptLog::AttemptLog(store::Store& store, Metrics& metrics, std::size_t capacity)
    : store_(store),
      metrics_(metrics),
      capacity_(capacity),
      writer_([this](const std::stop_token& stop) { Run(stop); }) {
  metrics_.Describe("aspis_attestation_attempts_dropped_total",
                    "Unproven attestation attempts not logged because too many waited", "counter");
}

AttemptLog::~AttemptLog() {
  writer_.request_stop();
  writer_.join();
}

void AttemptLog::Add(store::AttestationAttempt attempt) {
  {
    const std::lock_guard lock(mutex_);
    if (waiting_.size() < capacity_) {
      waiting_.push_back(std::move(attempt));
      ready_.notify_one();
      return;
    }
  }
  metrics_.Increment("aspis_attestation_attempts_dropped_total");
}

void AttemptLog::Run(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  for (;;) {
    ready_.wait(lock, stop, [this] { return !waiting_.empty(); });
    if (waiting_.empty()) return;  // stop requested and nothing left to write
    store::AttestationAttempt attempt = std::move(waiting_.front());
    waiting_.pop_front();
    lock.unlock();
    if (auto ok = store_.AddAttestationAttempt(attempt); !ok) {
      log::Error("logging an attestation attempt of {}: {}", attempt.device_id,
                 ok.error().message());
    }
    lock.lock();
  }
}

}  // namespace aspis::service::attest
