// tessera/runtime/transport_bench.h -- loops for the transport benchmark
// (bench/bench_transport.py), timed in C++ so that no Python overhead enters
// either side of the comparison.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "tessera/runtime/deployment.h"

namespace tessera::runtime {

// Round trips of `t` through a tessera server (Echo messages), ms each.
std::vector<double> time_tessera_echo(Deployment& dep, const at::Tensor& t, int repeats);
// Round trips of `bytes` raw bytes through a plain ZeroMQ ROUTER echo, ms each
// (DEALER client, one frame, no header, no descriptors).
std::vector<double> time_raw_echo(const std::string& endpoint, size_t bytes, int repeats);
// Both, interleaved message by message (tessera then raw on even pairs, raw
// then tessera on odd ones), so that drift in the machine's speed hits both
// sides alike: {tessera ms, raw ms}, `pairs` each.
std::pair<std::vector<double>, std::vector<double>> time_echo_pairs(Deployment& dep, const std::string& raw_endpoint,
                                                                     const at::Tensor& t, int pairs);
// A plain ZeroMQ ROUTER echo server; prints "raw-echo listening on ENDPOINT" and
// serves until `max_messages` messages were echoed (or forever if < 0).
void serve_raw_echo(const std::string& bind, long max_messages = -1);

}  // namespace tessera::runtime
