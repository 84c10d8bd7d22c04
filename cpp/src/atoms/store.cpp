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
// when it is loaded; a tampered or truncated file is refused by name.
#include <nlohmann/json.hpp>

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "model_impl.h"
#include "tessera/core/error.h"
#include "tessera/core/files.h"

namespace tessera {
namespace jit = torch::jit;
namespace fs = std::filesystem;
using json = nlohmann::json;

// ---- atom modules ---------------------------------------------------------------
jit::Module atom_module(const jit::Graph& atom_graph, int atom_id) {
  auto cu = std::make_shared<jit::CompilationUnit>();
  jit::Module m(c10::QualifiedName(fmt::format("__torch__.tessera.Atom{}", atom_id)), cu, false);
  m.register_attribute("training", c10::BoolType::get(), false);
  auto g = std::make_shared<jit::Graph>();
  g->addInput("self")->setType(m.type());
  std::vector<jit::Value*> ins;
  for (auto* v : atom_graph.inputs()) {
    auto* x = g->addInput(usable_name(v->debugName()));
    x->setType(v->type());
    ins.push_back(x);
  }
  auto outs = jit::insertGraph(*g, const_cast<jit::Graph&>(atom_graph), ins);
  auto* tup = g->insertNode(g->createTuple(outs));
  g->registerOutput(tup->output());
  auto* fn = cu->create_function(c10::QualifiedName(*m.type()->name(), "forward"), g);
  m.type()->addMethod(fn);
  return m;
}

std::shared_ptr<jit::Graph> atom_graph_from_module(const jit::Module& m) {
  auto g = m.get_method("forward").graph()->copy();
  TESSERA_CHECK(!g->inputs().empty() && !g->inputs()[0]->hasUses(), InvalidArgument,
                "atom module uses self");
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

// ---- manifest -----------------------------------------------------------------------
namespace {
constexpr const char* kFormat = "tessera-atom-store/1";

json tensor_json(const TensorInfo& t) { return {{"shape", t.shape}, {"dtype", t.dtype}, {"bytes", t.bytes}}; }

json manifest_json(const ModelImpl& m) {
  json j;
  j["format"] = kFormat;
  j["model_hash"] = m.hash;
  j["inputs"] = m.graph.inputs;
  j["outputs"] = m.graph.outputs;
  j["output_structure"] = m.graph.output_structure;
  json vals = json::array();
  for (const auto& v : m.graph.values) {
    json jv = {{"name", v.name}, {"type", v.type}, {"is_tensor", v.is_tensor}, {"producer", v.producer},
               {"consumers", v.consumers}};
    if (v.is_tensor) jv["tensor"] = tensor_json(v.info);
    vals.push_back(std::move(jv));
  }
  j["values"] = std::move(vals);
  json nodes = json::array();
  for (const auto& n : m.graph.nodes)
    nodes.push_back({{"kind", n.kind}, {"inputs", n.inputs}, {"args", n.args}, {"outputs", n.outputs}, {"helper", n.helper},
                     {"atom", n.atom}, {"scope", n.scope}, {"rows", n.rows}});
  j["nodes"] = std::move(nodes);
  json atoms = json::array();
  for (const auto& a : m.atoms)
    atoms.push_back({{"id", a.id}, {"name", a.name}, {"nodes", a.nodes}, {"op_kinds", a.op_kinds},
                     {"inputs", a.inputs}, {"outputs", a.outputs}, {"output_bytes", a.output_bytes},
                     {"param_bytes", a.param_bytes}, {"file", a.file}, {"sha256", a.sha256}});
  j["atoms"] = std::move(atoms);
  return j;
}

template <class T>
T get(const json& j, const char* key, const std::string& where) {
  TESSERA_CHECK(j.contains(key), InvalidArgument, "{}: missing field '{}'", where, key);
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    TESSERA_THROW(InvalidArgument, "{}: field '{}' has the wrong type: {}", where, key, e.what());
  }
}
}  // namespace

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
    ModelImpl copy_meta;  // manifest with the files' hashes
    copy_meta.graph = m.graph;
    copy_meta.atoms = m.atoms;
    copy_meta.hash = m.hash;
    for (auto& a : copy_meta.atoms) {
      auto g = m.atom_graph(a.id);
      std::ostringstream os;
      atom_module(*g, a.id).save(os);
      std::string bytes = os.str();
      a.sha256 = sha256_hex(bytes.data(), bytes.size());
      std::ofstream f(tmp / a.file, std::ios::binary);
      f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
      TESSERA_CHECK(f.good(), Runtime, "writing {} failed", (tmp / a.file).string());
    }
    std::ofstream mf(tmp / "manifest.json");
    mf << manifest_json(copy_meta).dump(1);
    mf.close();
    TESSERA_CHECK(mf.good(), Runtime, "writing {} failed", (tmp / "manifest.json").string());
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

// Every id in a manifest refers to something that exists: a hand-edited or corrupt
// manifest is an error naming the field, never an out-of-range access later.
static void check_ids(const ModelImpl& m, const std::string& mpath) {
  const int nv = static_cast<int>(m.graph.values.size()), nn = static_cast<int>(m.graph.nodes.size());
  const int na = static_cast<int>(m.atoms.size());
  auto value = [&](int v, const std::string& where) {
    TESSERA_CHECK(v >= 0 && v < nv, InvalidArgument, "{}: {} names value {}, the graph has {} values", mpath, where, v,
                  nv);
  };
  for (int v : m.graph.inputs) value(v, "inputs");
  for (int v : m.graph.outputs) value(v, "outputs");
  for (const auto& v : m.graph.values) {
    TESSERA_CHECK(v.producer >= -1 && v.producer < nn, InvalidArgument,
                  "{}: values[{}] has producer {}, the graph has {} nodes", mpath, v.id, v.producer, nn);
    for (int c : v.consumers)
      TESSERA_CHECK(c >= 0 && c < nn, InvalidArgument, "{}: values[{}] has consumer {}, the graph has {} nodes",
                    mpath, v.id, c, nn);
  }
  for (const auto& n : m.graph.nodes) {
    for (int v : n.inputs) value(v, fmt::format("nodes[{}].inputs", n.id));
    for (int v : n.args) value(v, fmt::format("nodes[{}].args", n.id));
    for (int v : n.outputs) value(v, fmt::format("nodes[{}].outputs", n.id));
    TESSERA_CHECK(n.atom >= -1 && n.atom < na, InvalidArgument, "{}: nodes[{}] is in atom {}, the store has {} atoms",
                  mpath, n.id, n.atom, na);
  }
  for (const auto& a : m.atoms)
    for (int n : a.nodes)
      TESSERA_CHECK(n >= 0 && n < nn && m.graph.nodes[n].atom == a.id, InvalidArgument,
                    "{}: atoms[{}] lists node {}, which is not one of its nodes ({} nodes in the graph)", mpath, a.id,
                    n, nn);
}

std::shared_ptr<ModelImpl> open_store(const std::string& dir, const std::optional<std::vector<int>>& atoms) {
  std::error_code ec;
  TESSERA_CHECK(fs::is_directory(dir, ec), NotFound, "no atom store at {} (not a directory)", dir);
  const std::string mpath = (fs::path(dir) / "manifest.json").string();
  TESSERA_CHECK(fs::exists(mpath, ec), NotFound, "{} is not an atom store: {} is missing", dir, mpath);
  json j;
  try {
    j = json::parse(read_file(mpath));
  } catch (const json::exception& e) {
    TESSERA_THROW(InvalidArgument, "{} is not valid JSON: {}", mpath, e.what());
  }
  TESSERA_CHECK(j.value("format", "") == kFormat, InvalidArgument, "{}: format is '{}', expected '{}'", mpath,
                j.value("format", ""), kFormat);
  auto m = std::make_shared<ModelImpl>();
  m->store_dir = dir;
  m->hash = get<std::string>(j, "model_hash", mpath);
  m->graph.inputs = get<std::vector<int>>(j, "inputs", mpath);
  m->graph.outputs = get<std::vector<int>>(j, "outputs", mpath);
  m->graph.output_structure = get<std::string>(j, "output_structure", mpath);
  for (const char* key : {"values", "nodes", "atoms"})
    TESSERA_CHECK(j.contains(key) && j.at(key).is_array(), InvalidArgument, "{}: field '{}' is missing or not a list",
                  mpath, key);
  const auto& vals = j.at("values");
  for (size_t i = 0; i < vals.size(); ++i) {
    const auto& jv = vals[i];
    std::string w = fmt::format("{}: values[{}]", mpath, i);
    OpValue v;
    v.id = static_cast<int>(i);
    v.name = get<std::string>(jv, "name", w);
    v.type = get<std::string>(jv, "type", w);
    v.is_tensor = get<bool>(jv, "is_tensor", w);
    v.producer = get<int>(jv, "producer", w);
    v.consumers = get<std::vector<int>>(jv, "consumers", w);
    if (v.is_tensor) {
      TESSERA_CHECK(jv.contains("tensor") && jv.at("tensor").is_object(), InvalidArgument,
                    "{}: a tensor value without its 'tensor' field", w);
      const auto& t = jv.at("tensor");
      v.info.shape = get<std::vector<int64_t>>(t, "shape", w);
      v.info.dtype = get<std::string>(t, "dtype", w);
      v.info.bytes = get<int64_t>(t, "bytes", w);
    }
    m->graph.values.push_back(std::move(v));
  }
  const auto& nodes = j.at("nodes");
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::string w = fmt::format("{}: nodes[{}]", mpath, i);
    OpNode n;
    n.id = static_cast<int>(i);
    n.kind = get<std::string>(nodes[i], "kind", w);
    n.inputs = get<std::vector<int>>(nodes[i], "inputs", w);
    n.args = nodes[i].contains("args") ? get<std::vector<int>>(nodes[i], "args", w) : n.inputs;  // older stores
    n.outputs = get<std::vector<int>>(nodes[i], "outputs", w);
    n.helper = get<bool>(nodes[i], "helper", w);
    n.atom = get<int>(nodes[i], "atom", w);
    n.scope = nodes[i].value("scope", "");
    if (nodes[i].contains("rows")) n.rows = get<std::vector<int>>(nodes[i], "rows", w);  // older stores: none
    m->graph.nodes.push_back(std::move(n));
  }
  const auto& jatoms = j.at("atoms");
  const int nv = static_cast<int>(m->graph.values.size());
  for (size_t i = 0; i < jatoms.size(); ++i) {
    std::string w = fmt::format("{}: atoms[{}]", mpath, i);
    Atom a;
    a.id = get<int>(jatoms[i], "id", w);
    TESSERA_CHECK(a.id == static_cast<int>(i), InvalidArgument, "{}: id {} out of order", w, a.id);
    a.name = get<std::string>(jatoms[i], "name", w);
    a.nodes = get<std::vector<int>>(jatoms[i], "nodes", w);
    a.op_kinds = get<std::vector<std::string>>(jatoms[i], "op_kinds", w);
    a.inputs = get<std::vector<int>>(jatoms[i], "inputs", w);
    a.outputs = get<std::vector<int>>(jatoms[i], "outputs", w);
    a.output_bytes = get<int64_t>(jatoms[i], "output_bytes", w);
    a.param_bytes = get<int64_t>(jatoms[i], "param_bytes", w);
    a.file = get<std::string>(jatoms[i], "file", w);
    a.sha256 = get<std::string>(jatoms[i], "sha256", w);
    for (int v : a.inputs) TESSERA_CHECK(v >= 0 && v < nv, InvalidArgument, "{}: input value {} out of range", w, v);
    for (int v : a.outputs) TESSERA_CHECK(v >= 0 && v < nv, InvalidArgument, "{}: output value {} out of range", w, v);
    TESSERA_CHECK(a.file.find('/') == std::string::npos && a.file.find("..") == std::string::npos, InvalidArgument,
                  "{}: file name '{}' must be a plain name inside the store", w, a.file);
    TESSERA_CHECK(fs::exists(fs::path(dir) / a.file, ec), NotFound, "atom store {}: atom {} file {} is missing", dir,
                  a.id, a.file);
    m->atoms.push_back(std::move(a));
  }
  check_ids(*m, mpath);
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
  TESSERA_CHECK(!store_dir.empty(), Runtime, "atom {} has no graph and no store to load it from", atom);
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
  auto g = atom_graph_from_module(mod);
  TESSERA_CHECK(g->inputs().size() == a.inputs.size() && g->outputs().size() == a.outputs.size(), InvalidArgument,
                "atom {} file {} has {} inputs / {} outputs, the manifest says {} / {}", atom, path,
                g->inputs().size(), g->outputs().size(), a.inputs.size(), a.outputs.size());
  graphs[atom] = g;
  return g;
}

}  // namespace tessera
