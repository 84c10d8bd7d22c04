// core/codec.cpp -- the wire codecs' table (see tessera/core/codec.h).
#include "tessera/core/codec.h"

#include "tessera/core/dtype.h"
#include "tessera/core/error.h"

namespace tessera {

const char* codec_name(Codec c) {
  switch (c) {
    case Codec::Raw: return "raw";
    case Codec::Fp16: return "fp16";
    case Codec::Bf16: return "bf16";
    case Codec::Int8: return "int8";
    case Codec::Int8Channel: return "int8_channel";
    case Codec::Zstd: return "zstd";
  }
  return "?";
}

std::vector<std::string> codec_names() {
  std::vector<std::string> out;
  for (uint8_t c = 0; c <= kMaxCodec; ++c) out.emplace_back(codec_name(static_cast<Codec>(c)));
  return out;
}

Codec parse_codec(const std::string& name) {
  if (name.empty()) return Codec::Raw;
  for (uint8_t c = 0; c <= kMaxCodec; ++c)
    if (name == codec_name(static_cast<Codec>(c))) return static_cast<Codec>(c);
  TESSERA_THROW(InvalidArgument, "codec '{}' is unknown (expected one of {})", name, fmt::join(codec_names(), ", "));
}

bool codec_lossless(Codec c) { return c == Codec::Raw || c == Codec::Zstd; }

bool codec_applies(Codec c, const std::string& dtype, int rank) {
  switch (c) {
    case Codec::Raw:
    case Codec::Zstd: return true;
    case Codec::Fp16:
    case Codec::Bf16:
    case Codec::Int8: return dtype == "float32";
    case Codec::Int8Channel: return dtype == "float32" && rank >= 2;
  }
  return false;
}

uint64_t codec_frame_bytes(Codec c, const std::string& dtype, uint64_t numel) {
  switch (c) {
    case Codec::Fp16:
    case Codec::Bf16: return 2 * numel;
    case Codec::Int8:
    case Codec::Int8Channel: return numel;
    default: return numel * static_cast<uint64_t>(dtype_size(dtype));
  }
}

}  // namespace tessera
