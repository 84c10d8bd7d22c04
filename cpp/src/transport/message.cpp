// transport/message.cpp -- tensors <-> ZeroMQ frames without copies (see tessera/transport/message.h).
#include "tessera/transport/message.h"

#include <ATen/ATen.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "tessera/graph/tensor.h"
#include "tessera/core/error.h"

namespace tessera::transport {

namespace {
// What a zero-copy frame keeps alive. libzmq calls release_tensor on its I/O thread once the
// frame is sent; the tensor reaches that thread through libzmq's own queues, which a thread
// checker cannot see (libzmq is not instrumented), so the hand-over is also published here,
// release on the sending thread, acquire on the releasing one (free on x86).
struct FrameOwner {
  at::Tensor tensor;
  std::atomic<bool> sent{false};
};
void release_tensor(void*, void* hint) {
  auto* owner = static_cast<FrameOwner*>(hint);
  (void)owner->sent.load(std::memory_order_acquire);
  delete owner;
}
}  // namespace

TensorDesc describe(const at::Tensor& t) {
  TensorDesc d;
  const DtypeInfo* dt = find_dtype(t.scalar_type());
  TESSERA_CHECK(dt, InvalidArgument, "tensors of dtype {} cannot be sent", c10::toString(t.scalar_type()));
  d.dtype = dt->wire_code;
  d.dims.assign(t.sizes().begin(), t.sizes().end());
  d.nbytes = t.nbytes();
  return d;
}

bool has_wire_dtype(const at::Tensor& t) { return has_dtype_name(t.scalar_type()); }

zmq::message_t tensor_frame(const at::Tensor& t) {
  if (t.nbytes() == 0) return zmq::message_t();
  auto* keep = new FrameOwner{t};
  void* data = keep->tensor.data_ptr();
  const size_t n = keep->tensor.nbytes();
  keep->sent.store(true, std::memory_order_release);  // the last touch of `keep` on this thread
  return zmq::message_t(data, n, &release_tensor, keep);
}

at::Tensor frame_tensor(zmq::message_t&& frame, const TensorDesc& d) {
  TESSERA_CHECK(frame.size() == d.nbytes, InvalidArgument, "tensor frame has {} bytes, its descriptor says {}",
                frame.size(), d.nbytes);
  auto opts = at::TensorOptions().dtype(scalar_type_of(dtype_from_code(d.dtype)));
  if (d.nbytes == 0) return at::empty(d.dims, opts);
  // libzmq keeps small frames inside its shared receive buffer at whatever offset
  // they landed: wrapping a misaligned address is undefined behaviour (and faults on
  // strict-alignment CPUs), so such a frame is copied once; aligned frames are wrapped.
  if (reinterpret_cast<uintptr_t>(frame.data()) % kTensorAlignment != 0) {
    auto t = at::empty(d.dims, opts);
    std::memcpy(t.data_ptr(), frame.data(), d.nbytes);
    return t;
  }
  auto* owned = new zmq::message_t(std::move(frame));
  return at::from_blob(owned->data(), d.dims, [owned](void*) { delete owned; }, opts);
}

namespace {
template <class T>
void put_param(std::string& s, T v) {
  const size_t off = s.size();
  s.resize(off + sizeof(T));
  std::memcpy(&s[off], &v, sizeof(T));
}
template <class T>
T get_param(const std::string& s, size_t off) {
  T v;
  std::memcpy(&v, s.data() + off, sizeof(T));
  return v;
}
// Affine int8 parameters of a range: the range always holds 0 (a zero point in [0, 255]).
std::pair<double, int64_t> affine(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  double scale = static_cast<double>(static_cast<float>((hi - lo) / 255.0));
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.0;
  // clamped before the conversion: an infinite bound (scale 1) gives an infinite zero point
  const double z = std::nearbyint(-lo / scale);
  const int64_t zp = z > 0 ? (z < 255 ? static_cast<int64_t>(z) : 255) : 0;
  return {scale, zp};
}
// Affine int8 over `outer` runs of `inner` contiguous floats per channel, channels
// interleaved as in an NC... tensor (per tensor: one channel). One pass each way, loops the
// compiler vectorises (LibTorch's quantize_per_tensor took 1.5 ms per MB here, this ~0.2).
void quantize(const float* x, uint8_t* q, int64_t outer, int64_t C, int64_t inner, const double* scale,
              const int64_t* zp) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float inv = static_cast<float>(1.0 / scale[c]), z = static_cast<float>(zp[c]);
      const float* xs = x + (o * C + c) * inner;
      uint8_t* qs = q + (o * C + c) * inner;
      for (int64_t i = 0; i < inner; ++i) {
        float v = xs[i] * inv + z;
        v = v > 0.f ? (v < 255.f ? v : 255.f) : 0.f;  // NaN -> 0 (converting NaN is undefined)
        qs[i] = static_cast<uint8_t>(v + 0.5f);
      }
    }
}
// Per channel min and max over the same layout (one pass; NaN-free data assumed, as LibTorch's).
void channel_range(const float* x, int64_t outer, int64_t C, int64_t inner, float* lo, float* hi) {
  for (int64_t c = 0; c < C; ++c) lo[c] = std::numeric_limits<float>::infinity(), hi[c] = -lo[c];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float* xs = x + (o * C + c) * inner;
      float l = lo[c], h = hi[c];
      for (int64_t i = 0; i < inner; ++i) {
        l = xs[i] < l ? xs[i] : l;
        h = xs[i] > h ? xs[i] : h;
      }
      lo[c] = l, hi[c] = h;
    }
}
void dequantize(const uint8_t* q, float* x, int64_t outer, int64_t C, int64_t inner, const double* scale,
                const int64_t* zp) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < C; ++c) {
      const float s = static_cast<float>(scale[c]), z = static_cast<float>(zp[c]);
      const uint8_t* qs = q + (o * C + c) * inner;
      float* xs = x + (o * C + c) * inner;
      for (int64_t i = 0; i < inner; ++i) xs[i] = (static_cast<float>(qs[i]) - z) * s;
    }
}
}  // namespace

