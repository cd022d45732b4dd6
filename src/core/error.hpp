#pragma once

#include <expected>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace aspis {

// An error as a value: a code from one module's error category, a message a person can act on, and
// the context added on the way up ("loading trust bundle: reading /x: no such file").
class [[nodiscard]] Error {
 public:
  Error(std::error_code code, std::string message) : code_(code), message_(std::move(message)) {}

  const std::error_code& code() const { return code_; }
  // The full message, outermost context first.
  const std::string& message() const { return message_; }

  // Prefixes `context` to the message; chains on temporaries: `std::move(e).WithContext("x")`.
  Error WithContext(std::string_view context) &&;
  Error WithContext(std::string_view context) const&;

  friend bool operator==(const Error& error, std::error_code code) { return error.code_ == code; }
  friend std::ostream& operator<<(std::ostream& os, const Error& error) {
    return os << error.code_.category().name() << ":" << error.code_.value() << " "
              << error.message_;
  }

 private:
  std::error_code code_;
  std::string message_;
};

template <class T>
using Expected = std::expected<T, Error>;

inline std::unexpected<Error> Fail(std::error_code code, std::string message) {
  return std::unexpected<Error>(std::in_place, code, std::move(message));
}

// An error category whose codes are 1..N, named by `messages` in order. Each module declares its
// enum and one of these, so categories differ only in their table.
class NamedCategory final : public std::error_category {
 public:
  NamedCategory(const char* name, std::span<const char* const> messages)
      : name_(name), messages_(messages) {}
  const char* name() const noexcept override { return name_; }
  std::string message(int value) const override;

 private:
  const char* name_;
  std::span<const char* const> messages_;
};

// Codes of the core module: files, parsing, configuration.
enum class CoreErrc {
  kInvalidArgument = 1,
  kNotFound,
  kAlreadyExists,
  kIo,
  kPermission,
  kCorrupt,
  kParse,
  kNoSpace,  // the file system (or the user's quota) is full: transient, space may be freed
};

const std::error_category& CoreCategory();
inline std::error_code make_error_code(CoreErrc e) { return {static_cast<int>(e), CoreCategory()}; }

// Adds context to the error of an Expected, leaving a value untouched.
template <class T>
Expected<T> WithContext(Expected<T>&& result, std::string_view context) {
  if (!result) return std::unexpected(std::move(result.error()).WithContext(context));
  return std::move(result);
}

}  // namespace aspis

template <>
struct std::is_error_code_enum<aspis::CoreErrc> : std::true_type {};
