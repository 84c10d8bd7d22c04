// bench/cpp/load_client.cpp -- one emulated device of the server load benchmark
// (bench/bench_server.py starts many of these as separate processes). Not part of the library.
//
//   tessera-bench-client ENDPOINT SPEC_DIR CLIENT_ID SECONDS [--timeout-ms N] [--think-ms X] [--fallback-ms X]
//                        [--ping] [--start-at EPOCH_S]
//
// SPEC_DIR (written by bench_server.py): spec.txt with lines
//   hash HEX            the model's hash
//   atoms A B C ...     the server block's atoms
//   inputs K            K input/expected pairs: in_<k>.bin / out_<k>.bin (raw float32)
//   in_shape D0 D1 ...  out_shape D0 D1 ...
// A closed loop with its own DEALER: send a Request of input (CLIENT_ID + i) mod K, wait for
// its answer (up to timeout_ms), check a Reply against the expected output (bit-identical,
// or within rtol 1e-4 / atol 1e-5, else wrong), note a Busy and the time it took to come
// back (when a device would start running the block itself; it then sleeps fallback_ms, the
// device's own time for the block), then think_ms, and again,
// until SECONDS have passed. Prints one JSON object: counts, latencies and send times.
// Torch-free (the wire's torch-free codec, wire.h, and raw float32 buffers): a process
// that loaded LibTorch spent ~1 s of CPU starting (its operator registry), and 64 of them
// starting at once took ~20 s of this machine's two cores away from the server.
// --ping: Pings instead (the transport's own round trip under the same load), in latency_ms.
// --start-at: set up (inputs, connection, one Ping answered) and wait until this wall-clock
// time (seconds since the epoch) before the loop starts, so that many devices starting (each
// loading LibTorch) do not fall into the measured window; "late_s" says how late it began.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "tessera/core/error.h"
#include "tessera/transport/wire.h"

namespace {
using namespace tessera;
using namespace tessera::transport;
using Clock = std::chrono::steady_clock;

std::vector<float> read_floats(const std::string& path, const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (auto d : shape) n *= static_cast<size_t>(d);
  std::ifstream f(path, std::ios::binary);
  TESSERA_CHECK(f.good(), NotFound, "cannot read {}", path);
  std::vector<float> v(n);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
  TESSERA_CHECK(f.gcount() == static_cast<std::streamsize>(n * sizeof(float)), InvalidArgument,
                "{} holds {} bytes, shape [{}] needs {}", path, f.gcount(), fmt::join(shape, ", "), n * sizeof(float));
  return v;
}

// Sends header, body, descriptors and the tensor frames after the DEALER's empty delimiter.
void send_raw(zmq::socket_t& s, Header h, const std::string& body, const std::vector<int64_t>& shape,
              const std::vector<float>* x) {
  h.tensor_count = x ? 1 : 0;
  std::string descs;
  if (x) {
    TensorDesc d;
    d.dtype = dtype_code("float32");
    d.dims = shape;
    d.nbytes = x->size() * sizeof(float);
    descs = encode_descs({d});
  }
  s.send(zmq::message_t(), zmq::send_flags::sndmore);
  s.send(zmq::buffer(encode_header(h)), zmq::send_flags::sndmore);
  s.send(zmq::buffer(body), zmq::send_flags::sndmore);
  if (!x) {
    s.send(zmq::buffer(descs), zmq::send_flags::none);
    return;
  }
  s.send(zmq::buffer(descs), zmq::send_flags::sndmore);
  s.send(zmq::buffer(x->data(), x->size() * sizeof(float)), zmq::send_flags::none);
}

std::string list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.3f}", i ? ", " : "", v[i]);
  return s + "]";
}
}  // namespace

