#include "wire/codec.hpp"

namespace aspis::wire {

using json::Json;

Expected<Json> ParseMessage(std::string_view text, std::string_view what) {
  if (text.size() > kMaxMessage) {
    return Fail(WireErrc::kProtocol, std::string(what) + " is larger than 256 KiB");
  }
  auto doc = json::Parse(text, 8);
  if (!doc) return std::unexpected(std::move(doc.error()).WithContext(what));
  if (!doc->is_object()) return Fail(WireErrc::kProtocol, std::string(what) + " is not an object");
  return doc;
}

}  // namespace aspis::wire
