// tessera-server: serve a model repository of atom stores to devices.
//
//   tessera-server REPOSITORY [--bind tcp://127.0.0.1:*] [--workers N] [--threads N]
//                  [--max-message-mb N] [--curve-secret-key KEY --allow-key KEY ...]
//                  [--allow-keys-file FILE] [--forward-timeout-ms N] [--batch-max N]
//                  [--batch-delay-us N] [--max-queue N] [--metrics-port N] [--verbose]
//
// Prints "tessera-server listening on ENDPOINT" (with the real port) on stdout
// once it accepts requests; stops cleanly on SIGINT / SIGTERM and prints its
// counters as JSON.
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "tessera/core/error.h"
#include "tessera/core/version.h"
#include "tessera/runtime/server.h"

namespace {
void usage() {
  std::cerr << "usage: tessera-server REPOSITORY [--bind ENDPOINT] [--workers N] [--threads N] [--max-message-mb N]\n"
               "                      [--curve-secret-key KEY] [--allow-key KEY]... [--allow-keys-file FILE]\n"
               "                      [--forward-timeout-ms N] [--batch-max N] [--batch-delay-us N]\n"
               "                      [--max-queue N] [--metrics-port N] [--verbose]\n";
}
}  // namespace

int main(int argc, char** argv) {
  using tessera::runtime::Server;
  using tessera::runtime::ServerOptions;
  ServerOptions o;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto next = [&]() -> std::string {
        TESSERA_CHECK(i + 1 < argc, InvalidArgument, "{} needs a value", a);
        return argv[++i];
      };
      auto next_int = [&]() -> int {  // the whole value an integer, or an error naming the option
        const std::string v = next();
        size_t used = 0;
        int n = 0;
        try {
          n = std::stoi(v, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        TESSERA_CHECK(used == v.size() && !v.empty(), InvalidArgument, "{} takes an integer, got '{}'", a, v);
        return n;
      };
      if (a == "--bind") o.bind = next();
      else if (a == "--workers") o.workers = next_int();
      else if (a == "--threads") o.intra_op_threads = next_int();
      else if (a == "--forward-timeout-ms") o.forward_timeout_ms = next_int();
      else if (a == "--batch-max") o.batch_max = next_int();
      else if (a == "--batch-delay-us") o.batch_delay_us = next_int();
      else if (a == "--max-queue") o.max_queue = next_int();
      else if (a == "--metrics-port") o.metrics_port = next_int();
      else if (a == "--max-message-mb") o.max_message_bytes = static_cast<uint64_t>(std::max(0, next_int())) << 20;
      else if (a == "--curve-secret-key") o.curve_secret_key = next();
      else if (a == "--allow-key") o.allowed_client_keys.push_back(next());
      else if (a == "--allow-keys-file") {
        std::string path = next();
        std::ifstream f(path);
        TESSERA_CHECK(f.good(), NotFound, "cannot read keys file {}", path);
        for (std::string line; std::getline(f, line);)
          if (!line.empty() && line[0] != '#') o.allowed_client_keys.push_back(line.substr(0, 40));
      } else if (a == "--verbose") o.verbose = true;
      else if (a == "--version") {
        std::printf("tessera-server %s (wire protocol v%d, atom store format %s)\n", tessera::kVersionString,
                    tessera::kWireProtocolVersion, tessera::kAtomStoreFormat);
        return 0;
      } else if (a == "-h" || a == "--help") {
        usage();
        return 0;
      } else if (!a.empty() && a[0] == '-') {
        TESSERA_THROW(InvalidArgument, "unknown option {}", a);
      } else {
        TESSERA_CHECK(o.repository.empty(), InvalidArgument, "one repository only (got {} and {})", o.repository, a);
        o.repository = a;
      }
    }
    if (o.repository.empty()) {
      usage();
      return 2;
    }
    // Block the stop signals in every thread; the main thread waits for them.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    Server server(o);
    server.start();
    const std::string metrics =
        server.metrics_endpoint().empty() ? "" : ", metrics on " + server.metrics_endpoint() + "/metrics";
    std::printf("tessera-server listening on %s (%zu models, %d workers%s)\n", server.endpoint().c_str(),
                server.models().size(), o.workers, metrics.c_str());
    std::fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    server.stop();
    std::printf("%s\n", server.stats().to_json().c_str());
    return 0;
  } catch (const tessera::Error& e) {
    std::cerr << "tessera-server: error: " << e.message() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "tessera-server: error: " << e.what() << "\n";
    return 1;
  }
}
