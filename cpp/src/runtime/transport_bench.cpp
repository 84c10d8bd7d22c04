#include "tessera/runtime/transport_bench.h"

#include <chrono>
#include <cstdio>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/core/error.h"

namespace tessera::runtime {
using Clock = std::chrono::steady_clock;

namespace {
// A DEALER connected to a raw echo server, with a payload sent zero-copy.
class RawEcho {
 public:
  RawEcho(const std::string& endpoint, size_t bytes) : payload_(bytes, 1), s_(ctx_, zmq::socket_type::dealer) {
    s_.set(zmq::sockopt::linger, 0);
    s_.set(zmq::sockopt::rcvtimeo, 10000);
    s_.connect(endpoint);
    endpoint_ = endpoint;
  }
  double round_trip_ms() {
    auto t0 = Clock::now();
    // zero-copy send of the payload (no free function: it outlives the send)
    s_.send(zmq::message_t(payload_.data(), payload_.size(), nullptr, nullptr), zmq::send_flags::none);
    zmq::message_t back;
    TESSERA_CHECK(s_.recv(back), Timeout, "raw echo from {} timed out", endpoint_);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    TESSERA_CHECK(back.size() == payload_.size(), Runtime, "raw echo returned {} bytes, sent {}", back.size(),
                  payload_.size());
    return ms;
  }

 private:
  // Declared first, destroyed last: ZeroMQ may still read it (zero-copy) until the
  // socket and the context are gone.
  std::vector<char> payload_;
  zmq::context_t ctx_;
  zmq::socket_t s_;
  std::string endpoint_;
};

double tessera_round_trip_ms(Deployment& dep, const at::Tensor& t) {
  auto t0 = Clock::now();
  auto back = dep.echo({t});
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  TESSERA_CHECK(back.size() == 1 && back[0].nbytes() == t.nbytes(), Runtime, "echo returned the wrong tensor");
  return ms;
}
}  // namespace

std::vector<double> time_tessera_echo(Deployment& dep, const at::Tensor& t, int repeats) {
  std::vector<double> out;
  for (int i = 0; i < repeats; ++i) out.push_back(tessera_round_trip_ms(dep, t));
  return out;
}

std::vector<double> time_raw_echo(const std::string& endpoint, size_t bytes, int repeats) {
  RawEcho raw(endpoint, bytes);
  std::vector<double> out;
  for (int i = 0; i < repeats; ++i) out.push_back(raw.round_trip_ms());
  return out;
}

std::pair<std::vector<double>, std::vector<double>> time_echo_pairs(Deployment& dep, const std::string& raw_endpoint,
                                                                     const at::Tensor& t, int pairs) {
  RawEcho raw(raw_endpoint, t.nbytes());
  std::pair<std::vector<double>, std::vector<double>> out;
  for (int i = 0; i < pairs; ++i) {
    if (i % 2 == 0) {
      out.first.push_back(tessera_round_trip_ms(dep, t));
      out.second.push_back(raw.round_trip_ms());
    } else {
      out.second.push_back(raw.round_trip_ms());
      out.first.push_back(tessera_round_trip_ms(dep, t));
    }
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
