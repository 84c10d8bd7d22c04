// tessera/transport/security.h -- CURVE keys and the ZAP handler that admits only
// allowed client keys (ZeroMQ's RFC 27 authentication protocol).
#pragma once

#include <future>
#include <string>
#include <utility>
#include <vector>
#include <zmq.hpp>

namespace tessera::transport {

// A new CURVE key pair (Z85 strings of 40 characters): {public, secret}.
std::pair<std::string, std::string> curve_keypair();
// True for a 40-character Z85 string that decodes to a 32-byte key.
bool is_z85_key(const std::string& key);

// Serves ZAP requests on inproc://zeromq.zap.01 of `ctx` until the context shuts
// down: CURVE clients whose public key is in `allowed` (Z85) get 200, others 400.
// `ready` is set once bound (or gets the exception naming why it could not bind).
void run_zap_handler(zmq::context_t& ctx, const std::vector<std::string>& allowed, std::promise<void>& ready);

}  // namespace tessera::transport
