#include "device/reports/error_queue.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/text.hpp"

namespace aspis::device::reports {

namespace {

using json::Json;

constexpr std::string_view kRecord = "error-reports";

Json ToJson(const wire::ErrorEvent& e, const std::string& key) {
  Json json = {{"sequence", e.sequence},
               {"type", e.type},
               {"class", e.event_class},
               {"description", e.description},
               {"count", e.count},
               {"start", e.start},
               {"end", e.end}};
  if (key != e.description) json["key"] = key;
  return json;
}

}  // namespace

Expected<std::unique_ptr<ErrorQueue>> ErrorQueue::Open(state::StateStore store) {
  auto record = store.Get(kRecord);
  if (!record) return std::unexpected(record.error());
  std::unique_ptr<ErrorQueue> queue(new ErrorQueue(std::move(store)));
  if (!*record) return queue;
  try {
    const Json& doc = **record;
    queue->next_sequence_ = doc.at("next_sequence").get<std::uint64_t>();
    queue->dropped_ = doc.at("dropped").get<std::uint64_t>();
    for (const auto& e : doc.at("events")) {
      wire::ErrorEvent event{
          e.at("sequence").get<std::uint64_t>(), e.at("type").get<std::string>(),
          e.at("class").get<std::string>(),      e.at("description").get<std::string>(),
          e.at("count").get<std::uint64_t>(),    e.at("start").get<std::int64_t>(),
          e.at("end").get<std::int64_t>()};
      std::string key = e.value("key", event.description);
      queue->events_.push_back({std::move(event), std::move(key)});
    }
  } catch (const std::exception&) {
    return Fail(CoreErrc::kCorrupt, "the error report queue record is damaged");
  }
  return queue;
}

ErrorQueue::~ErrorQueue() {
  try {
    const std::lock_guard lock(mutex_);
    if (dirty_) Persist();
  } catch (const std::exception&) {  // NOLINT(bugprone-empty-catch): out of memory at exit
    // What is lost is at most the last second's reports.
  }
}

void ErrorQueue::Add(std::string_view type, std::string_view event_class, std::string description,
                     std::int64_t now, std::string merge_key) {
  description = text::Truncated(description, wire::kMaxErrorDescription);
  merge_key =
      merge_key.empty() ? description : text::Truncated(merge_key, wire::kMaxErrorDescription);
  std::lock_guard lock(mutex_);
  const auto same = std::find_if(events_.begin(), events_.end(), [&](const Queued& q) {
    return q.event.type == type && q.event.event_class == event_class && q.key == merge_key;
  });
  if (same != events_.end()) {
    ++same->event.count;
    same->event.end = std::max(same->event.end, now);
    same->event.description = std::move(description);
    dirty_ = true;
    return;
  }
  if (events_.size() >= kQueueCapacity) {
    events_.erase(events_.begin());
    ++dropped_;
  }
  events_.push_back({{next_sequence_++, std::string(type), std::string(event_class),
                      std::move(description), 1, now, now},
                     std::move(merge_key)});
  // A flood of new entries (an app naming a new address each time) is written once a second.
  if (std::chrono::steady_clock::now() - last_write_ >= kWriteInterval) {
    Persist();
  } else {
    dirty_ = true;
  }
}

std::pair<std::vector<wire::ErrorEvent>, std::uint64_t> ErrorQueue::Pending() {
  std::lock_guard lock(mutex_);
  if (dirty_) Persist();
  std::vector<wire::ErrorEvent> pending;
  pending.reserve(events_.size());
  for (const auto& q : events_) pending.push_back(q.event);
  return {std::move(pending), dropped_};
}

void ErrorQueue::Acknowledge(std::uint64_t sequence, std::uint64_t dropped) {
  std::lock_guard lock(mutex_);
  std::erase_if(events_, [&](const Queued& q) { return q.event.sequence <= sequence; });
  dropped_ -= std::min(dropped_, dropped);
  Persist();
}

void ErrorQueue::Persist() {
  Json events = Json::array();
  for (const auto& q : events_) events.push_back(ToJson(q.event, q.key));
  auto ok = store_.Put(kRecord, Json{{"next_sequence", next_sequence_},
                                     {"dropped", dropped_},
                                     {"events", std::move(events)}});
  last_write_ = std::chrono::steady_clock::now();
  if (!ok) {
    log::Error("writing the error report queue failed: {}", ok.error().message());
    return;
  }
  dirty_ = false;
}

}  // namespace aspis::device::reports
