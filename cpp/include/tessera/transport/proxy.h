// tessera/transport/proxy.h -- routing envelopes of messages received on a ROUTER.
#pragma once

#include <vector>
#include <zmq.hpp>

namespace tessera::transport {

// Index just past the routing envelope (identity frames + empty delimiter) of a
// message received on a ROUTER; 0 when there is no delimiter (not a REQ/DEALER
// envelope: such a message is dropped, as REP would).
size_t envelope_end(const std::vector<zmq::message_t>& frames);

}  // namespace tessera::transport
