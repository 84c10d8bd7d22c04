// transport/security.cpp -- CURVE keys and the ZAP allow-list (see tessera/transport/security.h).
#include "tessera/transport/security.h"

#include <array>
#include <cerrno>
#include <cstring>
#include <zmq_addon.hpp>

#include "tessera/core/error.h"
#include "tessera/transport/message.h"

namespace tessera::transport {

std::pair<std::string, std::string> curve_keypair() {
  char pub[41] = {0}, sec[41] = {0};
  TESSERA_CHECK(zmq_curve_keypair(pub, sec) == 0, Unsupported, "this libzmq has no CURVE support");
  return {pub, sec};
}

bool is_z85_key(const std::string& key) {
  std::array<uint8_t, 32> raw{};
  return key.size() == 40 && zmq_z85_decode(raw.data(), key.c_str()) != nullptr;
}

void run_zap_handler(zmq::context_t& ctx, const std::vector<std::string>& allowed_keys, std::promise<void>& ready) {
  zmq::socket_t zap;
  try {
    zap = zmq::socket_t(ctx, zmq::socket_type::rep);
    zap.set(zmq::sockopt::linger, 0);
    zap.bind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t& e) {
    ready.set_exception(std::make_exception_ptr(Error(
        ErrorKind::Engine, fmt::format("cannot start the CURVE authenticator: {}", e.what()), "run_zap_handler")));
    return;
  }
  ready.set_value();
  std::vector<std::array<uint8_t, 32>> allowed;
  for (const auto& k : allowed_keys) {
    std::array<uint8_t, 32> raw{};
    if (k.size() == 40 && zmq_z85_decode(raw.data(), k.c_str())) allowed.push_back(raw);
  }
  while (true) {
    std::vector<zmq::message_t> f;
    if (!receive(zap, f)) break;  // ETERM: stopping
    bool ok = false;
    if (f.size() >= 7 && f[5].to_string() == "CURVE" && f[6].size() == 32) {
      for (const auto& a : allowed) ok |= std::memcmp(a.data(), f[6].data(), 32) == 0;
    }
    std::string version = f.size() > 0 ? f[0].to_string() : "1.0";
    std::string rid = f.size() > 1 ? f[1].to_string() : "";
    std::array<zmq::const_buffer, 6> reply = {zmq::buffer(version), zmq::buffer(rid),
                                              zmq::str_buffer(ok ? "200" : "400"),
                                              ok ? zmq::str_buffer("OK") : zmq::str_buffer("client key not allowed"),
                                              zmq::str_buffer(""), zmq::str_buffer("")};
    try {
      zmq::send_multipart(zap, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      break;
    }
  }
}

}  // namespace tessera::transport
