#include "package/tar_scan.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string_view>

#include "package/errors.hpp"

namespace aspis::package {

namespace {

constexpr std::size_t kBlock = 512;
constexpr std::uint64_t kMaxText = std::uint64_t{1} << 20;  // a pax header or a long name

using Block = std::array<std::uint8_t, kBlock>;

std::string_view Field(const Block& block, std::size_t offset, std::size_t length) {
  const auto* begin = reinterpret_cast<const char*>(block.data()) + offset;
  return {begin, static_cast<std::size_t>(std::find(begin, begin + length, '\0') - begin)};
}

Expected<std::uint64_t> Octal(const Block& block, std::size_t offset, std::size_t length,
                              std::string_view what) {
  if ((block[offset] & 0x80) != 0) {  // base-256, for values octal cannot hold
    std::uint64_t value = block[offset] & 0x3f;
    for (std::size_t i = offset + 1; i < offset + length; ++i) {
      if (value > (std::uint64_t{1} << 55)) break;
      value = (value << 8) | block[i];
    }
    if ((block[offset] & 0x40) != 0 || value > (std::uint64_t{1} << 62)) {
      return Fail(PackageErrc::kMalformed,
                  "a tar header's " + std::string(what) + " is out of range");
    }
    return value;
  }
  std::string_view text = Field(block, offset, length);
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  std::uint64_t value = 0;
  if (text.empty()) return value;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (ec != std::errc() || end != text.data() + text.size()) {
    return Fail(PackageErrc::kMalformed,
                "a tar header's " + std::string(what) + " is not a number");
  }
  return value;
}

bool Zero(const Block& block) {
  return std::all_of(block.begin(), block.end(), [](std::uint8_t b) { return b == 0; });
}

Expected<void> CheckSum(const Block& block) {
  auto stored = Octal(block, 148, 8, "checksum");
  if (!stored) return std::unexpected(stored.error());
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < kBlock; ++i) sum += (i >= 148 && i < 156) ? ' ' : block[i];
  if (sum != *stored) return Fail(PackageErrc::kMalformed, "a tar header's checksum is wrong");
  return {};
}

// The `path` and `size` of pax extended header records ("LEN key=value\n").
struct PaxValues {
  std::optional<std::string> path;
  std::optional<std::uint64_t> size;
};

Expected<PaxValues> ParsePax(std::string_view text) {
  PaxValues values;
  while (!text.empty()) {
    std::size_t length = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), length);
    const auto digits = static_cast<std::size_t>(end - text.data());
    if (ec != std::errc() || length <= digits + 1 || length > text.size() || text[digits] != ' ' ||
        text[length - 1] != '\n') {
      return Fail(PackageErrc::kMalformed, "a pax header record is malformed");
    }
    const std::string_view record = text.substr(digits + 1, length - digits - 2);
    text.remove_prefix(length);
    const std::size_t equals = record.find('=');
    if (equals == std::string_view::npos) {
      return Fail(PackageErrc::kMalformed, "a pax header record has no =");
    }
    const std::string_view key = record.substr(0, equals);
    const std::string_view value = record.substr(equals + 1);
    if (key == "path") {
      values.path = std::string(value);
    } else if (key == "size") {
      std::uint64_t size = 0;
      const auto [size_end, size_ec] =
          std::from_chars(value.data(), value.data() + value.size(), size);
      if (size_ec != std::errc() || size_end != value.data() + value.size()) {
        return Fail(PackageErrc::kMalformed, "a pax size is not a number");
      }
      values.size = size;
    }
  }
  return values;
}

std::uint64_t Padding(std::uint64_t size) { return (kBlock - size % kBlock) % kBlock; }

}  // namespace

Expected<void> TarScanner::ReadExactly(std::span<std::uint8_t> buffer) {
  std::size_t done = 0;
  while (done < buffer.size()) {
    auto n = source_->Read(buffer.subspan(done));
    if (!n) return std::unexpected(n.error());
    if (*n == 0) return Fail(PackageErrc::kMalformed, "the tar archive ends inside an entry");
    done += *n;
  }
  offset_ += done;
  return {};
}

Expected<void> TarScanner::Skip(std::uint64_t bytes) {
  std::array<std::uint8_t, 16384> scratch{};
  while (bytes > 0) {
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes, scratch.size()));
    if (auto ok = ReadExactly(std::span(scratch).first(n)); !ok) return ok;
    bytes -= n;
  }
  return {};
}

Expected<std::string> TarScanner::ReadText(std::uint64_t size) {
  if (size > kMaxText) {
    return Fail(PackageErrc::kMalformed, "a tar extended header is larger than 1 MiB");
  }
  std::string text(static_cast<std::size_t>(size), '\0');
  if (auto ok = ReadExactly(std::span(reinterpret_cast<std::uint8_t*>(text.data()), text.size()));
      !ok) {
    return std::unexpected(ok.error());
  }
  if (auto ok = Skip(Padding(size)); !ok) return std::unexpected(ok.error());
  return text;
}

Expected<std::optional<TarEntry>> TarScanner::Next() {
  if (ended_) return std::nullopt;
  if (auto ok = Skip(data_left_ + padding_); !ok) return std::unexpected(ok.error());
  data_left_ = padding_ = 0;
  TarEntry entry;
  entry.header_offset = offset_;
  PaxValues pax;
  std::optional<std::string> long_name;
  for (;;) {
    Block block{};
    if (auto ok = ReadExactly(block); !ok) return std::unexpected(ok.error());
    if (Zero(block)) {
      ended_ = true;
      return std::nullopt;
    }
    if (auto ok = CheckSum(block); !ok) return std::unexpected(ok.error());
    auto size = Octal(block, 124, 12, "size");
    if (!size) return std::unexpected(size.error());
    const char type = static_cast<char>(block[156]);
    if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
      auto text = ReadText(*size);
      if (!text) return std::unexpected(text.error());
      if (type == 'x') {
        auto values = ParsePax(*text);
        if (!values) return std::unexpected(values.error());
        pax = std::move(*values);
      } else if (type == 'L') {
        long_name = text->substr(0, text->find('\0'));
      }
      continue;
    }
    entry.type = type;
    if (pax.path) {
      entry.path = *pax.path;
    } else if (long_name) {
      entry.path = *long_name;
    } else {
      const std::string_view prefix =
          Field(block, 257, 5) == "ustar" ? Field(block, 345, 155) : std::string_view();
      entry.path = prefix.empty() ? std::string(Field(block, 0, 100))
                                  : std::string(prefix) + "/" + std::string(Field(block, 0, 100));
    }
    const bool has_data =
        type != '1' && type != '2' && type != '3' && type != '4' && type != '5' && type != '6';
    entry.size = has_data ? pax.size.value_or(*size) : 0;
    entry.data_offset = offset_;
    data_left_ = entry.size;
    padding_ = Padding(entry.size);
    return entry;
  }
}

Expected<std::size_t> TarScanner::ReadData(std::span<std::uint8_t> buffer) {
  const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), data_left_));
  if (n == 0) return 0;
  if (auto ok = ReadExactly(buffer.first(n)); !ok) return std::unexpected(ok.error());
  data_left_ -= n;
  return n;
}

}  // namespace aspis::package
