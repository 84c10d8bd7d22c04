// fuzz/common.h -- what the fuzz targets share: how a refused input and a failed check are
// reported, and the frame format of fuzz_wire's inputs.
//
// Frames: how one byte string carries a multipart message. A wire input is a sequence of frames, each a u32 little-endian length followed by that
// many bytes. A length past the end of the input takes the bytes that remain (so every input
// is a message, and a mutated length never wastes the run); an input ends after its last
// frame; at most kMaxFrames frames are read (the wire allows 3 + 4096 frames, more are
// refused by the frame count check anyway). An empty input is a message of no frames.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tessera/core/error.h"

namespace tessera::fuzz {

// A tessera::Error is the expected answer to a malformed input. With TESSERA_FUZZ_VERBOSE set
// in the environment, its message is printed (to see how far the seeds reach).
inline void refused(const tessera::Error& e) {
  static const bool verbose = std::getenv("TESSERA_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "refused: %s\n", e.message().c_str());
}

// A property the target checks does not hold: a finding (libFuzzer saves the input).
[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "fuzz: check failed: %s\n", what);
  std::abort();
}

inline constexpr size_t kMaxFrames = 4200;

// The frames of an input, as (offset, length) into it.
inline std::vector<std::pair<size_t, size_t>> split_frames(const uint8_t* data, size_t size) {
  std::vector<std::pair<size_t, size_t>> frames;
  size_t off = 0;
  while (off < size && frames.size() < kMaxFrames) {
    uint32_t n = 0;
    const size_t avail = size - off;
    std::memcpy(&n, data + off, avail < 4 ? avail : 4);  // a truncated length reads its bytes, rest zero
    off += avail < 4 ? avail : 4;
    const size_t len = n < size - off ? n : size - off;
    frames.emplace_back(off, len);
    off += len;
  }
  return frames;
}

// The input that split_frames turns back into `frames` (seed corpus generation).
inline std::string join_frames(const std::vector<std::string>& frames) {
  std::string out;
  for (const auto& f : frames) {
    const uint32_t n = static_cast<uint32_t>(f.size());
    out.append(reinterpret_cast<const char*>(&n), 4);
    out += f;
  }
  return out;
}

}  // namespace tessera::fuzz
