#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "service/store/store.hpp"

// Deltas between two images of one component (package/delta.hpp), offered to a device beside the
// full image when it runs the older one. A delta is made once per pair, in the background, by one
// thread, and kept in DATA/deltas as `<from SHA-256>-<to SHA-256>.delta` with what became of it
// in `.json` beside it (its digest and size, or why it cannot be made), both written durably. A
// delta that failed for a passing reason (I/O, a full disk) is not recorded, and is made again
// when next asked for.
// Images are named by content, so one delta serves every tenant holding the pair.
namespace aspis::service::deploy {

class Deltas {
 public:
  struct Made {
    std::string sha256;  // of the delta file
    std::uint64_t size = 0;
    std::filesystem::path file;
  };

  // Images are read from DATA/images/<SHA-256>.aspkg.
  explicit Deltas(const std::filesystem::path& data_dir);
  Deltas(const Deltas&) = delete;
  Deltas& operator=(const Deltas&) = delete;
  // Finishes the delta being made, drops the queue.
  ~Deltas();

  // The delta that rebuilds `to` from `from` when it is made and smaller than `to`. Otherwise
  // nullopt: the pair is not one a delta serves (another component, the same image, a board), it
  // is queued to be made (once), or it could not be made.
  std::optional<Made> Find(const store::Image& from, const store::Image& to);

 private:
  std::optional<Made> Known(const std::string& key);
  void Work(const std::stop_token& stop);
  void Make(const std::string& key);

  std::filesystem::path dir_;
  std::filesystem::path images_;
  std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<std::string> queue_;                     // keys waiting, oldest first
  std::map<std::string, std::optional<Made>> known_;  // made (or failed for good: nullopt)
  std::string making_;                                // the key being made; empty when idle
  std::jthread worker_;                               // last: it stops first
};

}  // namespace aspis::service::deploy
