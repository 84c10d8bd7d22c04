#include "tessera/runtime/transport_bench.h"

#include <chrono>
#include <cstdio>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/core/error.h"

namespace tessera::runtime {
using Clock = std::chrono::steady_clock;

std::vector<double> time_tessera_echo(Deployment& dep, const at::Tensor& t, int repeats) {
  std::vector<double> out;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Clock::now();
    auto back = dep.echo({t});
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    TESSERA_CHECK(back.size() == 1 && back[0].nbytes() == t.nbytes(), Runtime, "echo returned the wrong tensor");
  }
  return out;
}

std::vector<double> time_raw_echo(const std::string& endpoint, size_t bytes, int repeats) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::rcvtimeo, 10000);
  s.connect(endpoint);
  std::vector<char> payload(bytes, 1);
  std::vector<double> out;
  for (int i = 0; i < repeats; ++i) {
    auto t0 = Clock::now();
    // zero-copy send of the payload (no free function: it outlives the send)
    s.send(zmq::message_t(payload.data(), payload.size(), nullptr, nullptr), zmq::send_flags::none);
    zmq::message_t back;
    TESSERA_CHECK(s.recv(back), Timeout, "raw echo from {} timed out", endpoint);
    out.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    TESSERA_CHECK(back.size() == bytes, Runtime, "raw echo returned {} bytes, sent {}", back.size(), bytes);
  }
  return out;
}

void serve_raw_echo(const std::string& bind, long max_messages) {
  zmq::context_t ctx;
  zmq::socket_t s(ctx, zmq::socket_type::router);
  s.set(zmq::sockopt::linger, 0);
  s.bind(bind);
  std::printf("raw-echo listening on %s\n", s.get(zmq::sockopt::last_endpoint).c_str());
  std::fflush(stdout);
  for (long n = 0; max_messages < 0 || n < max_messages; ++n) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(s, std::back_inserter(frames))) continue;
    zmq::send_multipart(s, frames);
  }
}

}  // namespace tessera::runtime
