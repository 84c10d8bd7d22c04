// fuzz/fuzz_wire.cpp -- libFuzzer target: what a server does with an untrusted multipart message
// before it runs a block, and what it does to encode a reply.
//
// Input: frames in the format of fuzz/common.h (header, body, descriptors, tensor frames).
// Runs, as runtime/server.cpp does: decode_message (header, frame count, descriptors, each
// tensor frame: raw wrapped, fp16/bf16/int8/int8_channel/zstd decoded), then by type the
// body: decode_atoms for a Request (which must name atoms), decode_route for a Forward or a
// Result. Then each decoded tensor is encoded with the request's reply codec and decoded
// again (what a Reply carries back), with checks: the decoded tensors have the descriptors'
// dtypes and dims, and lossless codecs give back the same bytes.
//
// A tessera::Error is the expected answer to a malformed message; anything else (a crash,
// a sanitizer report, another exception, a broken check, a leak) is a finding.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdlib>
#include <cstring>
#include <cstdio>
#include <zmq.hpp>

#include "common.h"
#include "tessera/core/error.h"
#include "tessera/graph/tensor.h"
#include "tessera/transport/message.h"
#include "tessera/transport/wire.h"

using namespace tessera;
using tessera::fuzz::fail;
using tessera::fuzz::refused;
using namespace tessera::transport;

namespace {
// Smaller than a server's default 1 GiB so that -malloc_limit_mb (fuzz/run.sh) catches any
// allocation the message size does not bound (a decoder may allocate a few times this).
constexpr uint64_t kMaxMessageBytes = 16ull << 20;

void check_tensor(const at::Tensor& t, const TensorDesc& d) {
  if (!t.defined()) fail("decoded tensor is undefined");
  if (dtype_name(t.scalar_type()) != dtype_from_code(d.dtype)) fail("decoded dtype differs from the descriptor");
  if (!t.sizes().equals(d.dims)) fail("decoded dims differ from the descriptor");
}

// The reply path: encode with the peer's reply codec, decode as the device would.
void reply_round_trip(const at::Tensor& t, Codec c) {
  EncodedTensor e = encode_tensor(t, c);
  const at::Tensor& f = e.frame;
  if (e.desc.nbytes != static_cast<uint64_t>(f.nbytes())) fail("encoded descriptor length differs from its frame");
  // The descriptor the sender would put on the wire must pass the receiver's checks.
  std::string db = encode_descs({e.desc});
  auto back = decode_descs(db.data(), db.size(), 1, kMaxMessageBytes * 4);
  at::Tensor r = decode_tensor(f.data_ptr(), f.nbytes(), back[0]);
  check_tensor(r, e.desc);
  if (codec_lossless(e.desc.codec)) {
    at::Tensor src = t.contiguous();
    if (r.nbytes() != src.nbytes() ||
        (src.nbytes() > 0 && std::memcmp(r.data_ptr(), src.data_ptr(), src.nbytes()) != 0))
      fail("a lossless codec changed the bytes");
  }
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  at::set_num_threads(1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<zmq::message_t> frames;
  for (auto [off, len] : fuzz::split_frames(data, size)) frames.emplace_back(data + off, len);
  try {
    Message m = decode_message(frames, 0, kMaxMessageBytes);
    // the descriptors once more (decode_message does not hand them out): they passed, so they pass
    std::vector<TensorDesc> descs;
    try {
      descs = decode_descs(frames[2].data(), frames[2].size(), m.header.tensor_count, kMaxMessageBytes);
    } catch (const tessera::Error&) {
      fail("descriptors decode_message accepted are refused on their own");
    }
    if (m.tensors.size() != descs.size()) fail("tensor count differs from the descriptors'");
    for (size_t i = 0; i < m.tensors.size(); ++i) check_tensor(m.tensors[i], descs[i]);
    switch (m.header.type) {
      case MsgType::Request:
        TESSERA_CHECK(m.header.atom_count > 0, InvalidArgument, "request names no atoms");
        decode_atoms(m.body.data(), m.body.size(), m.header.atom_count);
        break;
      case MsgType::Forward:
      case MsgType::Result: {
        Route r = decode_route(m.body.data(), m.body.size(), m.header.tensor_count);
        // what the route's sender wrote is what it reads
        if (encode_route(r) != m.body) fail("encode_route(decode_route(body)) != body");
        break;
      }
      default: break;
    }
    for (const auto& t : m.tensors) reply_round_trip(t, static_cast<Codec>(m.header.reply_codec));
  } catch (const tessera::Error& e) {
    refused(e);  // a malformed message, refused by name: the expected outcome
  }
  return 0;
}
