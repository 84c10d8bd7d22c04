// transport/wire.cpp -- encoding and checked decoding of wire protocol v3 (torch-free).
#include "tessera/transport/wire.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include "tessera/core/error.h"
#include "tessera/core/dtype.h"

namespace tessera::transport {

namespace {
template <class T>
void put(std::string& s, size_t off, T v) {
  std::memcpy(&s[off], &v, sizeof(T));
}
template <class T>
T get(const uint8_t* p, size_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof(T));
  return v;
}
}  // namespace

const char* msg_type_name(MsgType t) {
  switch (t) {
    case MsgType::Request: return "Request";
    case MsgType::Reply: return "Reply";
    case MsgType::Error: return "Error";
    case MsgType::Ping: return "Ping";
    case MsgType::Pong: return "Pong";
    case MsgType::Echo: return "Echo";
    case MsgType::Forward: return "Forward";
    case MsgType::Result: return "Result";
    case MsgType::Ack: return "Ack";
    case MsgType::Busy: return "Busy";
    case MsgType::Train: return "Train";
    case MsgType::TrainReply: return "TrainReply";
  }
  return "?";
}

uint8_t dtype_code(const std::string& dtype) {
  const DtypeInfo* d = find_dtype(dtype);
  TESSERA_CHECK(d, InvalidArgument, "dtype '{}' cannot be sent on the wire", dtype);
  return d->wire_code;
}

const std::string& dtype_from_code(uint8_t code) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n(256);
    for (const auto& d : dtypes()) n[d.wire_code] = d.name;
    return n;
  }();
  TESSERA_CHECK(!names[code].empty(), InvalidArgument, "unknown dtype code {} on the wire", code);
  return names[code];
}

// Layout (offsets): 0 magic u32, 4 version u16, 6 type u16, 8 request_id u64,
// 16 model_hash[32], 48 atom_count u32, 52 tensor_count u32, 56 budget_us i64,
// 64 server_ms f64, 72 queue_ms f64, 80 flags u32, 84 reply_codec u32, 88..95 zero.
std::string encode_header(const Header& h) {
  std::string s(kHeaderBytes, '\0');
  put(s, 0, h.magic);
  put(s, 4, h.version);
  put(s, 6, static_cast<uint16_t>(h.type));
  put(s, 8, h.request_id);
  std::memcpy(&s[16], h.model_hash.data(), 32);
  put(s, 48, h.atom_count);
  put(s, 52, h.tensor_count);
  put(s, 56, h.budget_us);
  put(s, 64, h.server_ms);
  put(s, 72, h.queue_ms);
  put(s, 80, h.flags);
  put(s, 84, h.reply_codec);
  return s;
}

Header decode_header(const void* data, size_t size) {
  TESSERA_CHECK(size == kHeaderBytes, InvalidArgument, "header frame has {} bytes, expected {}", size, kHeaderBytes);
  const auto* p = static_cast<const uint8_t*>(data);
  Header h;
  h.magic = get<uint32_t>(p, 0);
  TESSERA_CHECK(h.magic == kMagic, InvalidArgument, "bad magic 0x{:08x} (expected 0x{:08x}): not a tessera message",
                h.magic, kMagic);
  h.version = get<uint16_t>(p, 4);
  TESSERA_CHECK(h.version == kVersion, InvalidArgument,
                "the peer speaks wire protocol v{}, this side speaks v{} ({}): upgrade the {}", h.version, kVersion,
                h.version < kVersion ? "the peer is an older tessera" : "the peer is a newer tessera",
                h.version < kVersion ? "peer" : "this side");
  uint16_t type = get<uint16_t>(p, 6);
  TESSERA_CHECK(type >= 1 && type <= kMaxMsgType, InvalidArgument, "unknown message type {}", type);
  h.type = static_cast<MsgType>(type);
  h.request_id = get<uint64_t>(p, 8);
  std::memcpy(h.model_hash.data(), p + 16, 32);
  h.atom_count = get<uint32_t>(p, 48);
  h.tensor_count = get<uint32_t>(p, 52);
  h.budget_us = get<int64_t>(p, 56);
  h.server_ms = get<double>(p, 64);
  h.queue_ms = get<double>(p, 72);
  h.flags = get<uint32_t>(p, 80);
  h.reply_codec = get<uint32_t>(p, 84);
  TESSERA_CHECK(h.reply_codec <= kMaxCodec, InvalidArgument, "unknown reply codec {} (codes 0 to {})", h.reply_codec,
                kMaxCodec);
  TESSERA_CHECK(h.tensor_count <= kMaxTensors, InvalidArgument, "tensor count {} exceeds the limit {}", h.tensor_count,
                kMaxTensors);
  TESSERA_CHECK(h.atom_count <= kMaxAtoms, InvalidArgument, "atom count {} exceeds the limit {}", h.atom_count,
                kMaxAtoms);
  return h;
}

