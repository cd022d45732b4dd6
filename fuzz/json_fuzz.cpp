// Every JSON document Aspis reads goes through json::Parse.
#include <cstddef>
#include <cstdint>

#include "core/bytes.hpp"
#include "core/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace aspis;
  auto doc = json::Parse(AsString(ByteView(data, size)), 16);
  if (doc) {
    (void)json::GetString(*doc, "a");
    (void)json::GetUint(*doc, "b");
  }
  return 0;
}
