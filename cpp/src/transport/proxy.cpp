// transport/proxy.cpp -- routing envelopes (see tessera/transport/proxy.h).
#include "tessera/transport/proxy.h"

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <zmq_addon.hpp>

namespace tessera::transport {

size_t envelope_end(const std::vector<zmq::message_t>& frames) {
  size_t d = 0;  // the empty delimiter ends the envelope
  while (d < frames.size() && frames[d].size() != 0) ++d;
  return d < frames.size() ? d + 1 : 0;
}

}  // namespace tessera::transport