std::string encode_descs(const std::vector<TensorDesc>& ds) {
  std::string s;
  for (const auto& d : ds) {
    size_t off = s.size();
    s.resize(off + 8 + 8 * d.dims.size() + 8, '\0');
    s[off] = static_cast<char>(d.dtype);
    s[off + 1] = static_cast<char>(d.dims.size());
    s[off + 2] = static_cast<char>(d.codec);
    put(s, off + 4, static_cast<uint32_t>(d.params.size()));
    for (size_t i = 0; i < d.dims.size(); ++i) put(s, off + 8 + 8 * i, d.dims[i]);
    put(s, off + 8 + 8 * d.dims.size(), d.nbytes);
    s += d.params;
  }
  return s;
}

namespace {
// The codec's parameters against the tensor they describe (see TensorDesc).
void check_codec_params(const TensorDesc& d, uint32_t t) {
  const size_t P = d.params.size();
  const auto* p = reinterpret_cast<const uint8_t*>(d.params.data());
  const char* name = codec_name(d.codec);
  switch (d.codec) {
    case Codec::Raw:
    case Codec::Fp16:
    case Codec::Bf16:
    case Codec::Zstd:
      TESSERA_CHECK(P == 0, InvalidArgument, "tensor {} ({}) carries {} parameter bytes, the codec takes none", t,
                    name, P);
      return;
    case Codec::Int8: {
      TESSERA_CHECK(P == 16, InvalidArgument, "tensor {} (int8) has {} parameter bytes, expected 16 (scale, zero point)",
                    t, P);
      const double scale = get<double>(p, 0);
      const int64_t zp = get<int64_t>(p, 8);
      TESSERA_CHECK(std::isfinite(scale) && scale > 0, InvalidArgument, "tensor {} (int8): scale {} must be > 0", t,
                    scale);
      TESSERA_CHECK(zp >= 0 && zp <= 255, InvalidArgument, "tensor {} (int8): zero point {} not in [0, 255]", t, zp);
      return;
    }
    case Codec::Int8Channel: {
      TESSERA_CHECK(P >= 8, InvalidArgument, "tensor {} (int8_channel) has {} parameter bytes, at least 8 needed", t,
                    P);
      const uint32_t axis = get<uint32_t>(p, 0), C = get<uint32_t>(p, 4);
      TESSERA_CHECK(axis == 1 && d.dims.size() >= 2, InvalidArgument,
                    "tensor {} (int8_channel): axis {} of a rank-{} tensor (axis 1 of rank >= 2 only)", t, axis,
                    d.dims.size());
      TESSERA_CHECK(static_cast<int64_t>(C) == d.dims[1], InvalidArgument,
                    "tensor {} (int8_channel): {} channels declared, dimension 1 is {}", t, C, d.dims[1]);
      TESSERA_CHECK(P == 8 + 8ull * C, InvalidArgument,
                    "tensor {} (int8_channel): {} parameter bytes, {} channels need {}", t, P, C, 8 + 8ull * C);
      for (uint32_t c = 0; c < C; ++c) {
        const float scale = get<float>(p, 8 + 4ull * c);
        const int32_t zp = get<int32_t>(p, 8 + 4ull * C + 4ull * c);
        TESSERA_CHECK(std::isfinite(scale) && scale > 0 && zp >= 0 && zp <= 255, InvalidArgument,
                      "tensor {} (int8_channel): channel {} has scale {} and zero point {}", t, c, scale, zp);
      }
      return;
    }
  }
}
}  // namespace

