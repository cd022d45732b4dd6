#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "device/state/state_store.hpp"
#include "wire/check_in.hpp"

// The device's error report (DESIGN section 6): crashes, sandbox denials, update and attestation
// failures, queued on disk until a check-in delivers them. An event identical to one still queued
// (same type, class and merge key, by default its description) is counted into it, and its
// description becomes the latest; a new one when the queue is full drops the oldest, and the drops
// are counted and reported too.
namespace aspis::device::reports {

inline constexpr std::size_t kQueueCapacity = wire::kMaxErrorEvents;
inline constexpr std::chrono::seconds kWriteInterval{1};

// Thread-safe: apps' threads add while the device loop uploads.
class ErrorQueue {
 public:
  // Loads the queue kept in `store` (its own store over the state directory). Errors: kCorrupt.
  static Expected<std::unique_ptr<ErrorQueue>> Open(state::StateStore store);
  // Writes what is not written yet.
  ~ErrorQueue();
  ErrorQueue(const ErrorQueue&) = delete;
  ErrorQueue& operator=(const ErrorQueue&) = delete;

  // Queues an event at `now` (Unix seconds). A new entry is written durably at once, unless the
  // queue was written less than kWriteInterval ago; then it, like a count added to an entry, is
  // written with the next write or upload, so a flood costs at most a write a second. A failed
  // write is logged, never thrown: reporting must not stop the device.
  // `merge_key` tells which events are the same one when the description carries what changes
  // from one to the next (an app's restart count); empty: the description.
  void Add(std::string_view type, std::string_view event_class, std::string description,
           std::int64_t now, std::string merge_key = {});
  // What to upload: every queued entry and the drops since the last acknowledgement.
  std::pair<std::vector<wire::ErrorEvent>, std::uint64_t> Pending();
  // The service stored what Pending returned: entries up to `sequence` and `dropped` drops go.
  void Acknowledge(std::uint64_t sequence, std::uint64_t dropped);

 private:
  explicit ErrorQueue(state::StateStore store) : store_(std::move(store)) {}
  void Persist();  // with mutex_ held

  std::mutex mutex_;
  state::StateStore store_;
  struct Queued {
    wire::ErrorEvent event;
    std::string key;  // what it merges by
  };
  std::vector<Queued> events_;
  std::uint64_t next_sequence_ = 1;
  std::uint64_t dropped_ = 0;
  bool dirty_ = false;
  std::chrono::steady_clock::time_point last_write_;
};

}  // namespace aspis::device::reports
