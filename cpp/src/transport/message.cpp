// transport/message.cpp -- tensors <-> ZeroMQ frames without copies (see tessera/transport/message.h).
#include "tessera/transport/message.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "tessera/graph/tensor.h"
#include "tessera/core/error.h"

namespace tessera::transport {

namespace {
void release_tensor(void*, void* hint) { delete static_cast<at::Tensor*>(hint); }
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
  auto* keep = new at::Tensor(t);
  return zmq::message_t(keep->data_ptr(), keep->nbytes(), &release_tensor, keep);
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

bool send_message(zmq::socket_t& s, Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                  bool delimiter, bool dontwait, size_t* bytes_sent) {
  std::vector<at::Tensor> contig;
  contig.reserve(tensors.size());
  std::vector<TensorDesc> descs;
  for (const auto& t : tensors) {
    TESSERA_CHECK(t.defined(), InvalidArgument, "cannot send an undefined tensor");
    contig.push_back(t.is_contiguous() ? t : t.contiguous());
    descs.push_back(describe(contig.back()));
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
    total += contig[i].nbytes();
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
    m.tensors.push_back(frame_tensor(std::move(f), descs[i]));
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