int main(int argc, char** argv) {
  try {
    TESSERA_CHECK(argc >= 5, InvalidArgument,
                  "usage: tessera-bench-client ENDPOINT SPEC_DIR CLIENT_ID SECONDS [--timeout-ms N] [--think-ms X] "
                  "[--fallback-ms X]");
    const std::string endpoint = argv[1], dir = argv[2];
    const uint64_t client = std::stoull(argv[3]);
    const double seconds = std::stod(argv[4]);
    int timeout_ms = 10000;
    double think_ms = 0, fallback_ms = 0;
    bool ping = false;
    double start_at = 0;
    for (int i = 5; i < argc; i += 2) {
      const std::string a = argv[i];
      if (a == "--ping") {
        ping = true;
        --i;
        continue;
      }
      TESSERA_CHECK(i + 1 < argc, InvalidArgument, "{} needs a value", a);
      if (a == "--timeout-ms") timeout_ms = std::stoi(argv[i + 1]);
      else if (a == "--think-ms") think_ms = std::stod(argv[i + 1]);
      else if (a == "--fallback-ms") fallback_ms = std::stod(argv[i + 1]);
      else if (a == "--start-at") start_at = std::stod(argv[i + 1]);
      else TESSERA_THROW(InvalidArgument, "unknown option {}", a);
    }
    std::ifstream spec(dir + "/spec.txt");
    TESSERA_CHECK(spec.good(), NotFound, "no {}/spec.txt", dir);
    std::string hash;
    std::vector<int> atoms;
    std::vector<int64_t> in_shape, out_shape;
    int k_inputs = 0;
    for (std::string line; std::getline(spec, line);) {
      std::istringstream ls(line);
      std::string key;
      ls >> key;
      if (key == "hash") ls >> hash;
      else if (key == "atoms") for (int a; ls >> a;) atoms.push_back(a);
      else if (key == "inputs") ls >> k_inputs;
      else if (key == "in_shape") for (int64_t d; ls >> d;) in_shape.push_back(d);
      else if (key == "out_shape") for (int64_t d; ls >> d;) out_shape.push_back(d);
    }
    TESSERA_CHECK(!hash.empty() && !atoms.empty() && k_inputs > 0, InvalidArgument, "{}/spec.txt is incomplete", dir);
    std::vector<std::vector<float>> ins, outs;
    for (int k = 0; k < k_inputs; ++k) {
      ins.push_back(read_floats(fmt::format("{}/in_{}.bin", dir, k), in_shape));
      outs.push_back(read_floats(fmt::format("{}/out_{}.bin", dir, k), out_shape));
    }
    const std::string body = encode_atoms(atoms);
    zmq::context_t ctx(1);
    auto connect = [&] {
      zmq::socket_t s(ctx, zmq::socket_type::dealer);
      s.set(zmq::sockopt::linger, 0);
      s.connect(endpoint);
      return s;
    };
    zmq::socket_t sock = connect();
    double late_s = 0;
    if (start_at > 0) {  // connected and answered once before the window opens
      Header p;
      p.type = MsgType::Ping;
      p.request_id = client << 32;
      send_raw(sock, p, "", {}, nullptr);
      std::vector<zmq::message_t> frames;
      zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms)) > 0)
        (void)zmq::recv_multipart(sock, std::back_inserter(frames));
      const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
      if (start_at > now) std::this_thread::sleep_for(std::chrono::duration<double>(start_at - now));
      else late_s = now - start_at;
    }
    uint64_t sent = 0, ok = 0, identical = 0, wrong = 0, busy = 0, errors = 0, timeouts = 0;
    double max_diff = 0;
    std::vector<double> latency, busy_ms, t_sent, t_busy, server_ms, batch;
    std::string first_error;
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration<double>(seconds);
    for (uint64_t i = 0; Clock::now() < end; ++i) {
      const int k = static_cast<int>((client + i) % static_cast<uint64_t>(k_inputs));
      Header h;
      h.type = ping ? MsgType::Ping : MsgType::Request;
      h.request_id = (client << 32) | (i + 1);
      h.model_hash = hash_from_hex(hash);
      h.atom_count = static_cast<uint32_t>(atoms.size());
      h.budget_us = int64_t{timeout_ms} * 1000;
      const auto t0 = Clock::now();
      if (ping) send_raw(sock, h, "", {}, nullptr);
      else send_raw(sock, h, body, in_shape, &ins[static_cast<size_t>(k)]);
      ++sent;
      const double at_ms = std::chrono::duration<double, std::milli>(t0 - start).count();
      bool answered = false;
      while (!answered) {
        zmq::pollitem_t item{static_cast<void*>(sock), 0, ZMQ_POLLIN, 0};
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            t0 + std::chrono::milliseconds(timeout_ms) - Clock::now());
        if (left.count() <= 0 || zmq::poll(&item, 1, left) <= 0) break;
        std::vector<zmq::message_t> frames;
        if (!zmq::recv_multipart(sock, std::back_inserter(frames), zmq::recv_flags::dontwait)) continue;
        if (frames.size() < 4) continue;
        const Header rh = decode_header(frames[1].data(), frames[1].size());
        if (rh.request_id != h.request_id) continue;  // a late answer to an earlier request
        answered = true;
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (rh.type == MsgType::Pong) {
          ++ok;
          latency.push_back(ms);
          t_sent.push_back(at_ms);
        } else if (rh.type == MsgType::Busy) {
          ++busy;
          busy_ms.push_back(ms);
          t_busy.push_back(at_ms);
          if (fallback_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(fallback_ms));
        } else if (rh.type == MsgType::Reply && rh.tensor_count == 1 && frames.size() == 5) {
          const auto d = decode_descs(frames[3].data(), frames[3].size(), 1, 1ull << 32);
          const std::vector<float>& want = outs[static_cast<size_t>(k)];
          const bool shape_ok = d[0].codec == Codec::Raw && d[0].dims == out_shape &&
                                frames[4].size() == want.size() * sizeof(float);
          bool close = shape_ok;
          double diff = 0;
          if (shape_ok) {
            std::vector<float> y(want.size());  // the frame may not be aligned for floats
            std::memcpy(y.data(), frames[4].data(), frames[4].size());
            for (size_t e = 0; e < y.size(); ++e) {
              const double a = y[e], b = want[e];
              diff = std::max(diff, std::abs(a - b));
              close &= std::abs(a - b) <= 1e-5 + 1e-4 * std::abs(b);
            }
          }
          if (!close) {
            ++wrong;
          } else {
            ++ok;
            identical += std::memcmp(frames[4].data(), want.data(), frames[4].size()) == 0;
            max_diff = std::max(max_diff, diff);
            server_ms.push_back(rh.server_ms);
            batch.push_back(reply_batch_size(rh.flags));
            latency.push_back(ms);
            t_sent.push_back(at_ms);
          }
        } else {
          ++errors;
          if (first_error.empty()) first_error = frames[2].to_string().substr(0, 200);
        }
      }
      if (!answered) {
        ++timeouts;
        sock = connect();  // a late reply must never be taken for a later request's
      }
      if (think_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(think_ms));
    }
    for (auto& c : first_error)
      if (c == '"' || c == '\\' || c < 32) c = ' ';
    std::printf(
        "{\"client\": %llu, \"sent\": %llu, \"ok\": %llu, \"identical\": %llu, \"wrong\": %llu, \"busy\": %llu, "
        "\"errors\": %llu, \"timeouts\": %llu, \"late_s\": %.3f, \"max_abs_diff\": %.3g, \"first_error\": \"%s\", \"latency_ms\": %s, "
        "\"t_ms\": %s, \"busy_ms\": %s, \"t_busy_ms\": %s, \"server_ms\": %s, \"batch\": %s}\n",
        (unsigned long long)client, (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)identical,
        (unsigned long long)wrong, (unsigned long long)busy, (unsigned long long)errors, (unsigned long long)timeouts,
        late_s, max_diff, first_error.c_str(), list(latency).c_str(), list(t_sent).c_str(), list(busy_ms).c_str(),
        list(t_busy).c_str(), list(server_ms).c_str(), list(batch).c_str());
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "tessera-bench-client: error: %s\n", e.message().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tessera-bench-client: error: %s\n", e.what());
    return 1;
  }
}
