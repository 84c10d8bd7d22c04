// tessera/transport/wire.h -- wire protocol v3 between a device and edge servers.
//
// Every message is a ZeroMQ multipart message (see docs/wire-protocol.md):
//
//   frame 0   Header: 96 bytes, little-endian, fixed layout (below)
//   frame 1   body: for Request, the block's atom ids (int32 each); for Forward and
//             Result, the route (below); for Error, the UTF-8 message; for Pong, a
//             JSON object of counters; otherwise empty
//   frame 2   tensor descriptors: tensor_count entries of
//               u8 dtype code, u8 rank, u8 codec, u8 zero, u32 parameter bytes P,
//               i64 dims[rank], u64 frame byte length, P bytes of codec parameters
//   frame 3.. one frame per tensor: raw (contiguous, native little-endian, sent and
//             received without copies) or encoded by the descriptor's codec
//
// v2 adds pipelines (issue 14): a Forward runs one stage of a route and passes the live
// values straight to the next stage's server; the stages' Results go to the device's
// reply endpoint. v3 adds wire codecs (issue 17): a tensor may travel as fp16, bf16,
// int8 (affine, per tensor or per channel) or zstd; the descriptor names the codec and
// carries its parameters, the receiver decodes. A raw descriptor is laid out as in v2.
// A peer of another version is refused with both versions named.
//
// No pickle, no code, no file ever crosses the wire. decode() checks every
// length and count against the frames received and the maximum message size,
// and throws InvalidArgument naming what was wrong. torch-free.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "tessera/core/codec.h"
#include "tessera/core/version.h"

