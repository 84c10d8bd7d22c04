// transport/proxy.cpp -- envelopes and the receipt-stamping proxy (see tessera/transport/proxy.h).
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

void run_stamping_proxy(zmq::socket_t& front, zmq::socket_t& back) {
  zmq::pollitem_t items[] = {{static_cast<void*>(front), 0, ZMQ_POLLIN, 0},
                             {static_cast<void*>(back), 0, ZMQ_POLLIN, 0}};
  while (true) {
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
      std::vector<zmq::message_t> frames;
      if (items[0].revents & ZMQ_POLLIN) {
        const int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
        if (zmq::recv_multipart(front, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
          const size_t e = envelope_end(frames);
          if (e > 0) {
            frames.insert(frames.begin() + static_cast<std::ptrdiff_t>(e), zmq::message_t(&now, sizeof now));
            zmq::send_multipart(back, frames);
          }
        }
      }
      frames.clear();
      if ((items[1].revents & ZMQ_POLLIN) &&
          zmq::recv_multipart(back, std::back_inserter(frames), zmq::recv_flags::dontwait))
        zmq::send_multipart(front, frames);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: go on proxying
      break;                           // ETERM: the context shut down
    }
  }
}

std::optional<std::chrono::steady_clock::time_point> take_stamp(std::vector<zmq::message_t>& frames) {
  std::optional<std::chrono::steady_clock::time_point> received;
  if (!frames.empty() && frames.front().size() == sizeof(int64_t)) {
    int64_t ns = 0;
    std::memcpy(&ns, frames.front().data(), sizeof ns);
    received = std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(ns));
  }
  if (!frames.empty()) frames.erase(frames.begin());
  return received;
}

}  // namespace tessera::transport
