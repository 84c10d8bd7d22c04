// tessera/transport/proxy.h -- the server's front: routing envelopes and a
// receipt-stamping proxy between devices (ROUTER) and workers (DEALER -> REP).
#pragma once

#include <chrono>
#include <optional>
#include <vector>
#include <zmq.hpp>

namespace tessera::transport {

// Index just past the routing envelope (identity frames + empty delimiter) of a
// message received on a ROUTER; 0 when there is no delimiter (not a REQ/DEALER
// envelope: such a message is dropped, as REP would).
size_t envelope_end(const std::vector<zmq::message_t>& frames);

// ZeroMQ's proxy plus a receipt stamp: each request from a device gets a frame with
// the steady-clock time (ns) it left the network, right after the routing envelope,
// so a worker can tell how long it waited (queue_ms) and count the budget from there.
// Returns when the context shuts down; a signal (EINTR) does not stop it.
void run_stamping_proxy(zmq::socket_t& front, zmq::socket_t& back);

// A worker's side: removes the stamp (the first frame) and returns its time, or
// nothing when the frame is not a stamp.
std::optional<std::chrono::steady_clock::time_point> take_stamp(std::vector<zmq::message_t>& frames);

}  // namespace tessera::transport
