// atoms/rows.cpp -- row chains for intra-layer splits (see tessera/atoms/rows.h).
#include "tessera/atoms/rows.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace tessera {

std::optional<RowChain> row_chain(const OpGraph& g, const std::vector<Atom>& atoms, std::vector<int> ids,
                                  std::string* why) {
  auto no = [&](std::string reason) -> std::optional<RowChain> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  if (ids.empty()) return no("no atoms");
  const std::set<int> in_set(ids.begin(), ids.end());
  auto atom_of_value = [&](int v) {
    const int p = g.values[v].producer;
    return p < 0 ? -1 : g.nodes[p].atom;
  };
  std::vector<int> nodes, inputs, outputs;
  const std::set<int> model_outputs(g.outputs.begin(), g.outputs.end());
  for (int a : ids) {
    if (a < 0 || a >= static_cast<int>(atoms.size())) return no(fmt::format("atom {} out of range", a));
    nodes.insert(nodes.end(), atoms[a].nodes.begin(), atoms[a].nodes.end());
    for (int v : atoms[a].inputs)
      if (!in_set.count(atom_of_value(v)) && std::find(inputs.begin(), inputs.end(), v) == inputs.end())
        inputs.push_back(v);
    for (int v : atoms[a].outputs) {
      bool outside = model_outputs.count(v) > 0;
      for (int c : g.values[v].consumers) outside |= g.nodes[c].atom >= 0 && !in_set.count(g.nodes[c].atom);
      if (outside) outputs.push_back(v);
    }
  }
  if (inputs.size() != 1) return no(fmt::format("{} tensors enter the atoms (a row chain reads one)", inputs.size()));
  if (outputs.size() != 1) return no(fmt::format("{} tensors leave the atoms (a row chain makes one)", outputs.size()));
  RowChain rc;
  rc.input = inputs[0], rc.output = outputs[0];
  const auto& vin = g.values[rc.input].info, &vout = g.values[rc.output].info;
  if (vin.shape.size() != 4 || vout.shape.size() != 4)
    return no(fmt::format("the chain's input or output is not 4-D (NCHW): rank {} -> {}", vin.shape.size(),
                          vout.shape.size()));
  rc.rows_in = static_cast<int>(vin.shape[2]), rc.rows_out = static_cast<int>(vout.shape[2]);
  std::sort(nodes.begin(), nodes.end());
  int cur = rc.input;
  for (int nid : nodes) {
    const OpNode& n = g.nodes[nid];
    if (n.rows.size() != 4)
      return no(fmt::format("atom {} ({}) is not row-local", n.atom, n.kind));
    std::vector<int> live;  // tensor arguments computed at run time (not constants, weights or helpers)
    for (int v : n.args) {
      const auto& val = g.values[v];
      if (!val.is_tensor) continue;
      if (val.producer >= 0 && g.nodes[val.producer].helper) continue;
      if (std::find(live.begin(), live.end(), v) == live.end()) live.push_back(v);
    }
    if (live.size() != 1 || live[0] != cur)
      return no(fmt::format("atom {} ({}) does not read the chain's previous tensor alone", n.atom, n.kind));
    std::vector<int> outs;
    for (int v : n.outputs)
      if (g.values[v].is_tensor) outs.push_back(v);
    if (outs.size() != 1) return no(fmt::format("atom {} ({}) makes {} tensors", n.atom, n.kind, outs.size()));
    rc.rows.push_back(n.rows);
    rc.kinds.push_back(n.kind);
    cur = outs[0];
  }
  if (cur != rc.output) return no("the path of operators does not end at the atoms' output");
  return rc;
}

}  // namespace tessera
