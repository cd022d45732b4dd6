#include "device/reports/error_queue.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/text.hpp"

namespace aspis::device::reports {

namespace {

using json::Json;

constexpr std::string_view kRecord = "error-reports";

Json ToJson(const wire::ErrorEvent& e) {
  return {{"sequence", e.sequence},
          {"type", e.type},
          {"class", e.event_class},
          {"description", e.description},
          {"count", e.count},
          {"start", e.start},
          {"end", e.end}};
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
      queue->events_.push_back(
          {e.at("sequence").get<std::uint64_t>(), e.at("type").get<std::string>(),
           e.at("class").get<std::string>(), e.at("description").get<std::string>(),
           e.at("count").get<std::uint64_t>(), e.at("start").get<std::int64_t>(),
           e.at("end").get<std::int64_t>()});
    }
  } catch (const std::exception&) {
    return Fail(CoreErrc::kCorrupt, "the error report queue record is damaged");
  }
  return queue;
}

void ErrorQueue::Add(std::string_view type, std::string_view event_class, std::string description,
                     std::int64_t now) {
  description = text::Truncated(description, wire::kMaxErrorDescription);
  std::lock_guard lock(mutex_);
  const auto same = std::find_if(events_.begin(), events_.end(), [&](const wire::ErrorEvent& e) {
    return e.type == type && e.event_class == event_class && e.description == description;
  });
  if (same != events_.end()) {
    ++same->count;
    same->end = std::max(same->end, now);
    dirty_ = true;
    return;
  }
  if (events_.size() >= kQueueCapacity) {
    events_.erase(events_.begin());
    ++dropped_;
  }
  events_.push_back({next_sequence_++, std::string(type), std::string(event_class),
                     std::move(description), 1, now, now});
  Persist();
}

std::pair<std::vector<wire::ErrorEvent>, std::uint64_t> ErrorQueue::Pending() {
  std::lock_guard lock(mutex_);
  if (dirty_) Persist();
  return {events_, dropped_};
}

void ErrorQueue::Acknowledge(std::uint64_t sequence, std::uint64_t dropped) {
  std::lock_guard lock(mutex_);
  std::erase_if(events_, [&](const wire::ErrorEvent& e) { return e.sequence <= sequence; });
  dropped_ -= std::min(dropped_, dropped);
  Persist();
}

void ErrorQueue::Persist() {
  Json events = Json::array();
  for (const auto& e : events_) events.push_back(ToJson(e));
  auto ok = store_.Put(kRecord, Json{{"next_sequence", next_sequence_},
                                     {"dropped", dropped_},
                                     {"events", std::move(events)}});
  if (!ok) {
    log::Error("writing the error report queue failed: {}", ok.error().message());
    return;
  }
  dirty_ = false;
}

}  // namespace aspis::device::reports
