#include "service/deploy/deltas.hpp"

#include <algorithm>

#include "core/bytes.hpp"
#include "core/file.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "package/delta.hpp"
#include "package/errors.hpp"

namespace aspis::service::deploy {

namespace fs = std::filesystem;
using json::Json;

namespace {

bool Deltable(const store::Image& from, const store::Image& to) {
  return from.id != to.id && from.sha256 != to.sha256 && from.component_id == to.component_id &&
         from.kind == to.kind && (to.kind == "os" || to.kind == "app" || to.kind == "rtapp");
}

// The SHA-256 and size of a file, read in chunks.
Expected<std::pair<crypto::Digest, std::uint64_t>> HashFile(const fs::path& path) {
  auto file = package::FileSource::Open(path);
  if (!file) return std::unexpected(file.error());
  auto hashed = package::HashingSource::Wrap(*file);
  if (!hashed) return std::unexpected(hashed.error());
  std::vector<std::uint8_t> chunk(std::size_t{64} << 10);
  for (;;) {
    auto n = hashed->Read(chunk);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) break;
  }
  auto digest = hashed->Finish();
  if (!digest) return std::unexpected(digest.error());
  return std::pair{*digest, hashed->count()};
}

std::string KeyOf(const store::Image& from, const store::Image& to) {
  return from.sha256 + "-" + to.sha256;
}

}  // namespace

Deltas::Deltas(const fs::path& data_dir)
    : dir_(data_dir / "deltas"),
      images_(data_dir / "images"),
      worker_([this](const std::stop_token& stop) { Work(stop); }) {}

Deltas::~Deltas() {
  worker_.request_stop();
  wake_.notify_all();
}

std::optional<Deltas::Made> Deltas::Known(const std::string& key) {
  // Made by this instance or, sharing the data directory, another one.
  auto text = file::Read(dir_ / (key + ".json"), file::kSmallFileLimit);
  if (!text) return std::nullopt;
  auto doc = json::Parse(AsString(*text));
  if (!doc || !doc->is_object() || !doc->contains("sha256")) return std::nullopt;
  return Made{doc->value("sha256", ""), doc->value("size", std::uint64_t{0}),
              dir_ / (key + ".delta")};
}

std::optional<Deltas::Made> Deltas::Find(const store::Image& from, const store::Image& to) {
  if (!Deltable(from, to)) return std::nullopt;
  const std::string key = KeyOf(from, to);
  std::optional<Made> made;
  {
    std::lock_guard lock(mutex_);
    if (const auto it = known_.find(key); it != known_.end()) {
      made = it->second;
    } else if (making_ == key || std::find(queue_.begin(), queue_.end(), key) != queue_.end()) {
      return std::nullopt;
    } else if (fs::exists(dir_ / (key + ".json"))) {
      made = Known(key);
      known_.emplace(key, made);
    } else {
      queue_.push_back(key);
      wake_.notify_all();
      return std::nullopt;
    }
  }
  if (!made || made->size >= static_cast<std::uint64_t>(to.size)) return std::nullopt;
  return made;
}

void Deltas::Work(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, stop, [this] { return !queue_.empty(); });
    if (stop.stop_requested()) return;
    making_ = queue_.front();
    queue_.pop_front();
    lock.unlock();
    Make(making_);
    lock.lock();
    if (fs::exists(dir_ / (making_ + ".json"))) known_.emplace(making_, Known(making_));
    making_.clear();
  }
}

void Deltas::Make(const std::string& key) {
  const std::size_t dash = key.find('-');
  const fs::path from = images_ / (key.substr(0, dash) + ".aspkg");
  const fs::path to = images_ / (key.substr(dash + 1) + ".aspkg");
  const fs::path delta = dir_ / (key + ".delta");
  Json outcome;
  auto ready = file::EnsureDirectory(dir_, 0755);
  auto stats = ready ? package::MakeDelta(from, to, delta)
                     : Expected<package::DeltaStats>(std::unexpected(ready.error()));
  if (stats) {
    auto digest = HashFile(delta);
    if (digest) {
      outcome = {{"sha256", crypto::ToHex(digest->first)}, {"size", digest->second}};
      log::Info("made the delta {}: {} bytes for a package of {}", key, stats->delta_size,
                stats->full_size);
    } else {
      outcome = {{"error", "the delta made cannot be read back"}};
    }
  } else if (stats.error() == package::PackageErrc::kIo || stats.error() == CoreErrc::kIo ||
             stats.error() == CoreErrc::kNoSpace) {
    log::Warning("the delta {} was not made, for now: {}", key, stats.error().message());
    return;  // asked for again, it is made again
  } else {
    outcome = {{"error", stats.error().message()}};
    log::Warning("no delta {}: {}", key, stats.error().message());
  }
  if (auto ok = file::WriteDurably(dir_ / (key + ".json"), AsBytes(outcome.dump()), 0644); !ok) {
    log::Warning("cannot record the delta {}: {}", key, ok.error().message());
  }
}

}  // namespace aspis::service::deploy