EncodedTensor encode_tensor(const at::Tensor& in, Codec c) {
  TESSERA_CHECK(in.defined(), InvalidArgument, "cannot send an undefined tensor");
  at::Tensor t = in.is_contiguous() ? in : in.contiguous();
  EncodedTensor e{t, describe(t)};
  const std::string& dt = dtype_from_code(e.desc.dtype);
  if (c == Codec::Raw || !codec_applies(c, dt, static_cast<int>(t.dim())) || t.numel() == 0) return e;
  e.desc.codec = c;
  switch (c) {
    case Codec::Fp16: e.frame = t.to(at::kHalf); break;
    case Codec::Bf16: e.frame = t.to(at::kBFloat16); break;
    case Codec::Int8: {
      float lo, hi;
      channel_range(t.data_ptr<float>(), 1, 1, t.numel(), &lo, &hi);
      auto [scale, zp] = affine(lo, hi);
      e.frame = at::empty({t.numel()}, at::kByte);
      quantize(t.data_ptr<float>(), e.frame.data_ptr<uint8_t>(), 1, 1, t.numel(), &scale, &zp);
      put_param(e.desc.params, scale);
      put_param(e.desc.params, zp);
      break;
    }
    case Codec::Int8Channel: {
      const int64_t C = t.size(1);
      const int64_t outer = t.size(0), inner = C && outer ? t.numel() / (outer * C) : 0;
      std::vector<float> plo(C), phi(C);
      channel_range(t.data_ptr<float>(), outer, C, inner, plo.data(), phi.data());
      std::vector<double> scales(C);
      std::vector<int64_t> zps(C);
      put_param(e.desc.params, uint32_t{1});
      put_param(e.desc.params, static_cast<uint32_t>(C));
      std::string zp_bytes;
      for (int64_t k = 0; k < C; ++k) {
        auto [scale, zp] = affine(plo[k], phi[k]);
        scales[k] = scale;
        zps[k] = zp;
        put_param(e.desc.params, static_cast<float>(scale));
        put_param(zp_bytes, static_cast<int32_t>(zp));
      }
      e.desc.params += zp_bytes;
      e.frame = at::empty({t.numel()}, at::kByte);
      if (inner > 0)
        quantize(t.data_ptr<float>(), e.frame.data_ptr<uint8_t>(), outer, C, inner, scales.data(), zps.data());
      break;
    }
    case Codec::Zstd: {
      const size_t n = t.nbytes();
      auto buf = at::empty({static_cast<int64_t>(ZSTD_compressBound(n))}, at::kByte);
      const size_t z = ZSTD_compress(buf.data_ptr(), buf.numel(), t.data_ptr(), n, 1);
      TESSERA_CHECK(!ZSTD_isError(z), Engine, "zstd could not compress a tensor of {} bytes: {}", n,
                    ZSTD_getErrorName(z));
      e.frame = buf.narrow(0, 0, static_cast<int64_t>(z));
      break;
    }
    case Codec::Raw: break;
  }
  e.desc.nbytes = e.frame.nbytes();
  return e;
}

