// bench/cpp/transport_bench.cpp -- the transport benchmark's timed loops (run by
// bench/bench_transport.py), in C++ so that no Python overhead enters either side of
// the comparison. Not part of the library.
//
//   tessera-bench-transport serve-raw BIND
//       a plain ZeroMQ ROUTER echo; prints "raw-echo listening on ENDPOINT"
//   tessera-bench-transport pairs STORE SERVER RAW BYTES ROUNDS PER_ROUND
//       per round, PER_ROUND round trips of BYTES through a tessera server (Echo
//       messages of a Deployment of the atom store STORE) and through the raw echo,
//       interleaved message by message (tessera first on even pairs, raw first on odd
//       ones) so that drift in the machine's speed hits both sides alike; one JSON line
//       per round: {"tessera": [ms, ...], "raw": [ms, ...]}
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/core/error.h"
#include "tessera/runtime/deployment.h"

namespace {
using namespace tessera;
using namespace tessera::runtime;
using Clock = std::chrono::steady_clock;

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
    TESSERA_CHECK(s_.recv(back), Deadline, "raw echo from {} timed out", endpoint_);
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    TESSERA_CHECK(back.size() == payload_.size(), Engine, "raw echo returned {} bytes, sent {}", back.size(),
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
  TESSERA_CHECK(back.size() == 1 && back[0].nbytes() == t.nbytes(), Engine, "echo returned the wrong tensor");
  return ms;
}

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

}  // namespace

int main(int argc, char** argv) {
  // One intra-op thread, like the Python processes of the benchmark: an OpenMP pool left
  // spinning after at::randn would compete with the servers for this machine's 2 cores.
  at::set_num_threads(1);
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "serve-raw" && argc == 3) {
      serve_raw_echo(argv[2], -1);
      return 0;
    }
    if (cmd == "pairs" && argc == 8) {
      const Model model = Model::open(argv[2], std::vector<int>{});
      DeploymentOptions o;
      o.server = argv[3];
      o.timeout_ms = 30000;
      Deployment dep(model, std::vector<int>(model.num_atoms(), 0), o);
      const std::string raw = argv[4];
      const auto bytes = static_cast<int64_t>(std::stoll(argv[5]));
      const int rounds = std::stoi(argv[6]), per_round = std::stoi(argv[7]);
      TESSERA_CHECK(bytes >= 4 && rounds >= 1 && per_round >= 1, InvalidArgument,
                    "bytes >= 4, rounds >= 1 and per_round >= 1 needed");
      const at::Tensor t = at::randn({bytes / 4});
      for (int w = 0; w < 2; ++w) {  // warm-up
        time_tessera_echo(dep, t, 3);
        time_raw_echo(raw, static_cast<size_t>(t.nbytes()), 3);
      }
      for (int r = 0; r < rounds; ++r) {
        const auto [a, b] = time_echo_pairs(dep, raw, t, per_round);
        std::printf("{\"tessera\": [%s], \"raw\": [%s]}\n", fmt::format("{}", fmt::join(a, ", ")).c_str(),
                    fmt::format("{}", fmt::join(b, ", ")).c_str());
        std::fflush(stdout);
      }
      return 0;
    }
    std::fprintf(stderr, "usage: %s serve-raw BIND | pairs STORE SERVER RAW BYTES ROUNDS PER_ROUND\n", argv[0]);
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera-bench-transport: %s\n", e.what());
    return 1;
  }
}
