// tessera/core/expected.h -- a value or the reason there is none (C++17 has no
// std::expected). For expected outcomes that are not errors: a reply that did not
// come, a server that is not there. Exceptions stay for wrong input.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace tessera {

template <class T>
class Expected {
 public:
  Expected(T value) : value_(std::move(value)) {}  // NOLINT: implicit on purpose
  static Expected failure(std::string why) {
    Expected e;
    e.error_ = std::move(why);
    return e;
  }
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  // Why there is no value ("" when there is one).
  const std::string& error() const { return error_; }

 private:
  Expected() = default;
  std::optional<T> value_;
  std::string error_;
};

}  // namespace tessera
