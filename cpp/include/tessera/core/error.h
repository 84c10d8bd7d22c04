// tessera/core/error.h -- the one exception type of tessera.
//
// Every error tessera raises is a tessera::Error with a kind. It is thrown
// through TESSERA_THROW / TESSERA_CHECK, which record the function, file and
// line, and whose message must name the offending input (operator, atom id,
// shape, path, endpoint, field). Python sees the kinds as subclasses of the
// built-in exceptions (see python/src/bind_core.cpp):
//
//   InvalidArgument -> tessera.InvalidArgumentError (ValueError)
//   NotFound        -> tessera.NotFoundError        (FileNotFoundError)
//   Runtime         -> tessera.TesseraRuntimeError  (RuntimeError)
//   Timeout         -> tessera.TimeoutError         (TimeoutError)
//   NotImplemented  -> tessera.NotImplementedError  (NotImplementedError)
//
// Expected outcomes (an infeasible plan, a receive that timed out) are values,
// not exceptions.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tessera {

enum class ErrorKind { InvalidArgument, NotFound, Runtime, Timeout, NotImplemented };

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, std::string where);
  ErrorKind kind() const noexcept { return kind_; }
  // The message alone, without the "(in f at file:line)" suffix of what().
  const std::string& message() const noexcept { return message_; }
  const std::string& where() const noexcept { return where_; }

 private:
  ErrorKind kind_;
  std::string message_;
  std::string where_;
};

namespace detail {
[[noreturn]] void throw_error(ErrorKind kind, const char* func, const char* file, int line,
                              std::string message);
}  // namespace detail

}  // namespace tessera

// TESSERA_THROW(Kind, "format {}", args...): throw a tessera::Error of ErrorKind::Kind.
#define TESSERA_THROW(KIND, ...)                                                        \
  ::tessera::detail::throw_error(::tessera::ErrorKind::KIND, __func__, __FILE__, __LINE__, \
                                 ::fmt::format(__VA_ARGS__))

// TESSERA_CHECK(cond, Kind, "format {}", args...): throw unless cond holds.
#define TESSERA_CHECK(COND, KIND, ...) \
  do {                                 \
    if (!(COND)) TESSERA_THROW(KIND, __VA_ARGS__); \
  } while (0)
