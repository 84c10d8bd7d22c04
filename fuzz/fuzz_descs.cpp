// fuzz/fuzz_descs.cpp -- libFuzzer target: the tensor descriptor parser, decode_descs (torch-free).
//
// Input: u32 tensor count (taken modulo kMaxTensors + 1: decode_header refuses more before
// decode_descs runs), u64 maximum message size (0 read as 1: a server refuses 0), then the
// descriptor frame (wire.h: dtype, rank, codec, parameter bytes, dims, frame length, codec
// parameters; per tensor).
//
// Checks on what decode_descs accepts: encoding the descriptors again gives the frame back
// byte for byte; every descriptor's decoded size (dims x element size, computed without
// overflow) sums to at most the maximum, and each shape's product of dims with 0 read as 1
// (what LibTorch's strides multiply) is at most the maximum too; every fixed-size codec's
// frame length is its encoded size; the codec applies to the dtype and rank; ranks are at most 8. A
// tessera::Error is the expected answer to a malformed frame; anything else is a finding.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common.h"
#include "tessera/core/dtype.h"
#include "tessera/core/error.h"
#include "tessera/transport/wire.h"

using namespace tessera;
using tessera::fuzz::fail;
using tessera::fuzz::refused;
using namespace tessera::transport;

namespace {
using u128 = unsigned __int128;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 12) return 0;
  uint32_t count;
  uint64_t max_bytes;
  std::memcpy(&count, data, 4);
  std::memcpy(&max_bytes, data + 4, 8);
  count %= kMaxTensors + 1;
  if (max_bytes == 0) max_bytes = 1;
  const uint8_t* frame = data + 12;
  const size_t n = size - 12;
  std::vector<TensorDesc> ds;
  try {
    ds = decode_descs(frame, n, count, max_bytes);
  } catch (const tessera::Error& e) {
    refused(e);  // refused by name: the expected outcome
    return 0;
  }
  if (ds.size() != count) fail("descriptor count differs from the declared count");
  if (encode_descs(ds) != std::string(reinterpret_cast<const char*>(frame), n))
    fail("encode_descs(decode_descs(frame)) != frame");
  u128 total = 0;
  for (const auto& d : ds) {
    if (d.dims.size() > static_cast<size_t>(kMaxRank)) fail("rank above the maximum");
    const std::string& dt = dtype_from_code(d.dtype);
    if (!codec_applies(d.codec, dt, static_cast<int>(d.dims.size()))) fail("a codec that does not apply");
    u128 numel = 1, extent = 1;  // extent: dims of 0 read as 1 (what LibTorch's strides multiply)
    for (int64_t x : d.dims) {
      if (x < 0) fail("negative dimension");
      numel *= static_cast<u128>(x);
      extent *= static_cast<u128>(x > 0 ? x : 1);
      if (extent > max_bytes) fail("the product of the dims (0 read as 1) exceeds the maximum message size");
    }
    const u128 bytes = numel * static_cast<u128>(dtype_size(dt));
    total += bytes;
    if (total > max_bytes) fail("decoded size above the maximum message size");
    if (d.codec != Codec::Zstd) {
      // fixed-size codecs: raw = bytes; fp16 and bf16 2 per element; int8 1 per element
      const u128 expect = d.codec == Codec::Raw ? bytes
                          : (d.codec == Codec::Fp16 || d.codec == Codec::Bf16) ? 2 * numel
                                                                               : numel;
      if (d.nbytes != expect) fail("frame length differs from the codec's encoded size");
    } else if (d.nbytes > max_bytes) {
      fail("zstd frame length above the maximum");
    }
  }
  return 0;
}