std::vector<TensorDesc> decode_descs(const void* data, size_t size, uint32_t count, uint64_t max_bytes) {
  const auto* p = static_cast<const uint8_t*>(data);
  std::vector<TensorDesc> out;
  out.reserve(std::min<size_t>(count, size / 16));  // each descriptor takes at least 16 bytes
  size_t off = 0;
  uint64_t total = 0;
  for (uint32_t t = 0; t < count; ++t) {
    TESSERA_CHECK(off + 8 <= size, InvalidArgument, "descriptor frame truncated at tensor {} of {}", t, count);
    TensorDesc d;
    d.dtype = p[off];
    const int rank = p[off + 1];
    TESSERA_CHECK(rank <= kMaxRank, InvalidArgument, "tensor {} has rank {} (at most {})", t, rank, kMaxRank);
    const std::string& dt = dtype_from_code(d.dtype);
    const uint8_t codec = p[off + 2];
    TESSERA_CHECK(codec <= kMaxCodec, InvalidArgument, "tensor {} has unknown codec {} (codes 0 to {})", t, codec,
                  kMaxCodec);
    d.codec = static_cast<Codec>(codec);
    TESSERA_CHECK(p[off + 3] == 0, InvalidArgument, "tensor {}: descriptor byte 3 must be zero", t);
    const uint32_t nparams = get<uint32_t>(p, off + 4);
    TESSERA_CHECK(nparams <= kMaxCodecParamBytes, InvalidArgument, "tensor {} declares {} codec parameter bytes", t,
                  nparams);
    TESSERA_CHECK(off + 8 + 8 * static_cast<size_t>(rank) + 8 + nparams <= size, InvalidArgument,
                  "descriptor frame truncated in tensor {} (rank {})", t, rank);
    // extent: the product of the dims with 0 read as 1, bounded too: an empty tensor of dims
    // [0, 2^40, 2^40] would overflow LibTorch's strides
    uint64_t numel = 1, extent = 1;
    for (int i = 0; i < rank; ++i) {
      int64_t dim = get<int64_t>(p, off + 8 + 8 * i);
      TESSERA_CHECK(dim >= 0 && dim <= (int64_t{1} << 40), InvalidArgument, "tensor {} has dimension {} = {}", t, i,
                    dim);
      TESSERA_CHECK(dim == 0 || extent <= max_bytes / static_cast<uint64_t>(dim), InvalidArgument,
                    "tensor {} is larger than the maximum message size {} bytes", t, max_bytes);
      numel *= static_cast<uint64_t>(dim);
      extent *= static_cast<uint64_t>(std::max<int64_t>(dim, 1));
      d.dims.push_back(dim);
    }
    d.nbytes = get<uint64_t>(p, off + 8 + 8 * rank);
    d.params.assign(reinterpret_cast<const char*>(p + off + 16 + 8 * rank), nparams);
    TESSERA_CHECK(codec_applies(d.codec, dt, rank), InvalidArgument, "tensor {}: codec {} does not apply to {} of rank {}",
                  t, codec_name(d.codec), dt, rank);
    check_codec_params(d, t);
    // saturated: with a maximum above 2^61 the product could wrap past the total's check
    const uint64_t esize = static_cast<uint64_t>(dtype_size(dt));
    const uint64_t decoded = numel > max_bytes / esize ? UINT64_MAX : numel * esize;
    if (d.codec == Codec::Zstd) {
      TESSERA_CHECK(d.nbytes <= max_bytes, InvalidArgument, "tensor {} (zstd) declares {} bytes, over the maximum {}",
                    t, d.nbytes, max_bytes);
    } else {
      const uint64_t expect = codec_frame_bytes(d.codec, dt, numel);
      TESSERA_CHECK(d.nbytes == expect, InvalidArgument, "tensor {} declares {} bytes but {} [{}]{} needs {}", t,
                    d.nbytes, dt, fmt::join(d.dims, ", "),
                    d.codec == Codec::Raw ? std::string() : fmt::format(" as {}", codec_name(d.codec)), expect);
    }
    TESSERA_CHECK(decoded <= max_bytes - total, InvalidArgument, "message exceeds the maximum size of {} bytes",
                  max_bytes);
    total += decoded;
    off += 8 + 8 * rank + 8 + nparams;
    out.push_back(std::move(d));
  }
  TESSERA_CHECK(off == size, InvalidArgument, "descriptor frame has {} bytes, {} tensors need {}", size, count, off);
  return out;
}

