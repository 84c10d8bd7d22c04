// tessera/core/codec.h -- the wire codecs' table, torch-free: names, wire codes, which
// tensors each applies to and how many bytes it puts on the wire. The transport layer
// encodes and decodes (transport/message.h, LibTorch); the plan layer prices them
// (plan/variants.h). docs/wire-protocol.md documents the frames.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tessera {

// How a tensor's frame encodes its elements (wire protocol v3). Lossy codecs apply to
// float32 tensors only (others are sent raw); zstd to any dtype. Error bounds, per element:
//   fp16   |x - x'| <= 2^-11 |x| (normal range; values beyond 65504 saturate to inf)
//   bf16   |x - x'| <= 2^-8 |x| (round to nearest even)
//   int8   affine, per tensor: x' = scale * (q - zero_point), q in [0, 255],
//          scale = (max - min) / 255: |x - x'| <= scale / 2 (+ float rounding)
//   int8_channel  the same per channel (dimension 1 of a tensor of rank >= 2)
//   zstd   lossless: bit-exact
enum class Codec : uint8_t { Raw = 0, Fp16 = 1, Bf16 = 2, Int8 = 3, Int8Channel = 4, Zstd = 5 };
inline constexpr uint8_t kMaxCodec = 5;  // the largest wire code; a frame's codec byte above it is refused
const char* codec_name(Codec c);  // "raw", "fp16", "bf16", "int8", "int8_channel", "zstd"
// A name (as codec_name, "" = raw) -> the codec; anything else -> InvalidArgument listing them.
Codec parse_codec(const std::string& name);
// Names of every codec, in code order.
std::vector<std::string> codec_names();
// Whether decoding gives back the exact bits: Raw and Zstd (fp16, bf16, int8 are lossy).
bool codec_lossless(Codec c);
// Whether `c` encodes a tensor of this dtype and rank (otherwise it travels raw).
bool codec_applies(Codec c, const std::string& dtype, int rank);
// Frame bytes of a tensor of `numel` elements of `dtype` under a fixed-size codec (all but
// zstd, whose size depends on the data: returns the raw size, an upper estimate).
uint64_t codec_frame_bytes(Codec c, const std::string& dtype, uint64_t numel);

}  // namespace tessera
