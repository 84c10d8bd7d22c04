// atoms/manifest.cpp -- manifest.json <-> Manifest, and the atom index derived from it (torch-free).
#include "tessera/atoms/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <limits>
#include <type_traits>

#include "tessera/core/dtype.h"
#include "tessera/core/error.h"

namespace tessera {
using json = nlohmann::json;

namespace {
json tensor_json(const TensorInfo& t) { return {{"shape", t.shape}, {"dtype", t.dtype}, {"bytes", t.bytes}}; }

// Whether a JSON number converts to the integer type I without leaving its range: json's
// get<I> casts, so a float beyond it would be undefined behaviour and an integer beyond it
// would wrap (4294967296 read as atom 0). Anything but a number passes (get names its type).
template <class I>
bool fits(const json& v) {
  using L = std::numeric_limits<I>;
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= static_cast<uint64_t>(L::max());
  if (v.is_number_integer()) {
    const int64_t x = v.get<int64_t>();
    return x >= static_cast<int64_t>(L::min()) && x <= static_cast<int64_t>(L::max());
  }
  if (v.is_number_float()) {  // truncated toward zero, as before; NaN fails both tests
    const double d = v.get<double>();
    return d > static_cast<double>(L::min()) - 1 && d < static_cast<double>(L::max()) + 1;
  }
  return true;
}

template <class T>
struct Element {  // T, or the element type of a list
  using type = T;
};
template <class E>
struct Element<std::vector<E>> {
  using type = E;
};
template <class T>
inline constexpr bool kInteger = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The first number in `v` (a T, or a list of them) that does not fit T's integers, or null.
template <class T>
const json* out_of_range(const json& v) {
  using E = typename Element<T>::type;
  if constexpr (kInteger<T>) {
    return fits<T>(v) ? nullptr : &v;
  } else if constexpr (!std::is_same_v<E, T> && kInteger<E>) {
    if (v.is_array())
      for (const auto& x : v)
        if (!fits<E>(x)) return &x;
  }
  return nullptr;
}

template <class T>
T get(const json& j, const char* key, const std::string& where) {
  TESSERA_CHECK(j.contains(key), InvalidArgument, "{}: missing field '{}'", where, key);
  const json* bad = out_of_range<T>(j.at(key));
  TESSERA_CHECK(!bad, InvalidArgument, "{}: field '{}' holds {}, out of range for a {}-bit integer", where, key,
                bad ? bad->dump() : "", 8 * sizeof(typename Element<T>::type));
  try {
    return j.at(key).get<T>();
  } catch (const json::exception& e) {
    TESSERA_THROW(InvalidArgument, "{}: field '{}' has the wrong type: {}", where, key, e.what());
  }
}

// An optional string field: `fallback` when `j` has no `key`; InvalidArgument naming the
// field when it has one of another type (json::value would throw a raw json::type_error).
std::string get_or(const json& j, const char* key, const char* fallback, const std::string& where) {
  return j.contains(key) ? get<std::string>(j, key, where) : std::string(fallback);
}

// Every id in a manifest refers to something that exists: a hand-edited or corrupt
// manifest is an error naming the field, never an out-of-range access later.
void check_ids(const Manifest& m, const std::string& mpath) {
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
}  // namespace

std::string manifest_text(const Manifest& m) {
  json j;
  j["format"] = kManifestFormat;
  j["model_hash"] = m.model_hash;
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
  for (const auto& a : m.atoms) {
    json ja = {{"id", a.id}, {"name", a.name}, {"nodes", a.nodes}, {"op_kinds", a.op_kinds},
               {"inputs", a.inputs}, {"outputs", a.outputs}, {"output_bytes", a.output_bytes},
               {"param_bytes", a.param_bytes}, {"file", a.file}, {"sha256", a.sha256}};
    if (!a.params.empty()) ja["params"] = a.params;  // trainable stores only
    atoms.push_back(std::move(ja));
  }
  j["atoms"] = std::move(atoms);
  return j.dump(1);
}

Manifest parse_manifest(const std::string& text, const std::string& mpath,
                        const std::function<void(const Atom&)>& check_atom) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    TESSERA_THROW(InvalidArgument, "{} is not valid JSON: {}", mpath, e.what());
  }
  TESSERA_CHECK(j.is_object(), InvalidArgument, "{}: the manifest is a JSON {}, not an object", mpath, j.type_name());
  const std::string format = get_or(j, "format", "", mpath);
  TESSERA_CHECK(format == kManifestFormat, InvalidArgument, "{}: format is '{}', expected '{}'", mpath, format,
                kManifestFormat);
  Manifest m;
  m.model_hash = get<std::string>(j, "model_hash", mpath);
  m.graph.inputs = get<std::vector<int>>(j, "inputs", mpath);
  m.graph.outputs = get<std::vector<int>>(j, "outputs", mpath);
  m.graph.output_structure = get<std::string>(j, "output_structure", mpath);
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
    m.graph.values.push_back(std::move(v));
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
    n.scope = get_or(nodes[i], "scope", "", w);
    if (nodes[i].contains("rows")) n.rows = get<std::vector<int>>(nodes[i], "rows", w);  // older stores: none
    m.graph.nodes.push_back(std::move(n));
  }
  const auto& jatoms = j.at("atoms");
  const int nv = static_cast<int>(m.graph.values.size());
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
    if (jatoms[i].contains("params")) {  // trainable stores only
      a.params = get<std::vector<std::string>>(jatoms[i], "params", w);
      for (const auto& p : a.params)
        TESSERA_CHECK(!p.empty() && p.size() <= 4096, InvalidArgument, "{}: params: an empty or overlong name", w);
    }
    for (int v : a.inputs) TESSERA_CHECK(v >= 0 && v < nv, InvalidArgument, "{}: input value {} out of range", w, v);
    for (int v : a.outputs) TESSERA_CHECK(v >= 0 && v < nv, InvalidArgument, "{}: output value {} out of range", w, v);
    TESSERA_CHECK(a.file.find('/') == std::string::npos && a.file.find("..") == std::string::npos, InvalidArgument,
                  "{}: file name '{}' must be a plain name inside the store", w, a.file);
    if (check_atom) check_atom(a);
    m.atoms.push_back(std::move(a));
  }
  check_ids(m, mpath);
  return m;
}

