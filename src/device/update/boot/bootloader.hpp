#pragma once

#include <array>
#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"

// The A/B switch of a bootloader, in RAUC's model: a boot order and, per slot, the boots it has
// left. The bootloader takes one from a slot each time it boots it and skips a slot with none, so
// a slot that never comes up healthy falls back to the other; the agent marks the slot it runs
// good once it is healthy, which gives it its tries back.
namespace aspis::device::update {

enum class Slot { kA, kB };
inline constexpr std::array<Slot, 2> kSlots = {Slot::kA, Slot::kB};
// Boots a slot gets before the bootloader falls back to the other.
inline constexpr int kBootTries = 3;

inline Slot Other(Slot slot) { return slot == Slot::kA ? Slot::kB : Slot::kA; }
inline std::string_view SlotName(Slot slot) { return slot == Slot::kA ? "A" : "B"; }
// "A" or "B". Errors: kParse.
Expected<Slot> ParseSlot(std::string_view name);

// Implementations keep their state where the bootloader reads it (an environment block, a file);
// each change is durable when it returns. Not thread-safe.
class Bootloader {
 public:
  virtual ~Bootloader() = default;
  virtual std::string_view Backend() const = 0;
  // The slot this boot runs.
  virtual Expected<Slot> Booted() = 0;
  // Boots `slot` first from the next boot on, with kBootTries tries; the other slot stays the
  // fallback.
  virtual Expected<void> TryNext(Slot slot) = 0;
  // `slot` came up healthy: it boots first, with its tries back.
  virtual Expected<void> MarkGood(Slot slot) = 0;
  // `slot` must not boot again until it is written anew: the other slot boots next.
  virtual Expected<void> MarkBad(Slot slot) = 0;
};

}  // namespace aspis::device::update
