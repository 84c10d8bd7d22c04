// runtime/repository.cpp -- see repository.h.
#include "repository.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "tessera/core/error.h"

namespace tessera::runtime {
namespace fs = std::filesystem;

void Repository::load(const std::string& dir, bool verbose) {
  const fs::path root(dir);
  std::error_code ec;
  TESSERA_CHECK(fs::is_directory(root, ec), NotFound, "model repository {} is not a directory", dir);
  std::vector<fs::path> stores;
  if (fs::exists(root / "manifest.json")) {
    stores.push_back(root);
  } else {
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_directory() && fs::exists(e.path() / "manifest.json")) stores.push_back(e.path());
  }
  std::sort(stores.begin(), stores.end());
  TESSERA_CHECK(!stores.empty(), InvalidArgument, "model repository {} holds no atom store (no manifest.json)", dir);
  for (const auto& p : stores) {
    auto m = Model::open(p.string(), std::vector<int>{});
    if (verbose)
      std::fprintf(stderr, "tessera-server: serving %s (%s, %d atoms)\n", m.hash().substr(0, 12).c_str(),
                   p.filename().c_str(), m.num_atoms());
    models_.emplace(m.hash(), std::move(m));
  }
}

const Model* Repository::find(const std::string& hex) const {
  auto it = models_.find(hex);
  return it == models_.end() ? nullptr : &it->second;
}

std::vector<std::string> Repository::hashes() const {
  std::vector<std::string> out;
  for (const auto& [h, _] : models_) out.push_back(h);
  return out;
}

}  // namespace tessera::runtime
