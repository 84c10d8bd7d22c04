// Internal (runtime): the server's model repository -- a directory of atom stores,
// each known by its model hash; atoms load on first use.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tessera/atoms/model.h"

namespace tessera::runtime {

class Repository {
 public:
  // A directory that is itself an atom store is served alone; otherwise every
  // sub-directory holding a manifest.json. NotFound / InvalidArgument name the path.
  void load(const std::string& dir, bool verbose);
  // The model with this hex hash, or nullptr.
  const Model* find(const std::string& hex) const;
  bool empty() const { return models_.empty(); }
  size_t size() const { return models_.size(); }
  std::vector<std::string> hashes() const;

 private:
  std::map<std::string, Model> models_;  // hex hash -> model
};

}  // namespace tessera::runtime
