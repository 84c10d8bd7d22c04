// tessera/transport/message.h -- tensors <-> ZeroMQ frames without copies, and whole
// messages of wire protocol v3 (wire.h), with the wire codecs' encoders and decoders. Includes ATen and cppzmq.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/transport/wire.h"

namespace tessera::transport {

TensorDesc describe(const at::Tensor& t);  // t must be contiguous
bool has_wire_dtype(const at::Tensor& t);  // describe() accepts its dtype
// A frame that points at the tensor's memory and keeps the storage alive until
// ZeroMQ is done with it.
zmq::message_t tensor_frame(const at::Tensor& contiguous);
// A tensor that points at the frame's memory and owns the frame; a frame whose data
// is not kTensorAlignment-aligned (libzmq packs small frames into a shared buffer)
// is copied into a fresh tensor instead.
inline constexpr size_t kTensorAlignment = 16;
// The tensor of a raw frame described by `d` (checked by decode_descs), taking the frame.
at::Tensor frame_tensor(zmq::message_t&& frame, const TensorDesc& d);

// A decoded message: frame 0, frame 1 and the tensors (decoded, ready to use).
struct Message {
  Header header;                    // frame 0
  std::string body;                 // frame 1 (atom ids, route, error text, JSON; by header.type)
  std::vector<at::Tensor> tensors;  // in descriptor order; contiguous, on the CPU
};

// A tensor encoded for the wire: the frame's bytes (a uint8, half or bfloat16 tensor that
// owns them) and its descriptor (codec, parameters, frame length).
struct EncodedTensor {
  at::Tensor frame;  // the bytes to send: uint8, half or bfloat16, contiguous
  TensorDesc desc;  // what describes them on the wire
};
// Encodes a tensor with codec `c` (wire.h); a codec that does not apply to its dtype or rank
// (codec_applies) leaves it raw, zero-copy. Runs in this thread (LibTorch's intra-op threads).
EncodedTensor encode_tensor(const at::Tensor& t, Codec c);
// The tensor a frame of `size` bytes encodes under descriptor `d` (already checked by
// decode_descs). Throws InvalidArgument naming tensor `index` and its codec if the frame
// is corrupt (a zstd frame that does not decompress to exactly dims x dtype).
at::Tensor decode_tensor(const void* data, size_t size, const TensorDesc& d, size_t index = 0);
// encode_tensor then decode_tensor: what the receiver gets (accuracy checks, codec profiles).
at::Tensor codec_round_trip(const at::Tensor& t, Codec c);

// Sends header, body, descriptors and tensor frames (after an optional empty
// delimiter frame for DEALER -> ROUTER/REP). Tensors are made contiguous.
// codecs: empty = every tensor raw; one = that codec for every tensor; else one per tensor.
// Returns false if the socket would block (dontwait) and nothing was sent.
bool send_message(zmq::socket_t& s, Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                  bool delimiter, bool dontwait = false, size_t* bytes_sent = nullptr,
                  const std::vector<Codec>& codecs = {});
// Decodes a received multipart message (frames after any delimiter), checking
// every count and length. Throws InvalidArgument naming the problem.
Message decode_message(std::vector<zmq::message_t>& frames, size_t first, uint64_t max_bytes);
// Blocking receive of one multipart message into `frames` (cleared first), retried when
// a signal interrupts it (EINTR). False when the socket's context is shutting down (ETERM)
// or on another ZeroMQ error: the caller's loop ends.
bool receive(zmq::socket_t& s, std::vector<zmq::message_t>& frames);
// Bytes a message of this body and these tensors takes on the wire (frames and descriptors).
size_t message_bytes(const std::string& body, const std::vector<at::Tensor>& tensors);

}  // namespace tessera::transport
