// tessera/core/expected.h -- a value or the reason there is none (C++17 has no
// std::expected). For expected outcomes that are not errors: a reply that did not
// come, a server that is not there. Exceptions stay for wrong input.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace tessera {

template <class T>
// A T, or the reason there is none (error()). Reading value() without one is undefined:
// check ok() first. Not thread-safe to share mutably, like any value.
class Expected {
 public:
  // A value: ok() is true.
  Expected(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  // No value, with the reason `why` (a sentence a person reads).
  static Expected failure(std::string why) {
    Expected e;
    e.error_ = std::move(why);
    return e;
  }
  // Whether there is a value.
  bool ok() const { return value_.has_value(); }
  // Same as ok().
  explicit operator bool() const { return ok(); }
  // The value; only when ok().
  T& value() { return *value_; }
  // The value; only when ok().
  const T& value() const { return *value_; }
  // Member access to the value; only when ok().
  T* operator->() { return &*value_; }
  // Member access to the value; only when ok().
  const T* operator->() const { return &*value_; }
  // Why there is no value ("" when there is one).
  const std::string& error() const { return error_; }

 private:
  Expected() = default;
  std::optional<T> value_;
  std::string error_;
};

}  // namespace tessera