std::string encode_atoms(const std::vector<int>& atoms) {
  std::string s(atoms.size() * 4, '\0');
  for (size_t i = 0; i < atoms.size(); ++i) put(s, 4 * i, static_cast<int32_t>(atoms[i]));
  return s;
}

std::vector<int> decode_atoms(const void* data, size_t size, uint32_t count) {
  TESSERA_CHECK(size == 4ull * count, InvalidArgument, "atom frame has {} bytes, header declares {} atoms", size,
                count);
  const auto* p = static_cast<const uint8_t*>(data);
  std::vector<int> out(count);
  for (uint32_t i = 0; i < count; ++i) out[i] = get<int32_t>(p, 4 * i);
  return out;
}

// ---- routes (Forward / Result bodies) ------------------------------------------
// Layout: u32 next, u32 hop count, u8 sleep, 3 zero bytes, string reply_to; per hop:
// string endpoint, u32 atom count, i32 atoms[], f64 slowdown, next_mbps, next_rtt_ms,
// back_mbps, back_rtt_ms, u32 tile count, per tile: string endpoint, i32 in_lo, in_hi, crop,
// out_rows, f64 slowdown; u32 value count, i32 value ids[]; u32 trace count, per trace:
// f64 queue_ms, compute_ms, cpu_ms, slept_ms, u64 bytes_forward, bytes_result, u32 tile
// count, per tile: f64 server_ms, u64 bytes_out, bytes_in, u32 fallback; string error.
// A string is u32 length + bytes.
namespace {
struct Writer {
  std::string s;
  template <class T>
  void put(T v) {
    const size_t off = s.size();
    s.resize(off + sizeof(T));
    std::memcpy(&s[off], &v, sizeof(T));
  }
  void str(const std::string& x) {
    put(static_cast<uint32_t>(x.size()));
    s += x;
  }
};

struct Reader {
  const uint8_t* p;
  size_t size, off = 0;
  template <class T>
  T get(const char* what) {
    TESSERA_CHECK(off + sizeof(T) <= size, InvalidArgument, "route truncated at byte {} reading {} ({} bytes)", off,
                  what, size);
    T v;
    std::memcpy(&v, p + off, sizeof(T));
    off += sizeof(T);
    return v;
  }
  uint32_t count(const char* what, uint64_t limit) {
    const uint32_t n = get<uint32_t>(what);
    TESSERA_CHECK(n <= limit, InvalidArgument, "route: {} = {} exceeds the limit {}", what, n, limit);
    TESSERA_CHECK(n <= (size - off), InvalidArgument, "route: {} = {} but only {} bytes follow", what, n, size - off);
    return n;
  }
  std::string str(const char* what, size_t limit) {
    const uint32_t n = count(what, limit);
    std::string x(reinterpret_cast<const char*>(p + off), n);
    off += n;
    return x;
  }
  double figure(const char* what, const std::string& where) {
    const double v = get<double>(what);
    TESSERA_CHECK(std::isfinite(v) && v >= 0, InvalidArgument, "route: {} of {} = {} must be finite and >= 0", what,
                  where, v);
    return v;
  }
};

bool printable(const std::string& x) {
  for (unsigned char c : x)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}
}  // namespace

