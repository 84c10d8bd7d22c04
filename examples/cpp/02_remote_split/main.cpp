// 02_remote_split: a C++ device that runs the first part of a model and offloads
// the rest to a tessera-server, with fallback to local execution.
//
//   tessera-server REPO &                      # REPO holds STORE (tessera atomize)
//   ./02_remote_split STORE tcp://127.0.0.1:PORT [CUT] [REQUESTS]
//
// The device opens only the atoms it runs (0..CUT-1); the server runs the rest.
#include <torch/torch.h>

#include <iostream>

#include <tessera/runtime/deployment.h>
#include <tessera/tessera.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " STORE ENDPOINT [CUT] [REQUESTS]\n";
    return 2;
  }
  try {
    torch::set_num_threads(1);
    auto full = tessera::Model::open(argv[1], std::vector<int>{});  // manifest only
    const int n = full.num_atoms();
    const int cut = argc > 3 ? std::stoi(argv[3]) : n / 2;
    const int requests = argc > 4 ? std::stoi(argv[4]) : 5;
    std::vector<int> mine(cut), placement(n, 1);
    for (int i = 0; i < cut; ++i) mine[i] = i, placement[i] = 0;
    auto device = tessera::Model::open(argv[1], mine);
    const auto& in = device.graph().values[device.graph().inputs[0]];
    auto x = torch::randn(in.info.shape);
    auto reference = device.run({x});  // loads every atom here, for the check only

    tessera::runtime::DeploymentOptions o;
    o.server = argv[2];
    o.timeout_ms = 5000;
    tessera::runtime::Deployment dep(tessera::Model::open(argv[1], mine), placement, o);
    int correct = 0;
    for (int r = 0; r < requests; ++r) {
      auto y = dep.run({x});
      correct += torch::allclose(y[0], reference[0], 1e-4, 1e-5);
      const auto& tl = dep.last_timeline();
      std::cout << "request " << r << ": " << tl.total_ms << " ms (device " << tl.device_ms << ", link "
                << tl.transfer_ms << ", server " << tl.server_ms << ")" << (tl.fallback ? " FALLBACK" : "") << "\n";
    }
    std::cout << correct << "/" << requests << " correct\n";
    return correct == requests ? 0 : 1;
  } catch (const tessera::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
