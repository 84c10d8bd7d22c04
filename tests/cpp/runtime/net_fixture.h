// A small convolutional net atomized into a temporary repository, a server option set
// for it, and raw wire requests of the whole model (runtime tests share these).
#pragma once

#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>

#include "tessera/runtime/server.h"
#include "tessera/tessera.h"
#include "tessera/transport/wire.h"

namespace tessera_test {
namespace fs = std::filesystem;
using namespace tessera;
using namespace tessera::runtime;
using namespace tessera::transport;

inline std::string net_bytes() {
  torch::manual_seed(1);
  torch::jit::Module m("Net");
  m.register_parameter("w1", torch::randn({8, 3, 3, 3}), false);
  m.register_parameter("w2", torch::randn({8, 8, 3, 3}), false);
  m.register_parameter("fc", torch::randn({10, 8}), false);
  m.define(R"(
    def forward(self, x):
        a = torch.relu(torch.conv2d(x, self.w1, None, [1, 1], [1, 1]))
        b = torch.relu(torch.conv2d(a, self.w2, None, [1, 1], [1, 1])) + a
        p = torch.flatten(torch.adaptive_avg_pool2d(b, [1, 1]), 1)
        return torch.matmul(p, self.fc.t())
  )");
  std::ostringstream os;
  m.save(os);
  return os.str();
}

struct Fixture : ::testing::Test {
  fs::path repo;
  std::unique_ptr<Model> model;
  torch::Tensor x = torch::randn({1, 3, 8, 8});
  void SetUp() override {
    at::set_num_threads(1);
    repo = fs::temp_directory_path() / fmt::format("tessera_rt_{}", ::getpid());
    fs::remove_all(repo);
    model = std::make_unique<Model>(Model::load_bytes(net_bytes(), {x}));
    model->save((repo / "net").string());
  }
  void TearDown() override { fs::remove_all(repo); }
  ServerOptions options() const {
    ServerOptions o;
    o.repository = repo.string();
    o.bind = "tcp://127.0.0.1:*";
    return o;
  }
  // A raw Request of the whole model on x, as the wire has it: header, atom ids,
  // descriptors (send the tensor x itself as the last frame).
  std::array<std::string, 3> whole_model_request(uint64_t id, int64_t budget_us) const {
    std::vector<int> all(model->num_atoms());
    for (int a = 0; a < model->num_atoms(); ++a) all[a] = a;
    TensorDesc d;
    d.dtype = dtype_code("float32");
    d.dims.assign(x.sizes().begin(), x.sizes().end());
    d.nbytes = x.nbytes();
    Header h;
    h.type = MsgType::Request;
    h.request_id = id;
    h.model_hash = hash_from_hex(model->hash());
    h.atom_count = static_cast<uint32_t>(all.size());
    h.tensor_count = 1;
    h.budget_us = budget_us;
    return {encode_header(h), encode_atoms(all), encode_descs({d})};
  }
};

}  // namespace tessera_test