std::string encode_route(const Route& r) {
  Writer w;
  w.put(r.next);
  w.put(static_cast<uint32_t>(r.hops.size()));
  w.put(static_cast<uint8_t>(r.sleep ? 1 : 0));
  w.put(uint8_t{0});
  w.put(uint16_t{0});
  w.str(r.reply_to);
  for (const auto& h : r.hops) {
    w.str(h.endpoint);
    w.put(static_cast<uint32_t>(h.atoms.size()));
    for (int a : h.atoms) w.put(static_cast<int32_t>(a));
    for (double x : {h.slowdown, h.next_mbps, h.next_rtt_ms, h.back_mbps, h.back_rtt_ms}) w.put(x);
    w.put(static_cast<uint32_t>(h.tiles.size()));
    for (const auto& t : h.tiles) {
      w.str(t.endpoint);
      for (int32_t x : {t.in_lo, t.in_hi, t.crop, t.out_rows}) w.put(x);
      w.put(t.slowdown);
    }
  }
  w.put(static_cast<uint32_t>(r.values.size()));
  for (int v : r.values) w.put(static_cast<int32_t>(v));
  w.put(static_cast<uint32_t>(r.trace.size()));
  for (const auto& t : r.trace) {
    for (double x : {t.queue_ms, t.compute_ms, t.cpu_ms, t.slept_ms}) w.put(x);
    w.put(t.bytes_forward);
    w.put(t.bytes_result);
    w.put(static_cast<uint32_t>(t.tiles.size()));
    for (const auto& x : t.tiles) {
      w.put(x.server_ms);
      w.put(x.bytes_out);
      w.put(x.bytes_in);
      w.put(x.fallback);
    }
  }
  w.str(r.error);
  return w.s;
}

