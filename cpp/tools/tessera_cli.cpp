// tessera-native: the engine's command line for machines without Python.
//
//   tessera-native inspect MODEL.pt 1x3x224x224 [MORE_SHAPES...]   op/atom table
//   tessera-native atomize MODEL.pt DIR 1x3x224x224 [...]            write an atom store
//   tessera-native open DIR                                          summary of a store
// Example inputs are float32 tensors of the given shapes (random normal).
#include <torch/torch.h>

#include <iostream>

#include "tessera/tessera.h"

namespace {
std::vector<int64_t> parse_shape(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t x = s.find('x', pos);
    std::string part = s.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    try {
      size_t used = 0;
      long long v = std::stoll(part, &used);
      TESSERA_CHECK(used == part.size() && v > 0, InvalidArgument, "bad shape '{}'", s);
      out.push_back(v);
    } catch (const std::logic_error&) {
      TESSERA_THROW(InvalidArgument, "bad shape '{}': expected sizes joined by 'x', e.g. 1x3x224x224", s);
    }
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return out;
}

void print_atoms(const tessera::Model& m) {
  std::cout << fmt::format("{:>5}  {:<36} {:>4}  {:>12}  {:>12}\n", "atom", "ops", "in", "out bytes", "param bytes");
  for (const auto& a : m.atoms()) {
    std::string ops = fmt::format("{}", fmt::join(a.op_kinds, ","));
    if (ops.size() > 36) ops = ops.substr(0, 33) + "...";
    std::cout << fmt::format("{:>5}  {:<36} {:>4}  {:>12}  {:>12}\n", a.id, ops, a.inputs.size(), a.output_bytes,
                             a.param_bytes);
  }
  std::cout << fmt::format("{} atoms, {} compute ops, model hash {}\n", m.num_atoms(), m.graph().num_compute_nodes(),
                           m.hash().substr(0, 16));
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.size() >= 3 && (args[0] == "inspect" || args[0] == "atomize")) {
      size_t first_shape = args[0] == "inspect" ? 2 : 3;
      TESSERA_CHECK(args.size() > first_shape, InvalidArgument, "missing input shape");
      std::vector<at::Tensor> xs;
      for (size_t i = first_shape; i < args.size(); ++i) xs.push_back(torch::randn(parse_shape(args[i])));
      auto m = tessera::Model::load(args[1], xs);
      if (args[0] == "inspect") {
        std::cout << m.graph().summary();
        print_atoms(m);
      } else {
        m.save(args[2]);
        std::cout << fmt::format("wrote {} atoms to {}\n", m.num_atoms(), args[2]);
      }
      return 0;
    }
    if (args.size() == 2 && args[0] == "open") {
      auto m = tessera::Model::open(args[1]);
      print_atoms(m);
      return 0;
    }
    std::cerr << "usage: tessera-native inspect MODEL.pt SHAPE...\n"
                 "       tessera-native atomize MODEL.pt DIR SHAPE...\n"
                 "       tessera-native open DIR\n";
    return 2;
  } catch (const tessera::Error& e) {
    std::cerr << "error: " << e.message() << "\n";
    return 1;
  }
}
