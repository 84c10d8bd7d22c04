// atoms/store.cpp -- the atom store: a self-describing directory.
//
//   DIR/manifest.json    format, model hash, op graph (nodes, values, shapes,
//                        dtypes, bytes), atoms (inputs, outputs, bytes,
//                        parameter bytes, file, sha256 of the file)
//   DIR/atom_NNNN.pt     one TorchScript module per atom:
//                        forward(self, *inputs) -> tuple(outputs)
//
// Written into a temporary sibling directory and renamed into place, so a
// crash never leaves a half-written store. Every atom file's sha256 is checked
// when it is loaded; a tampered or truncated file is refused by name. The manifest's
// JSON is read and checked by parse_manifest (atoms/manifest.cpp, torch-free).
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "model_impl.h"
#include "tessera/atoms/manifest.h"
#include "tessera/core/error.h"
#include "tessera/core/files.h"

namespace tessera {
namespace jit = torch::jit;
namespace fs = std::filesystem;

// ---- atom modules ---------------------------------------------------------------
jit::Module atom_module(const jit::Graph& atom_graph, int atom_id, const std::vector<at::Tensor>& params) {
  auto cu = std::make_shared<jit::CompilationUnit>();
  jit::Module m(c10::QualifiedName(fmt::format("__torch__.tessera.Atom{}", atom_id)), cu, false);
  m.register_attribute("training", c10::BoolType::get(), false);
  for (size_t k = 0; k < params.size(); ++k) m.register_parameter(fmt::format("p{}", k), params[k].detach(), false);
  auto g = std::make_shared<jit::Graph>();
  auto* self = g->addInput("self");
  self->setType(m.type());
  std::vector<jit::Value*> ins;
  const size_t n_act = atom_graph.inputs().size() - params.size();
  for (size_t i = 0; i < n_act; ++i) {
    auto* v = atom_graph.inputs()[i];
    auto* x = g->addInput(usable_name(v->debugName()));
    x->setType(v->type());
    ins.push_back(x);
  }
  for (size_t k = 0; k < params.size(); ++k)
    ins.push_back(g->insertNode(g->createGetAttr(self, fmt::format("p{}", k)))->output());
  auto outs = jit::insertGraph(*g, const_cast<jit::Graph&>(atom_graph), ins);
  auto* tup = g->insertNode(g->createTuple(outs));
  g->registerOutput(tup->output());
  auto* fn = cu->create_function(c10::QualifiedName(*m.type()->name(), "forward"), g);
  m.type()->addMethod(fn);
  return m;
}

std::shared_ptr<jit::Graph> atom_graph_from_module(const jit::Module& m, size_t n_params,
                                                   std::vector<at::Tensor>* params) {
  auto g = m.get_method("forward").graph()->copy();
  TESSERA_CHECK(!g->inputs().empty(), InvalidArgument, "atom module has no self");
  if (n_params > 0) {  // a trainable atom: its parameters p0.. become the last inputs
    std::vector<jit::Value*> ins;
    for (size_t k = 0; k < n_params; ++k) {
      const std::string name = fmt::format("p{}", k);
      TESSERA_CHECK(m.hasattr(name) && m.attr(name).isTensor(), InvalidArgument,
                    "trainable atom module has no parameter {} (the manifest names {})", name, n_params);
      params->push_back(m.attr(name).toTensor().detach());
      ins.push_back(g->addInput());
      ins.back()->setType(c10::TensorType::get());
    }
    std::vector<jit::Node*> reads;
    for (const auto& use : g->inputs()[0]->uses()) reads.push_back(use.user);
    for (auto* n : reads) {
      TESSERA_CHECK(n->kind() == c10::prim::GetAttr, InvalidArgument, "trainable atom module uses self in {}",
                    n->kind().toQualString());
      const std::string& name = n->s(c10::attr::name);
      size_t k = n_params;
      if (name.size() > 1 && name[0] == 'p') k = std::strtoul(name.c_str() + 1, nullptr, 10);
      TESSERA_CHECK(k < n_params, InvalidArgument, "trainable atom module reads self.{}, not one of its parameters",
                    name);
      n->output()->replaceAllUsesWith(ins[k]);
      n->destroy();
    }
  }
  TESSERA_CHECK(!g->inputs()[0]->hasUses(), InvalidArgument, "atom module uses self");
  g->eraseInput(0);
  TESSERA_CHECK(g->outputs().size() == 1, InvalidArgument, "atom module must return one tuple");
  jit::Value* out = g->outputs()[0];
  jit::Node* tup = out->node();
  g->eraseOutput(0);
  if (tup->kind() == c10::prim::TupleConstruct) {
    for (auto* v : tup->inputs()) g->registerOutput(v);
    if (!out->hasUses()) tup->destroy();
  } else {
    // a tuple constant or pass-through; unpack at run time
    auto* un = g->insertNode(g->createTupleUnpack(out));
    for (auto* v : un->outputs()) g->registerOutput(v);
  }
  return g;
}

void save_store(const ModelImpl& m, const std::string& dir, bool overwrite) {
  fs::path target = fs::absolute(dir).lexically_normal();
  if (target.has_filename() == false) target = target.parent_path();
  std::error_code ec;
  TESSERA_CHECK(overwrite || !fs::exists(target, ec), InvalidArgument,
                "atom store {} exists already (overwrite it: Model.save(..., overwrite=True), "
                "tessera atomize --overwrite)",
                target.string());
  if (overwrite && fs::exists(target, ec)) {
    // Overwriting replaces the whole directory: only ever an atom store (or an empty
    // directory), never a directory that happens to be named by mistake.
    const bool is_store = fs::is_directory(target, ec) && fs::exists(target / "manifest.json", ec);
    const bool empty = fs::is_directory(target, ec) && fs::is_empty(target, ec);
    TESSERA_CHECK(is_store || empty, InvalidArgument,
                  "will not overwrite {}: it is not an atom store (no manifest.json) and not an empty "
                  "directory; nothing was changed",
                  target.string());
  }
  fs::create_directories(target.parent_path(), ec);
  std::random_device rd;
  fs::path tmp = target.parent_path() / fmt::format(".{}.tmp-{:08x}", target.filename().string(), rd());
  fs::create_directories(tmp, ec);
  TESSERA_CHECK(!ec, InvalidArgument, "cannot create directory {}: {}", tmp.string(), ec.message());
  try {
    Manifest man{m.hash, m.graph, m.atoms};  // with the files' hashes
    for (auto& a : man.atoms) {
      std::ostringstream os;
      if (m.trainable) {
        auto g = m.lifted_graph(a.id);
        std::vector<at::Tensor> values;
        {
          std::lock_guard<std::mutex> lock(m.graph_mu);
          for (const auto& p : a.params) values.push_back(m.params.at(p));
        }
        atom_module(*g, a.id, values).save(os);
      } else {
        atom_module(*m.atom_graph(a.id), a.id).save(os);
      }
      std::string bytes = os.str();
      a.sha256 = sha256_hex(bytes.data(), bytes.size());
      std::ofstream f(tmp / a.file, std::ios::binary);
      f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      TESSERA_CHECK(f.good(), Engine, "writing {} failed", (tmp / a.file).string());
    }
    std::ofstream mf(tmp / "manifest.json");
    mf << manifest_text(man);
    mf.close();
    TESSERA_CHECK(mf.good(), Engine, "writing {} failed", (tmp / "manifest.json").string());
    if (fs::exists(target)) {
      fs::path old = target.parent_path() / fmt::format(".{}.old-{:08x}", target.filename().string(), rd());
      fs::rename(target, old);
      fs::rename(tmp, target);
      fs::remove_all(old, ec);
    } else {
      fs::rename(tmp, target);
    }
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
}

std::shared_ptr<ModelImpl> open_store(const std::string& dir, const std::optional<std::vector<int>>& atoms) {
  std::error_code ec;
  TESSERA_CHECK(fs::is_directory(dir, ec), NotFound, "no atom store at {} (not a directory)", dir);
  const std::string mpath = (fs::path(dir) / "manifest.json").string();
  TESSERA_CHECK(fs::exists(mpath, ec), NotFound, "{} is not an atom store: {} is missing", dir, mpath);
  auto m = std::make_shared<ModelImpl>();
  m->store_dir = dir;
  Manifest man = parse_manifest(read_file(mpath), mpath, [&](const Atom& a) {
    TESSERA_CHECK(fs::exists(fs::path(dir) / a.file, ec), NotFound, "atom store {}: atom {} file {} is missing", dir,
                  a.id, a.file);
  });
  m->hash = std::move(man.model_hash);
  m->graph = std::move(man.graph);
  m->atoms = std::move(man.atoms);
  for (const auto& a : m->atoms) m->trainable |= !a.params.empty();
  m->finish();
  if (atoms) {
    for (int a : *atoms) {
      TESSERA_CHECK(a >= 0 && a < static_cast<int>(m->atoms.size()), InvalidArgument,
                    "atom id {} out of range: store {} has {} atoms", a, dir, m->atoms.size());
      m->atom_graph(a);
    }
  } else {
    for (size_t a = 0; a < m->atoms.size(); ++a) m->atom_graph(static_cast<int>(a));
  }
  return m;
}

std::shared_ptr<jit::Graph> ModelImpl::atom_graph(int atom) const {
  TESSERA_CHECK(atom >= 0 && atom < static_cast<int>(atoms.size()), InvalidArgument,
                "atom id {} out of range: the model has {} atoms", atom, atoms.size());
  std::lock_guard<std::mutex> lock(graph_mu);
  if (graphs[atom]) return graphs[atom];
  TESSERA_CHECK(!store_dir.empty(), Engine, "atom {} has no graph and no store to load it from", atom);
  const Atom& a = atoms[atom];
  const std::string path = (fs::path(store_dir) / a.file).string();
  std::string bytes = read_file(path);
  std::string sum = sha256_hex(bytes.data(), bytes.size());
  TESSERA_CHECK(sum == a.sha256, InvalidArgument,
                "atom {} file {} does not match the manifest (sha256 {} expected {}): tampered or truncated", atom,
                path, sum.substr(0, 12), a.sha256.substr(0, 12));
  std::istringstream is(bytes);
  jit::Module mod;
  try {
    mod = jit::load(is);
  } catch (const c10::Error& e) {
    TESSERA_THROW(InvalidArgument, "atom {} file {} is not a TorchScript module: {}", atom, path,
                  e.what_without_backtrace());
  }
  std::vector<at::Tensor> values;
  auto g = atom_graph_from_module(mod, a.params.size(), &values);
  TESSERA_CHECK(g->inputs().size() == a.inputs.size() + a.params.size() && g->outputs().size() == a.outputs.size(),
                InvalidArgument, "atom {} file {} has {} inputs / {} outputs, the manifest says {} / {}", atom, path,
                g->inputs().size(), g->outputs().size(), a.inputs.size() + a.params.size(), a.outputs.size());
  if (trainable) {
    for (size_t k = 0; k < values.size(); ++k) {  // a tied parameter: the one loaded first
      auto [it, fresh] = params.emplace(a.params[k], values[k]);
      if (!fresh) values[k] = it->second;
    }
    lifted[atom] = g;
    if (!values.empty()) g = params_as_constants(*g, values);
  }
  graphs[atom] = g;
  return g;
}

}  // namespace tessera