AtomIndex index_atoms(const OpGraph& g, const std::vector<Atom>& atoms) {
  AtomIndex ix;
  ix.value_atom.assign(g.values.size(), -1);
  for (const auto& a : atoms)
    for (int v : a.outputs) ix.value_atom[v] = a.id;
  AtomDag& d = ix.dag;
  d.num_atoms = static_cast<int>(atoms.size());
  std::vector<int>& vmap = ix.dag_value_of;
  vmap.assign(g.values.size(), -1);
  auto add = [&](int v) {
    if (vmap[v] >= 0) return;
    vmap[v] = static_cast<int>(d.values.size());
    DagValue dv;
    dv.producer = ix.value_atom[v];
    dv.bytes = static_cast<double>(g.values[v].info.bytes);
    dv.name = g.values[v].name;
    dv.dtype = g.values[v].info.dtype;
    dv.rank = static_cast<int>(g.values[v].info.shape.size());
    // A tensor no wire can carry (a quantized QUInt8 activation of a static-int8 model):
    // priced so that no plan ever cuts there (1e15 bytes); Deployment refuses such plans.
    if (!dv.dtype.empty() && !find_dtype(dv.dtype)) dv.bytes = kUnsendableBytes;
    d.values.push_back(std::move(dv));
  };
  for (int v : g.inputs) add(v);
  for (const auto& a : atoms) {
    for (int v : a.outputs) add(v);
    for (int v : a.inputs) {
      add(v);
      d.values[vmap[v]].consumers.push_back(a.id);
    }
  }
  for (int v : g.outputs) {
    add(v);
    d.values[vmap[v]].is_output = true;
  }
  for (auto& dv : d.values) {
    std::sort(dv.consumers.begin(), dv.consumers.end());
    dv.consumers.erase(std::unique(dv.consumers.begin(), dv.consumers.end()), dv.consumers.end());
  }
  for (const auto& a : atoms) {
    d.param_bytes.push_back(static_cast<double>(a.param_bytes));
    d.atom_names.push_back(a.name);
  }
  d.validate();
  return ix;
}

}  // namespace tessera
