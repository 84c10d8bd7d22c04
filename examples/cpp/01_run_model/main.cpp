// 01_run_model: load a TorchScript model through tessera, cut it into atoms,
// write the atom store, and run it whole and split between two targets.
//
//   ./01_run_model MODEL.pt STORE_DIR [SIZES...]   (default input 1x3x224x224)
#include <torch/torch.h>

#include <iostream>

#include <tessera/tessera.h>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt STORE_DIR [N C H W]\n";
    return 2;
  }
  std::vector<int64_t> shape{1, 3, 224, 224};
  if (argc > 3) {
    shape.clear();
    for (int i = 3; i < argc; ++i) shape.push_back(std::stoll(argv[i]));
  }
  try {
    torch::set_num_threads(1);
    auto x = torch::randn(shape);
    auto m = tessera::Model::load(argv[1], {x});
    std::cout << m.graph().num_compute_nodes() << " operators, " << m.num_atoms() << " atoms\n";
    m.save(argv[2], /*overwrite=*/true);
    auto whole = m.run({x});
    // a device that holds only the first half of the atoms
    const int half = m.num_atoms() / 2;
    std::vector<int> mine(half);
    for (int i = 0; i < half; ++i) mine[i] = i;
    auto device = tessera::Model::open(argv[2], mine);
    std::vector<int> placement(m.num_atoms(), 1);
    for (int i = 0; i < half; ++i) placement[i] = 0;
    auto split = device.run({x}, placement);
    std::cout << "output " << whole[0].sizes() << ", split == whole: " << (torch::equal(split[0], whole[0]) ? "yes" : "no")
              << "\n";
    return torch::equal(split[0], whole[0]) ? 0 : 1;
  } catch (const tessera::Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
