// tessera/transport/message.h -- tensors <-> ZeroMQ frames without copies, and whole
// messages of wire protocol v2 (wire.h). Includes ATen and cppzmq.
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
at::Tensor frame_tensor(zmq::message_t&& frame, const TensorDesc& d);

struct Message {
  Header header;
  std::string body;
  std::vector<at::Tensor> tensors;
};

// Sends header, body, descriptors and tensor frames (after an optional empty
// delimiter frame for DEALER -> ROUTER/REP). Tensors are made contiguous.
// Returns false if the socket would block (dontwait) and nothing was sent.
bool send_message(zmq::socket_t& s, Header h, const std::string& body, const std::vector<at::Tensor>& tensors,
                  bool delimiter, bool dontwait = false, size_t* bytes_sent = nullptr);
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
