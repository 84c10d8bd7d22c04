// tessera/core/files.h -- content hashes and whole-file reads, torch-free.
#pragma once

#include <cstddef>
#include <string>

namespace tessera {

// SHA-256 of a byte range, 64 lowercase hex characters.
std::string sha256_hex(const void* data, size_t size);
// The whole file; NotFound for a missing file, InvalidArgument for a directory.
std::string read_file(const std::string& path);

}  // namespace tessera
