#pragma once

#include <cstdint>

#include "core/bytes.hpp"
#include "core/error.hpp"

// What a coprocessor's firmware may ask of Linux. Before remoteproc starts a core it reads the
// image's resource table (its ".resource_table" section) and does what each entry asks: allocate
// memory for the core (a carveout), map a trace buffer, map device memory into the core's view
// (devmem), or create a virtio device the firmware serves, which Linux then binds its own drivers
// to (an RPMsg bus, but also a network card, a disk or a console). A publisher's firmware gets the
// first two, bounded, and one RPMsg device; anything else is refused before the kernel sees it.
namespace aspis::device::apps {

struct FirmwareLimits {
  std::uint64_t max_carveout_bytes = std::uint64_t{16} << 20;  // memory for the core, in all
  std::uint32_t max_vring_buffers = 512;                       // per RPMsg virtqueue
};

// Whether `image` is a little-endian ELF image whose resource table, if it has one, asks only for
// carveouts (at most max_carveout_bytes in all), trace buffers and one RPMsg virtio device. Errors:
// kSandbox, saying what the image asks for.
Expected<void> CheckFirmwareImage(ByteView image, const FirmwareLimits& limits);

}  // namespace aspis::device::apps