namespace tessera::transport {

inline constexpr uint32_t kMagic = 0x41525354;  // "TSRA" little-endian
inline constexpr uint16_t kVersion = kWireProtocolVersion;  // tessera/core/version.h
inline constexpr size_t kHeaderBytes = 96;                  // frame 0's size, fixed
inline constexpr int kMaxRank = 8;               // dimensions per tensor at most
inline constexpr uint32_t kMaxTensors = 4096;    // tensors per message at most (header tensor_count)
inline constexpr uint32_t kMaxAtoms = 1u << 20;  // atom ids per Request or hop at most

// What a message asks or answers (frame 0's type); decode_header refuses other values.
enum class MsgType : uint16_t {
  Request = 1,  // run a block: body = atom ids, tensors = the block's inputs
  Reply = 2,    // the block's outputs
  Error = 3,    // body = message naming what was wrong
  Ping = 4,     // health check
  Pong = 5,     // body = JSON counters
  Echo = 6,     // tensors sent back as they came (transport benchmarks)
  Forward = 7,  // run the route's hop `next`, pass the live values on: body = Route, tensors = Route::values
  Result = 8,   // server -> device's reply endpoint: body = Route (trace so far), tensors = Route::values
  Ack = 9,      // a server took a Forward (sent back on the socket it came in on)
  Busy = 10,    // the server's queue is full: the Request was not taken (body = why; queue_ms = the wait
                // the server estimates it would have had). The device runs the block itself at once.
  Train = 11,       // split training (runtime/training.h): body = JSON command {"op": ...}, tensors by op
  TrainReply = 12,  // its answer: body = JSON {"version": ...}, tensors by op (server_ms = compute time)
};
inline constexpr uint16_t kMaxMsgType = 12;  // the largest MsgType value
// "Request", "Reply", ...: the enumerator's name, for errors and logs.
const char* msg_type_name(MsgType t);

// Frame 0: 96 bytes (encode_header / decode_header), one per message; plain data.
struct Header {
  uint32_t magic = kMagic;               // kMagic; anything else is refused
  uint16_t version = kVersion;           // kVersion; a peer of another version is refused, naming both
  MsgType type = MsgType::Request;       // what the message is
  uint64_t request_id = 0;  // chosen by the device; a Reply, Error, Busy or Result carries the request's
  std::array<uint8_t, 32> model_hash{};  // sha256 of the atomized model (raw bytes)
  uint32_t atom_count = 0;               // Request: number of atom ids in frame 1
  uint32_t tensor_count = 0;             // number of tensor frames
  // Request: how long the device waits for the reply, from when it sent the request
  // (us; 0 = no limit). A budget, not a time of day: the server counts it from its own
  // receipt of the request, so the two machines' clocks never meet.
  int64_t budget_us = 0;
  double server_ms = 0;                  // Reply: time the server spent on the block, from its receipt
  // Reply/Echo: time from the server's receipt to a worker starting on it; Busy: the wait the
  // server estimates the request would have had
  double queue_ms = 0;
  uint32_t flags = 0;                    // see below
  // Request: the codec (Codec) the server encodes the reply's tensors with; 0 = raw.
  uint32_t reply_codec = 0;
};
static_assert(sizeof(double) == 8, "wire needs IEEE double");

// Result flags (Header::flags).
inline constexpr uint32_t kResultOutputs = 1;  // the tensors are model outputs
inline constexpr uint32_t kResultFinal = 2;    // the last message the device gets for this request
inline constexpr uint32_t kResultFailed = 4;   // hop `next` did not run (Route::error says why): the
                                               // tensors are the values live before it; the device runs the rest

// Reply flags (Header::flags): the block ran in a dynamic batch with other devices' requests
// (the same block and input shapes); bits 16..31 hold the batch size.
inline constexpr uint32_t kReplyBatched = 1;
// Reply: how many requests ran in the batch (1 when kReplyBatched is not set).
inline constexpr uint32_t reply_batch_size(uint32_t flags) { return (flags & kReplyBatched) ? flags >> 16 : 1; }

// Request flags (Header::flags).
inline constexpr uint32_t kRequestRows = 1;  // a tile of an intra-layer split: the block's one 4-D input
                                             // may have any number of rows (dim 2); the rest must match

// One tile of an intra-layer split: input rows [in_lo, in_hi) run through the stage's block
// at `endpoint`; rows [crop, crop + out_rows) of its output are kept.
struct Tile {
  std::string endpoint;            // where the tile's server listens ("tcp://host:port")
  int32_t in_lo = 0, in_hi = 0, crop = 0, out_rows = 0;  // rows, as the comment above says
  double slowdown = 1;             // emulation (Route::sleep), like Hop::slowdown
};

// One server stage of a pipeline route.
struct Hop {
  std::string endpoint;            // where its server listens
  std::vector<int> atoms;          // the stage's atom ids
  // Intra-layer split: empty, or one tile per node in row order, tiles[0] run by this hop's own
  // server, which sends the others as Requests (kRequestRows), gathers and concatenates the rows.
  std::vector<Tile> tiles;
  // Emulation (Route::sleep only; 1 and 0 = none): this node's slowdown over the
  // machine it runs on, the link it forwards on, the link its results return on.
  double slowdown = 1;
  double next_mbps = 0, next_rtt_ms = 0;  // emulated link to the next hop: Mbit/s, ms (0 = none)
  double back_mbps = 0, back_rtt_ms = 0;  // emulated link back to the device: Mbit/s, ms (0 = none)
};

// What one hop measured, carried along and returned to the device.
struct HopTrace {
  double queue_ms = 0;        // from the server's receipt to a worker starting on it
  double compute_ms = 0;      // wall time of the stage's block
  double cpu_ms = 0;          // CPU time of the thread that ran it
  double slept_ms = 0;        // emulation sleeps (compute stretch and links)
  uint64_t bytes_forward = 0; // the Forward it sent on (wire bytes; 0 for the last hop)
  uint64_t bytes_result = 0;  // the Result it sent to the device (0 if none)
  // Intra-layer split: per tile after the first, what its server reported and what crossed.
  struct TileTrace {
    double server_ms = 0;       // the tile's server time (its Reply's), 0 if it ran here instead
    uint64_t bytes_out = 0, bytes_in = 0;  // to and from the tile's server (wire bytes)
    uint32_t fallback = 0;      // 1: the tile's server failed or was late; this hop ran the tile itself
  };
  std::vector<TileTrace> tiles;  // one per tile after the first (empty when not split)
};

// The body of Forward and Result messages: the whole route, the hop the message is for,
// the value ids of the tensors it carries (graph value ids, in tensor order), the hops' traces.
struct Route {
  std::string reply_to;         // the device's reply endpoint (a ROUTER it binds)
  uint32_t next = 0;            // Forward: the hop to run; Result: the first hop not run
  bool sleep = false;           // emulate node speeds and links by sleeping (Hop fields)
  std::vector<Hop> hops;        // every server stage, in pipeline order
  std::vector<int> values;      // value ids of the tensors, one per tensor frame
  std::vector<HopTrace> trace;  // one per hop done (trace[k] = hops[k])
  std::string error;            // Result with kResultFailed: why
};
inline constexpr uint32_t kMaxHops = 64;           // hops per route at most
inline constexpr uint32_t kMaxTiles = 64;          // tiles per hop at most
inline constexpr size_t kMaxEndpointBytes = 1024;  // length of an endpoint string at most

// The route as a Forward / Result body (decode_route reads it back).
std::string encode_route(const Route& r);
// Checks every length, count and number against the bytes received (hops in [1, 64],
// next <= hops, trace <= hops, printable endpoints, finite non-negative figures, value
// count against the header's tensor count); throws InvalidArgument naming the field.
Route decode_route(const void* data, size_t size, uint32_t tensor_count);

// Wire codecs (v3): core/codec.h (the plan layer prices them too).
using ::tessera::Codec;
using ::tessera::codec_applies;
using ::tessera::codec_frame_bytes;
using ::tessera::codec_lossless;
using ::tessera::codec_name;
using ::tessera::codec_names;
using ::tessera::kMaxCodec;
using ::tessera::parse_codec;

// One tensor's description. dtype codes: see dtype_code(). nbytes is the frame's length
// (encoded); the decoded tensor has dims x dtype. params: the codec's parameters
// (int8: f64 scale, i64 zero point; int8_channel: u32 axis, u32 channels, f32 scales[],
// i32 zero points[]; others: none).
struct TensorDesc {
  uint8_t dtype = 0;          // wire code of the element type (dtype_code)
  std::vector<int64_t> dims;  // shape, at most kMaxRank dimensions
  uint64_t nbytes = 0;       // frame length in bytes, as encoded
  Codec codec = Codec::Raw;  // how the frame encodes the elements
  std::string params;  // the codec's parameter bytes (above), at most kMaxCodecParamBytes
};
inline constexpr uint32_t kMaxCodecParamBytes = 1u << 20;  // codec parameter bytes per tensor at most

// Dtype names <-> wire codes (the wire_code column of core/dtype.h); unknown -> InvalidArgument.
uint8_t dtype_code(const std::string& dtype);
// The dtype name of a wire code; InvalidArgument for an unknown code.
const std::string& dtype_from_code(uint8_t code);

std::string encode_header(const Header& h);            // exactly kHeaderBytes
Header decode_header(const void* data, size_t size);    // checks size, magic, version, type
// Frame 2 for these descriptors (decode_descs reads it back).
std::string encode_descs(const std::vector<TensorDesc>& d);
// Checks count against header.tensor_count, ranks, dims, codecs and their parameters,
// byte lengths against dims x element size (as the codec encodes them), and the decoded
// total against max_bytes.
std::vector<TensorDesc> decode_descs(const void* data, size_t size, uint32_t count, uint64_t max_bytes);
// Frame 1 of a Request: the atom ids as int32 little-endian.
std::string encode_atoms(const std::vector<int>& atoms);
// Reads frame 1: `size` must be 4 x count bytes, else InvalidArgument (ids are not range-checked).
std::vector<int> decode_atoms(const void* data, size_t size, uint32_t count);

// Model hashes: 64 hex characters <-> 32 raw bytes.
std::array<uint8_t, 32> hash_from_hex(const std::string& hex);
// 64 lowercase hex characters of a 32-byte hash.
std::string hash_to_hex(const std::array<uint8_t, 32>& raw);

int64_t now_us();  // wall clock, microseconds since the epoch

}  // namespace tessera::transport
