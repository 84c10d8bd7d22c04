// tessera/transport/wire.h -- wire protocol v1 between a device and an edge server.
//
// Every message is a ZeroMQ multipart message (see docs/wire-protocol.md):
//
//   frame 0   Header: 96 bytes, little-endian, fixed layout (below)
//   frame 1   body: for Request, the block's atom ids (int32 each); for Error, the
//             UTF-8 message; for Pong, a JSON object of counters; otherwise empty
//   frame 2   tensor descriptors: tensor_count entries of
//               u8 dtype code, u8 rank, u16 reserved, u32 reserved,
//               i64 dims[rank], u64 byte length
//   frame 3.. one raw frame per tensor (contiguous, native little-endian), sent
//             and received without copies
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

namespace tessera::transport {

inline constexpr uint32_t kMagic = 0x41525354;  // "TSRA" little-endian
inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderBytes = 96;
inline constexpr int kMaxRank = 8;
inline constexpr uint32_t kMaxTensors = 4096;
inline constexpr uint32_t kMaxAtoms = 1u << 20;

enum class MsgType : uint16_t {
  Request = 1,  // run a block: body = atom ids, tensors = the block's inputs
  Reply = 2,    // the block's outputs
  Error = 3,    // body = message naming what was wrong
  Ping = 4,     // health check
  Pong = 5,     // body = JSON counters
  Echo = 6,     // tensors sent back as they came (transport benchmarks)
};
const char* msg_type_name(MsgType t);

struct Header {
  uint32_t magic = kMagic;
  uint16_t version = kVersion;
  MsgType type = MsgType::Request;
  uint64_t request_id = 0;
  std::array<uint8_t, 32> model_hash{};  // sha256 of the atomized model (raw bytes)
  uint32_t atom_count = 0;               // Request: number of atom ids in frame 1
  uint32_t tensor_count = 0;             // number of tensor frames
  // Request: how long the device waits for the reply, from when it sent the request
  // (us; 0 = no limit). A budget, not a time of day: the server counts it from its own
  // receipt of the request, so the two machines' clocks never meet.
  int64_t budget_us = 0;
  double server_ms = 0;                  // Reply: time the server spent on the block, from its receipt
  // Reply/Echo: time from the server's receipt to a worker starting on it (several workers;
  // 0 with one worker, whose socket queue is not observable)
  double queue_ms = 0;
  uint32_t flags = 0;                    // reserved, 0
  uint32_t reserved = 0;
};
static_assert(sizeof(double) == 8, "wire needs IEEE double");

// One tensor's description. dtype codes: see dtype_code().
struct TensorDesc {
  uint8_t dtype = 0;
  std::vector<int64_t> dims;
  uint64_t nbytes = 0;
};

// Dtype names <-> wire codes (the wire_code column of core/dtype.h); unknown -> InvalidArgument.
uint8_t dtype_code(const std::string& dtype);
const std::string& dtype_from_code(uint8_t code);

std::string encode_header(const Header& h);            // exactly kHeaderBytes
Header decode_header(const void* data, size_t size);    // checks size, magic, version, type
std::string encode_descs(const std::vector<TensorDesc>& d);
// Checks count against header.tensor_count, ranks, dims, byte lengths against
// dims x element size, and the total against max_bytes.
std::vector<TensorDesc> decode_descs(const void* data, size_t size, uint32_t count, uint64_t max_bytes);
std::string encode_atoms(const std::vector<int>& atoms);
std::vector<int> decode_atoms(const void* data, size_t size, uint32_t count);

// Model hashes: 64 hex characters <-> 32 raw bytes.
std::array<uint8_t, 32> hash_from_hex(const std::string& hex);
std::string hash_to_hex(const std::array<uint8_t, 32>& raw);

int64_t now_us();  // wall clock, microseconds since the epoch

}  // namespace tessera::transport