at::Tensor decode_tensor(const void* data, size_t size, const TensorDesc& d, size_t index) {
  const std::string& dt = dtype_from_code(d.dtype);
  TESSERA_CHECK(d.codec == Codec::Zstd || size == d.nbytes, InvalidArgument,
                "tensor {} frame has {} bytes, its descriptor says {}", index, size, d.nbytes);
  auto opts = at::TensorOptions().dtype(scalar_type_of(dt));
  // The frame's bytes, copied once if libzmq left them misaligned (see frame_tensor).
  auto view = [&](at::ScalarType st, std::vector<int64_t> dims) {
    auto o = at::TensorOptions().dtype(st);
    if (reinterpret_cast<uintptr_t>(data) % kTensorAlignment == 0)
      return at::from_blob(const_cast<void*>(data), dims, o);
    auto t = at::empty(dims, o);
    if (size > 0) std::memcpy(t.data_ptr(), data, size);  // an empty tensor has no data pointer
    return t;
  };
  switch (d.codec) {
    case Codec::Raw: return view(scalar_type_of(dt), d.dims).clone();
    case Codec::Fp16: return view(at::kHalf, d.dims).to(at::kFloat);
    case Codec::Bf16: return view(at::kBFloat16, d.dims).to(at::kFloat);
    case Codec::Int8: {
      const double scale = get_param<double>(d.params, 0);
      const int64_t zp = get_param<int64_t>(d.params, 8);
      auto out = at::empty(d.dims, opts);
      dequantize(static_cast<const uint8_t*>(data), out.data_ptr<float>(), 1, 1, out.numel(), &scale, &zp);
      return out;
    }
    case Codec::Int8Channel: {
      const auto C = static_cast<int64_t>(get_param<uint32_t>(d.params, 4));
      std::vector<double> scales(C);
      std::vector<int64_t> zps(C);
      for (int64_t k = 0; k < C; ++k) {
        scales[k] = static_cast<double>(get_param<float>(d.params, 8 + 4 * k));
        zps[k] = static_cast<int64_t>(get_param<int32_t>(d.params, 8 + 4 * C + 4 * k));
      }
      auto out = at::empty(d.dims, opts);
      const int64_t outer = d.dims[0], inner = C && outer ? out.numel() / (outer * C) : 0;
      if (inner > 0)
        dequantize(static_cast<const uint8_t*>(data), out.data_ptr<float>(), outer, C, inner, scales.data(),
                   zps.data());
      return out;
    }
    case Codec::Zstd: {
      auto out = at::empty(d.dims, opts);
      const uint64_t want = out.nbytes();
      const unsigned long long declared = ZSTD_getFrameContentSize(data, size);
      TESSERA_CHECK(declared == want, InvalidArgument,
                    "tensor {} (zstd): corrupt frame: it decompresses to {} bytes, {} [{}] needs {}", index,
                    declared == ZSTD_CONTENTSIZE_ERROR ? std::string("an unknown number of")
                                                       : std::to_string(declared),
                    dt, fmt::join(d.dims, ", "), want);
      const size_t n = ZSTD_decompress(out.data_ptr(), want, data, size);
      TESSERA_CHECK(!ZSTD_isError(n) && n == want, InvalidArgument, "tensor {} (zstd): corrupt frame: {}", index,
                    ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
      return out;
    }
  }
  TESSERA_THROW(InvalidArgument, "tensor {} has unknown codec {}", index, static_cast<int>(d.codec));
}

at::Tensor codec_round_trip(const at::Tensor& t, Codec c) {
  EncodedTensor e = encode_tensor(t, c);
  if (e.desc.codec == Codec::Raw) return e.frame.clone();
  return decode_tensor(e.frame.data_ptr(), e.frame.nbytes(), e.desc);
}

bool send_message(zmq::socket_t& s, Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                  bool delimiter, bool dontwait, size_t* bytes_sent, const std::vector<Codec>& codecs) {
  TESSERA_CHECK(codecs.size() <= 1 || codecs.size() == tensors.size(), InvalidArgument,
                "{} codecs for {} tensors (none, one for all, or one per tensor)", codecs.size(), tensors.size());
  std::vector<at::Tensor> contig;
  contig.reserve(tensors.size());
  std::vector<TensorDesc> descs;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Codec c = codecs.empty() ? Codec::Raw : codecs.size() == 1 ? codecs[0] : codecs[i];
    EncodedTensor e = encode_tensor(tensors[i], c);
    contig.push_back(std::move(e.frame));
    descs.push_back(std::move(e.desc));
  }
  h.tensor_count = static_cast<uint32_t>(tensors.size());
  auto more = zmq::send_flags::sndmore | (dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none);
  auto last = dontwait ? zmq::send_flags::dontwait : zmq::send_flags::none;
  size_t total = 0;
  if (delimiter) {
    if (!s.send(zmq::message_t(), more)) return false;
  }
  std::string hb = encode_header(h);
  if (!s.send(zmq::buffer(hb), more) && !delimiter) return false;
  // Once the first frame is queued the rest of a multipart message goes out atomically.
  s.send(zmq::buffer(body), zmq::send_flags::sndmore);
  std::string db = encode_descs(descs);
  s.send(zmq::buffer(db), contig.empty() ? zmq::send_flags::none : zmq::send_flags::sndmore);
  total += hb.size() + body.size() + db.size();
  for (size_t i = 0; i < contig.size(); ++i) {
    total += contig[i].nbytes() + descs[i].params.size();
    s.send(tensor_frame(contig[i]), i + 1 < contig.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  (void)last;
  if (bytes_sent) *bytes_sent = total;
  return true;
}

Message decode_message(std::vector<zmq::message_t>& frames, size_t first, uint64_t max_bytes) {
  TESSERA_CHECK(frames.size() > first, InvalidArgument, "empty message");
  Message m;
  m.header = decode_header(frames[first].data(), frames[first].size());
  TESSERA_CHECK(frames.size() >= first + 3, InvalidArgument,
                "message has {} frames; at least 3 are needed (header, body, descriptors)", frames.size() - first);
  const size_t n = frames.size() - first - 3;
  TESSERA_CHECK(n == m.header.tensor_count, InvalidArgument,
                "header declares {} tensors but {} tensor frames arrived", m.header.tensor_count, n);
  m.body.assign(static_cast<const char*>(frames[first + 1].data()), frames[first + 1].size());
  auto descs = decode_descs(frames[first + 2].data(), frames[first + 2].size(), m.header.tensor_count, max_bytes);
  for (size_t i = 0; i < n; ++i) {
    auto& f = frames[first + 3 + i];
    TESSERA_CHECK(f.size() == descs[i].nbytes, InvalidArgument, "tensor {} frame has {} bytes, its descriptor says {}",
                  i, f.size(), descs[i].nbytes);
    if (descs[i].codec == Codec::Raw)
      m.tensors.push_back(frame_tensor(std::move(f), descs[i]));
    else
      m.tensors.push_back(decode_tensor(f.data(), f.size(), descs[i], i));
    // A bool is one byte, 0 or 1: any other byte is not a bool (reading it is undefined
    // behaviour in LibTorch's kernels, and a copy already changes it to 1).
    if (m.tensors.back().scalar_type() == at::kBool) {
      const auto* b = static_cast<const uint8_t*>(m.tensors.back().data_ptr());
      const int64_t n = m.tensors.back().numel();
      const int64_t bad = std::find_if(b, b + n, [](uint8_t x) { return x > 1; }) - b;
      TESSERA_CHECK(bad == n, InvalidArgument, "tensor {} (bool) holds byte {} at element {}: a bool is 0 or 1", i,
                    n > bad ? b[bad] : 0, bad);
    }
  }
  return m;
}

bool receive(zmq::socket_t& s, std::vector<zmq::message_t>& frames) {
  while (true) {
    frames.clear();
    try {
      if (zmq::recv_multipart(s, std::back_inserter(frames))) return true;
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: not a shutdown
      return false;
    }
  }
}

size_t message_bytes(const std::string& body, const std::vector<at::Tensor>& tensors) {
  size_t n = kHeaderBytes + body.size();
  for (const auto& t : tensors) n += t.nbytes() + 8 + 8 * static_cast<size_t>(t.dim()) + 8;
  return n;
}

}  // namespace tessera::transport
