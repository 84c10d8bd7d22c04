// tessera/core/error.h -- the one exception type of tessera.
//
// Every error tessera raises is a tessera::Error with a kind. It is thrown
// through TESSERA_THROW / TESSERA_CHECK, which record the function, file and
// line, and whose message must name the offending input (operator, atom id,
// shape, path, endpoint, field). Python raises each kind as the class of the
// same name, a subclass of tessera.TesseraError and of a built-in exception
// (python/src/bind_core.cpp), so `except ValueError` keeps working:
//
//   InvalidArgument -> tessera.InvalidArgumentError (ValueError)
//   NotFound        -> tessera.NotFoundError        (FileNotFoundError)
//   Engine          -> tessera.EngineError          (RuntimeError)
//   Deadline        -> tessera.DeadlineError        (TimeoutError)
//   Unsupported     -> tessera.UnsupportedError     (NotImplementedError)
//
// Expected outcomes (an infeasible plan, a receive that timed out) are values,
// not exceptions.
#pragma once

#include <stdexcept>
#include <string>

#include <fmt/format.h>

namespace tessera {

// What went wrong, in five kinds; Python raises each as its own class (table above).
enum class ErrorKind {
  InvalidArgument,  // bad input: the message names what was wrong
  NotFound,         // a file, store, model or atom does not exist
  Engine,           // a failure inside the engine (LibTorch, a socket, the OS)
  Deadline,         // a deadline passed
  Unsupported,      // not supported (yet): the message says what
  // The names before 0.2 (Python's classes were always the ones above); removed in 0.3.
  Runtime [[deprecated("ErrorKind::Engine")]] = Engine,
  Timeout [[deprecated("ErrorKind::Deadline")]] = Deadline,
  NotImplemented [[deprecated("ErrorKind::Unsupported")]] = Unsupported,
};

// "InvalidArgument" | "NotFound" | "Engine" | "Deadline" | "Unsupported".
const char* error_kind_name(ErrorKind kind);

// The exception tessera throws: what() is the message plus " (in f at file:line)".
class Error : public std::runtime_error {
 public:
  // Throw it through TESSERA_THROW / TESSERA_CHECK, which fill `where`.
  Error(ErrorKind kind, std::string message, std::string where);
  // The kind, which Python maps to the exception class.
  ErrorKind kind() const noexcept { return kind_; }
  // The message alone, without the "(in f at file:line)" suffix of what().
  const std::string& message() const noexcept { return message_; }
  // Where it was thrown: "function at file.cpp:line".
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
