#include "tessera/core/error.h"

#include <cstring>

namespace tessera {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidArgument: return "InvalidArgument";
    case ErrorKind::NotFound: return "NotFound";
    case ErrorKind::Engine: return "Engine";
    case ErrorKind::Deadline: return "Deadline";
    case ErrorKind::Unsupported: return "Unsupported";
  }
  return "Unknown";
}

Error::Error(ErrorKind kind, std::string message, std::string where)
    : std::runtime_error(message + " (in " + where + ")"),
      kind_(kind),
      message_(std::move(message)),
      where_(std::move(where)) {}

namespace detail {
void throw_error(ErrorKind kind, const char* func, const char* file, int line, std::string message) {
  const char* base = std::strrchr(file, '/');
  std::string where = fmt::format("{} at {}:{}", func, base ? base + 1 : file, line);
  throw Error(kind, std::move(message), std::move(where));
}
}  // namespace detail

}  // namespace tessera
