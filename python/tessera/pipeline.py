"""N-node pipelines: place a model over a device and several servers (planning; issue 14).

    nodes = [ts.Node("phone", costs=phone_ms, memory_mb=300),             # the input source; results return here
             ts.Node("edge-a", costs=a_ms),
             ts.Node("edge-b", speed=0.5, reference=ct)]                   # costs from a reference profile
    net = ts.Network(nodes, links={("phone", "edge-a"): ts.Link(bandwidth_mbps=20, rtt_ms=10),
                                   ("edge-a", "edge-b"): ts.Link(bandwidth_mbps=1000, rtt_ms=1)})  # others: unreachable
    plan = ts.plan_pipeline(m, net, objective="throughput", algorithm="dp")   # dp | pso_dp | exhaustive | equal_layers
    plan.stages          # [(node name, [atom ids])] in pipeline order
    plan.throughput_fps, plan.latency_ms, plan.bottleneck, plan.explain()

Stages are contiguous runs of the atoms' topological order; the values live across a cut travel on
the link between the two stages' nodes, and the model's outputs go back to the first node. Links
are symmetric unless ``symmetric=False``. The runtime for pipelines is not built yet.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from . import _core

__all__ = ["Node", "Network", "PipelinePlan", "plan_pipeline"]


@dataclass
class Node:
    """A machine of the pipeline: per-atom costs (ms), or a speed factor over a reference profile
    (a CostTable or per-atom ms: costs = reference / speed), and the memory it may use for weights."""
    name: str
    costs: list | None = None
    speed: float | None = None
    reference: object = None
    memory_mb: float | None = None
    endpoint: str = ""

    def atom_ms(self, num_atoms: int) -> list[float]:
        if self.costs is not None:
            if self.speed is not None or self.reference is not None:
                raise _core.InvalidArgumentError(f"node '{self.name}': give costs, or speed and reference, not both")
            ms = [float(c) for c in self.costs]
        else:
            if self.speed is None or self.reference is None:
                raise _core.InvalidArgumentError(f"node '{self.name}' needs costs=, or speed= and reference=")
            if not (self.speed > 0 and math.isfinite(self.speed)):
                raise _core.InvalidArgumentError(f"node '{self.name}': speed = {self.speed} must be > 0")
            ref = getattr(self.reference, "atom_ms", self.reference)
            ms = [float(c) / self.speed for c in ref]
        if len(ms) != num_atoms:
            raise _core.InvalidArgumentError(f"node '{self.name}' has {len(ms)} atom costs, the model has "
                                             f"{num_atoms} atoms")
        return ms


class Network:
    """Nodes (the first is the device: it holds the inputs and gets the results) and the links
    between them: {(a, b): ts.Link(...) or (bandwidth_mbps, rtt_ms)}; pairs not given are unreachable."""

    def __init__(self, nodes, links: dict, symmetric: bool = True):
        self.nodes = list(nodes)
        if not self.nodes:
            raise _core.InvalidArgumentError("a network needs at least the device")
        names = [n.name for n in self.nodes]
        if len(set(names)) != len(names):
            raise _core.InvalidArgumentError(f"node names repeat: {names}")
        self.links = {}
        for (a, b), link in links.items():
            for x in (a, b):
                if x not in names:
                    raise _core.InvalidArgumentError(f"link ({a!r}, {b!r}) names an unknown node {x!r} "
                                                     f"(nodes: {', '.join(names)})")
            if a == b:
                raise _core.InvalidArgumentError(f"node {a!r} has a link to itself")
            if hasattr(link, "_core"):
                bw, rtt = link._core.spec.bandwidth_mbps, link.rtt_ms
                if link._core.spec.trace:
                    raise _core.InvalidArgumentError(f"link ({a!r}, {b!r}): a pipeline plans with a constant link")
            else:
                bw, rtt = link
            self.links[(a, b)] = (float(bw), float(rtt))
            if symmetric:
                self.links.setdefault((b, a), (float(bw), float(rtt)))
        self.names = names
        reach, todo = {names[0]}, [names[0]]  # every node reachable from the device, and back to it
        while todo:
            a = todo.pop()
            for (x, y) in self.links:
                if x == a and y not in reach:
                    reach.add(y)
                    todo.append(y)
        lost = [n for n in names if n not in reach]
        if lost:
            raise _core.InvalidArgumentError(f"node(s) {', '.join(lost)} cannot be reached from {names[0]} "
                                             f"(the input source) through the links given")

    def core(self, num_atoms: int) -> "_core.PipelineNetwork":
        net = _core.PipelineNetwork()
        K = len(self.nodes)
        nodes = []
        for n in self.nodes:
            c = _core.PipelineNode()
            c.name = n.name
            c.compute_ms = n.atom_ms(num_atoms)
            c.memory_bytes = math.inf if n.memory_mb is None else float(n.memory_mb) * 1e6
            nodes.append(c)
        net.nodes = nodes
        bw = [[0.0] * K for _ in range(K)]
        rtt = [[0.0] * K for _ in range(K)]
        for (a, b), (x, r) in self.links.items():
            i, j = self.names.index(a), self.names.index(b)
            bw[i][j], rtt[i][j] = x, r
        net.bandwidth_mbps = bw
        net.rtt_ms = rtt
        return net


class PipelinePlan:
    """A pipeline plan: stages [(node name, [atom ids])], throughput, latency, bottleneck."""

    def __init__(self, core, net: "_core.PipelineNetwork"):
        self._core, self._net = core, net
        names = [n.name for n in net.nodes]
        self.stages = [(names[s.node], list(s.atoms)) for s in core.stages]

    def __getattr__(self, name):  # algorithm, status, reason, throughput_fps, latency_ms, bottleneck, ...
        return getattr(self._core, name)

    def explain(self) -> str:
        return self._core.explain(self._net)

    def __repr__(self):
        return (f"PipelinePlan({self._core.algorithm}, {self._core.status}, {self._core.throughput_fps:.2f} fps, "
                f"{len(self.stages)} stages)")


def plan_pipeline(model, network: Network, objective: str = "throughput", algorithm: str = "dp",
                  order=None) -> PipelinePlan:
    """Place `model` over the network's nodes. algorithm: "dp" (exact for the node order: `order`, names,
    default the network's order), "pso_dp" (a particle swarm over which servers and in what order, dp
    inside; never worse than dp over `order`), "exhaustive" (every order of every subset of the servers) or
    "equal_layers" (stages of equal compute, the naive baseline). objective: throughput or latency."""
    dag = model.dag() if hasattr(model, "dag") else model
    net = network.core(dag.num_atoms)
    names = [n.name for n in network.nodes]
    if order is None:
        idx = list(range(len(names)))
    else:
        unknown = [o for o in order if o not in names]
        if unknown:
            raise _core.InvalidArgumentError(f"unknown node(s) {unknown} in the order (nodes: {', '.join(names)})")
        idx = [names.index(o) for o in order]
    return PipelinePlan(_core.plan_pipeline(dag, net, algorithm, idx, objective), net)
