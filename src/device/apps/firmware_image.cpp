#include "device/apps/firmware_image.hpp"

#include <gelf.h>
#include <libelf.h>

#include <bit>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "device/apps/errors.hpp"

namespace aspis::device::apps {

namespace {

// Linux's resource table (include/linux/remoteproc.h): a header, then the offset of each entry;
// each entry is a type and its body.
constexpr std::size_t kTableHeader = 16;  // ver, num, reserved[2]
constexpr std::uint32_t kMaxEntries = 64;
enum ResourceType : std::uint32_t { kCarveout = 0, kDevmem = 1, kTrace = 2, kVdev = 3 };
constexpr std::size_t kCarveoutBody = 52;  // da, pa, len, flags, reserved, name[32]
constexpr std::size_t kTraceBody = 44;     // da, len, reserved, name[32]
constexpr std::size_t kVdevBody = 24;      // id, notifyid, dfeatures, gfeatures, config_len, ...
constexpr std::size_t kVring = 20;         // da, align, num, notifyid, pa
constexpr std::uint32_t kMaxVrings = 2;
constexpr std::uint32_t kVirtioRpmsg = 7;
constexpr std::uint32_t kMaxVringAlign = 4096;

struct ElfEnd {
  void operator()(Elf* elf) const { elf_end(elf); }
};

std::unexpected<Error> Refused(const std::string& why) {
  return Fail(AppsErrc::kSandbox, "the firmware " + why);
}

// The 32-bit word at `at` (the table is read as the kernel reads it: little-endian, which the
// image's header was checked to say).
std::uint32_t Word(ByteView table, std::uint64_t at) {
  std::uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | table[at + static_cast<std::size_t>(i)];
  return value;
}

// Adds what the virtqueues take to `memory`.
Expected<void> CheckVdev(ByteView table, std::uint64_t body, std::uint64_t available,
                         const FirmwareLimits& limits, std::uint64_t& memory) {
  if (available < kVdevBody) return Refused("has a truncated virtio device entry");
  const std::uint32_t id = Word(table, body);
  if (id != kVirtioRpmsg) {
    return Refused("offers Linux a virtio device of type " + std::to_string(id) +
                   ": only an RPMsg device is allowed");
  }
  const std::uint64_t config = Word(table, body + 16);
  const std::uint32_t vrings = table[body + 21];
  if (vrings > kMaxVrings || kVdevBody + kVring * vrings + config > available) {
    return Refused("has a malformed virtio device entry");
  }
  for (std::uint32_t v = 0; v < vrings; ++v) {
    const std::uint64_t ring = body + kVdevBody + kVring * v;
    const std::uint32_t align = Word(table, ring + 4);
    const std::uint32_t buffers = Word(table, ring + 8);
    if (buffers > limits.max_vring_buffers) {
      return Refused("asks for " + std::to_string(buffers) + " RPMsg buffers, more than the " +
                     std::to_string(limits.max_vring_buffers) + " allowed");
    }
    // Linux allocates each virtqueue (vring_size of its buffers, at its alignment) as memory
    // for the core: both bounded, and counted with the carveouts.
    if (buffers == 0 || !std::has_single_bit(buffers) || !std::has_single_bit(align) ||
        align > kMaxVringAlign) {
      return Refused("has a malformed virtqueue");
    }
    const std::uint64_t descriptors =
        std::uint64_t{16} * buffers + 2 * (3 + std::uint64_t{buffers});
    memory += (descriptors + align - 1) / align * align + 6 + 8 * std::uint64_t{buffers};
  }
  return {};
}

Expected<void> CheckResourceTable(ByteView table, const FirmwareLimits& limits) {
  if (table.size() < kTableHeader || Word(table, 0) != 1 || Word(table, 8) != 0 ||
      Word(table, 12) != 0) {
    return Refused("has a malformed resource table");
  }
  const std::uint32_t entries = Word(table, 4);
  if (entries > kMaxEntries || kTableHeader + std::uint64_t{4} * entries > table.size()) {
    return Refused("has a malformed resource table");
  }
  std::uint64_t carveouts = 0;
  int vdevs = 0;
  for (std::uint32_t i = 0; i < entries; ++i) {
    const std::uint64_t at = Word(table, kTableHeader + std::uint64_t{4} * i);
    if (at + 4 > table.size()) return Refused("has a resource table entry out of bounds");
    const std::uint64_t body = at + 4;
    const std::uint64_t available = table.size() - body;
    switch (const std::uint32_t type = Word(table, at); type) {
      case kCarveout:
        if (available < kCarveoutBody) return Refused("has a truncated carveout entry");
        carveouts += Word(table, body + 8);
        break;
      case kTrace:
        if (available < kTraceBody) return Refused("has a truncated trace entry");
        break;
      case kVdev:
        if (++vdevs > 1) return Refused("offers Linux more than one virtio device");
        if (auto vdev = CheckVdev(table, body, available, limits, carveouts); !vdev) return vdev;
        break;
      case kDevmem:
        return Refused("asks for device memory to be mapped for the core");
      default:
        return Refused("asks for a resource of type " + std::to_string(type));
    }
    if (carveouts > limits.max_carveout_bytes) {
      return Refused("asks for " + std::to_string(carveouts) + " bytes of memory, more than the " +
                     std::to_string(limits.max_carveout_bytes) + " allowed");
    }
  }
  return {};
}

}  // namespace

Expected<void> CheckFirmwareImage(ByteView image, const FirmwareLimits& limits) {
  if (elf_version(EV_CURRENT) == EV_NONE) return Refused("cannot be read: libelf is unusable");
  Bytes copy(image.begin(), image.end());  // libelf reads from a buffer it may write to
  const std::unique_ptr<Elf, ElfEnd> elf(
      elf_memory(reinterpret_cast<char*>(copy.data()), copy.size()));
  GElf_Ehdr header{};
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF || gelf_getehdr(elf.get(), &header) == nullptr) {
    return Refused("is not an ELF image");
  }
  if (header.e_ident[EI_DATA] != ELFDATA2LSB) return Refused("is not a little-endian ELF image");
  // The table is looked for as the kernel's remoteproc looks for it (find_table): every section
  // header the ELF header counts, section 0 included, named from the raw offset of the section
  // e_shstrndx gives, whatever its type. What the kernel would read outside the image is refused,
  // not skipped, so that both find the same table or none.
  const std::uint64_t size = image.size();
  const std::uint64_t entry =
      header.e_ident[EI_CLASS] == ELFCLASS64 ? sizeof(Elf64_Shdr) : sizeof(Elf32_Shdr);
  if (header.e_shentsize != entry || header.e_shoff > size ||
      std::uint64_t{header.e_shnum} * entry > size - header.e_shoff ||
      (header.e_shnum > 0 && header.e_shstrndx >= header.e_shnum)) {
    return Refused("has section headers outside the image");
  }
  GElf_Shdr names{};
  if (header.e_shnum > 0 &&
      gelf_getshdr(elf_getscn(elf.get(), header.e_shstrndx), &names) == nullptr) {
    return Refused("is a malformed ELF");
  }
  std::optional<ByteView> table;
  for (std::size_t i = 0; i < header.e_shnum; ++i) {
    GElf_Shdr section{};
    if (gelf_getshdr(elf_getscn(elf.get(), i), &section) == nullptr) {
      return Refused("is a malformed ELF");
    }
    const std::uint64_t name = names.sh_offset + section.sh_name;
    if (names.sh_offset > size || section.sh_name > size - names.sh_offset ||
        std::memchr(image.data() + name, '\0', size - name) == nullptr) {
      return Refused("has a section name outside the image");
    }
    if (std::strcmp(reinterpret_cast<const char*>(image.data() + name), ".resource_table") != 0) {
      continue;
    }
    if (table || section.sh_type == SHT_NOBITS || section.sh_offset > size ||
        section.sh_size > size - section.sh_offset) {
      return Refused("has a malformed resource table");
    }
    table = image.subspan(section.sh_offset, section.sh_size);
  }
  if (!table) return {};  // the firmware asks for nothing
  return CheckResourceTable(*table, limits);
}

}  // namespace aspis::device::apps