Route decode_route(const void* data, size_t size, uint32_t tensor_count) {
  Reader rd{static_cast<const uint8_t*>(data), size};
  Route r;
  r.next = rd.get<uint32_t>("next hop");
  const uint32_t hops = rd.get<uint32_t>("hop count");
  TESSERA_CHECK(hops >= 1 && hops <= kMaxHops, InvalidArgument, "route has {} hops (1 to {})", hops, kMaxHops);
  TESSERA_CHECK(r.next <= hops, InvalidArgument, "route: next hop {} is past its {} hops", r.next, hops);
  const uint8_t sleep = rd.get<uint8_t>("emulation");
  TESSERA_CHECK(sleep <= 1, InvalidArgument, "route: emulation flag {} (0 or 1)", sleep);
  r.sleep = sleep == 1;
  TESSERA_CHECK(rd.get<uint8_t>("padding") == 0 && rd.get<uint16_t>("padding") == 0, InvalidArgument,
                "route: padding bytes 9..11 must be zero");
  r.reply_to = rd.str("reply endpoint length", kMaxEndpointBytes);
  TESSERA_CHECK(!r.reply_to.empty() && printable(r.reply_to), InvalidArgument,
                "route: the reply endpoint is empty or not printable ASCII");
  for (uint32_t i = 0; i < hops; ++i) {
    Hop h;
    h.endpoint = rd.str("hop endpoint length", kMaxEndpointBytes);
    TESSERA_CHECK(!h.endpoint.empty() && printable(h.endpoint), InvalidArgument,
                  "route: hop {}'s endpoint is empty or not printable ASCII", i);
    const uint32_t n = rd.count("hop atom count", kMaxAtoms);
    TESSERA_CHECK(n >= 1, InvalidArgument, "route: hop {} ({}) has no atoms", i, h.endpoint);
    for (uint32_t k = 0; k < n; ++k) {
      const int32_t a = rd.get<int32_t>("atom id");
      TESSERA_CHECK(a >= 0, InvalidArgument, "route: hop {} names atom {}", i, a);
      h.atoms.push_back(a);
    }
    const std::string where = fmt::format("hop {}", i);
    h.slowdown = rd.figure("slowdown", where);
    h.next_mbps = rd.figure("next link Mbit/s", where);
    h.next_rtt_ms = rd.figure("next link rtt", where);
    h.back_mbps = rd.figure("return link Mbit/s", where);
    h.back_rtt_ms = rd.figure("return link rtt", where);
    TESSERA_CHECK(h.slowdown >= 1e-6 && h.slowdown <= 1e6, InvalidArgument, "route: hop {} slowdown {} not in [1e-6, 1e6]", i,
                  h.slowdown);
    const uint32_t nt = rd.count("hop tile count", kMaxTiles);
    TESSERA_CHECK(nt != 1, InvalidArgument, "route: hop {} is split into 1 tile (0 or at least 2)", i);
    for (uint32_t k = 0; k < nt; ++k) {
      Tile t;
      t.endpoint = rd.str("tile endpoint length", kMaxEndpointBytes);
      TESSERA_CHECK(!t.endpoint.empty() && printable(t.endpoint), InvalidArgument,
                    "route: hop {} tile {}'s endpoint is empty or not printable ASCII", i, k);
      t.in_lo = rd.get<int32_t>("tile rows");
      t.in_hi = rd.get<int32_t>("tile rows");
      t.crop = rd.get<int32_t>("tile crop");
      t.out_rows = rd.get<int32_t>("tile rows out");
      TESSERA_CHECK(0 <= t.in_lo && t.in_lo < t.in_hi && t.crop >= 0 && t.out_rows >= 1, InvalidArgument,
                    "route: hop {} tile {} has rows [{}, {}), crop {}, {} rows out", i, k, t.in_lo, t.in_hi, t.crop,
                    t.out_rows);
      t.slowdown = rd.figure("tile slowdown", where);
      TESSERA_CHECK(t.slowdown >= 1e-6 && t.slowdown <= 1e6, InvalidArgument, "route: hop {} tile {} slowdown {}", i,
                    k, t.slowdown);
      h.tiles.push_back(std::move(t));
    }
    TESSERA_CHECK(h.tiles.empty() || h.tiles[0].endpoint == h.endpoint, InvalidArgument,
                  "route: hop {}'s first tile runs at {}, not at the hop's own server {}", i, h.tiles[0].endpoint,
                  h.endpoint);
    r.hops.push_back(std::move(h));
  }
  const uint32_t nv = rd.count("value count", kMaxTensors);
  TESSERA_CHECK(nv == tensor_count, InvalidArgument, "route names {} values, the message carries {} tensors", nv,
                tensor_count);
  for (uint32_t k = 0; k < nv; ++k) {
    const int32_t v = rd.get<int32_t>("value id");
    TESSERA_CHECK(v >= 0, InvalidArgument, "route: value id {} at position {}", v, k);
    r.values.push_back(v);
  }
  const uint32_t nt = rd.get<uint32_t>("trace count");
  TESSERA_CHECK(nt <= hops, InvalidArgument, "route: {} hop traces for {} hops", nt, hops);
  for (uint32_t k = 0; k < nt; ++k) {
    HopTrace t;
    const std::string where = fmt::format("hop {}'s trace", k);
    t.queue_ms = rd.figure("queue ms", where);
    t.compute_ms = rd.figure("compute ms", where);
    t.cpu_ms = rd.figure("cpu ms", where);
    t.slept_ms = rd.figure("slept ms", where);
    t.bytes_forward = rd.get<uint64_t>("bytes forwarded");
    t.bytes_result = rd.get<uint64_t>("bytes returned");
    const uint32_t ntt = rd.count("trace tile count", kMaxTiles);
    for (uint32_t j = 0; j < ntt; ++j) {
      HopTrace::TileTrace x;
      x.server_ms = rd.figure("tile server ms", where);
      x.bytes_out = rd.get<uint64_t>("tile bytes out");
      x.bytes_in = rd.get<uint64_t>("tile bytes in");
      x.fallback = rd.get<uint32_t>("tile fallback");
      TESSERA_CHECK(x.fallback <= 1, InvalidArgument, "route: {} tile {} fallback flag {}", where, j, x.fallback);
      t.tiles.push_back(x);
    }
    r.trace.push_back(t);
  }
  r.error = rd.str("error length", 1 << 16);
  TESSERA_CHECK(rd.off == size, InvalidArgument, "route has {} bytes after its end", size - rd.off);
  return r;
}

std::array<uint8_t, 32> hash_from_hex(const std::string& hex) {
  TESSERA_CHECK(hex.size() == 64, InvalidArgument, "model hash '{}' must have 64 hex digits", hex);
  std::array<uint8_t, 32> out{};
  auto nib = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    TESSERA_THROW(InvalidArgument, "model hash '{}' is not hexadecimal", hex);
  };
  for (int i = 0; i < 32; ++i) out[i] = static_cast<uint8_t>(nib(hex[2 * i]) * 16 + nib(hex[2 * i + 1]));
  return out;
}

std::string hash_to_hex(const std::array<uint8_t, 32>& raw) {
  static const char* d = "0123456789abcdef";
  std::string s(64, '0');
  for (int i = 0; i < 32; ++i) {
    s[2 * i] = d[raw[i] >> 4];
    s[2 * i + 1] = d[raw[i] & 15];
  }
  return s;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace tessera::transport
