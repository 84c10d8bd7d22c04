// fuzz/make_seeds.cpp -- writes the seed corpora of fuzz_wire and fuzz_descs from the real
// encoders (encode_header, encode_atoms, encode_route, encode_descs, encode_tensor), so every
// seed is a message a tessera peer sends.
//
//   tessera-fuzz-seeds DIR    writes DIR/wire/<name> and DIR/descs/<name>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common.h"
#include "tessera/transport/message.h"
#include "tessera/transport/wire.h"

using namespace tessera;
using namespace tessera::transport;
namespace fs = std::filesystem;

namespace {
fs::path root;

void write(const std::string& sub, const std::string& name, const std::string& bytes) {
  fs::create_directories(root / sub);
  std::ofstream f(root / sub / name, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + (root / sub / name).string());
}

Header header(MsgType type, uint32_t atoms, uint32_t tensors) {
  Header h;
  h.type = type;
  h.request_id = 42;
  for (int i = 0; i < 32; ++i) h.model_hash[i] = static_cast<uint8_t>(17 * i + 3);
  h.atom_count = atoms;
  h.tensor_count = tensors;
  return h;
}

std::string bytes_of(const at::Tensor& t) {
  return std::string(static_cast<const char*>(t.data_ptr()), t.nbytes());
}

// A message: header, body, then each tensor encoded with its codec (descriptors and frames).
void message(const std::string& name, Header h, const std::string& body, const std::vector<at::Tensor>& ts,
             const std::vector<Codec>& codecs) {
  std::vector<TensorDesc> descs;
  std::vector<std::string> frames{"", body, ""};
  for (size_t i = 0; i < ts.size(); ++i) {
    EncodedTensor e = encode_tensor(ts[i], codecs.empty() ? Codec::Raw : codecs[i]);
    descs.push_back(e.desc);
    frames.push_back(bytes_of(e.frame));
  }
  h.tensor_count = static_cast<uint32_t>(ts.size());
  frames[0] = encode_header(h);
  frames[2] = encode_descs(descs);
  write("wire", name, fuzz::join_frames(frames));
  // the same descriptors alone, for fuzz_descs: u32 count, u64 maximum message size, frame
  std::string d(12, '\0');
  const uint32_t n = static_cast<uint32_t>(descs.size());
  const uint64_t max = 1ull << 30;
  std::memcpy(&d[0], &n, 4);
  std::memcpy(&d[4], &max, 8);
  if (n) write("descs", name, d + frames[2]);
}

at::Tensor activations(std::vector<int64_t> dims) {  // small, signed, not all equal
  const int64_t n = c10::multiply_integers(dims);
  return (at::sin(at::arange(n, at::kFloat) * 0.7) * 3.0 + 0.5).reshape(dims);
}

Route route(int hops, uint32_t next, size_t values) {
  Route r;
  r.reply_to = "tcp://127.0.0.1:5599";
  r.next = next;
  r.sleep = true;
  for (int k = 0; k < hops; ++k) {
    Hop h;
    h.endpoint = "tcp://127.0.0.1:" + std::to_string(5600 + k);
    h.atoms = {2 * k, 2 * k + 1};
    h.slowdown = 1.5;
    h.next_mbps = 10;
    h.next_rtt_ms = 20;
    h.back_mbps = 5;
    h.back_rtt_ms = 30;
    r.hops.push_back(h);
  }
  for (size_t v = 0; v < values; ++v) r.values.push_back(static_cast<int>(3 + v));
  for (uint32_t k = 0; k < next; ++k) {
    HopTrace t;
    t.queue_ms = 0.5, t.compute_ms = 3, t.cpu_ms = 2.5, t.slept_ms = 1, t.bytes_forward = 4096, t.bytes_result = 0;
    r.trace.push_back(t);
  }
  return r;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  root = argv[1];
  at::set_num_threads(1);
  const auto x = activations({1, 4, 3, 3});

  message("ping", header(MsgType::Ping, 0, 0), "", {}, {});
  message("pong", header(MsgType::Pong, 0, 0), R"({"requests":3,"replies":2,"errors":1})", {}, {});
  message("error", header(MsgType::Error, 0, 0), "unknown model 0011223344556677", {}, {});
  message("ack", header(MsgType::Ack, 0, 0), "", {}, {});

  Header req = header(MsgType::Request, 2, 1);
  req.budget_us = 50000;
  message("request_raw", req, encode_atoms({0, 1}), {x}, {});
  for (Codec c : {Codec::Fp16, Codec::Bf16, Codec::Int8, Codec::Int8Channel, Codec::Zstd}) {
    Header h = req;
    h.reply_codec = static_cast<uint32_t>(c);
    h.atom_count = 3;
    message(std::string("request_") + codec_name(c), h, encode_atoms({3, 1, 2}), {x}, {c});
  }
  // every dtype, rank 0 to 3, an empty tensor, a tile request
  Header mixed = header(MsgType::Request, 1, 0);
  mixed.flags = kRequestRows;
  message("request_dtypes", mixed, encode_atoms({7}),
          {at::arange(6, at::kLong).reshape({2, 3}), at::arange(4, at::kInt), at::ones({2, 2}, at::kShort),
           at::arange(5, at::kChar), at::arange(5, at::kByte), at::ones({3}, at::kBool),
           activations({2, 2}).to(at::kDouble), activations({3}).to(at::kHalf), activations({3}).to(at::kBFloat16),
           at::zeros({0, 3}), at::tensor(2.5f)},
          {Codec::Zstd, Codec::Raw, Codec::Zstd, Codec::Raw, Codec::Raw, Codec::Zstd, Codec::Raw, Codec::Raw,
           Codec::Raw, Codec::Int8, Codec::Raw});

  Header reply = header(MsgType::Reply, 0, 1);
  reply.server_ms = 3.25;
  reply.queue_ms = 0.5;
  message("reply_int8", reply, "", {activations({1, 10})}, {Codec::Int8});
  message("echo", header(MsgType::Echo, 0, 2), "", {x, activations({2})}, {});

  message("forward", header(MsgType::Forward, 0, 2), encode_route(route(2, 1, 2)), {x, activations({1, 8})}, {});
  Route tiled = route(1, 0, 1);
  tiled.hops[0].tiles = {Tile{tiled.hops[0].endpoint, 0, 3, 0, 2, 1.0}, Tile{"tcp://127.0.0.1:5700", 1, 3, 1, 1, 2.0}};
  message("forward_tiles", header(MsgType::Forward, 0, 1), encode_route(tiled), {x}, {Codec::Fp16});
  Route done = route(3, 3, 1);
  HopTrace::TileTrace tt;
  tt.server_ms = 1.5, tt.bytes_out = 100, tt.bytes_in = 80, tt.fallback = 1;
  done.trace[1].tiles = {tt};
  Header res = header(MsgType::Result, 0, 1);
  res.flags = kResultOutputs | kResultFinal;
  message("result_final", res, encode_route(done), {activations({1, 10})}, {});
  Route failed = route(2, 1, 1);
  failed.error = "hop 1 (tcp://127.0.0.1:5601): unknown model";
  res.flags = kResultFailed | kResultFinal;
  message("result_failed", res, encode_route(failed), {x}, {Codec::Zstd});
  return 0;
}
