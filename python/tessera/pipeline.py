"""N-node pipelines: place a model over a device and several servers (planning; issue 14).

    nodes = [ts.Node("phone", costs=phone_ms, memory_mb=300),             # the input source; results return here
             ts.Node("edge-a", costs=a_ms),
             ts.Node("edge-b", speed=0.5, reference=ct)]                   # costs from a reference profile
    net = ts.Network(nodes, links={("phone", "edge-a"): ts.Link(bandwidth_mbps=20, rtt_ms=10),
                                   ("edge-a", "edge-b"): ts.Link(bandwidth_mbps=1000, rtt_ms=1)})  # others: unreachable
    plan = ts.plan_pipeline(m, net, objective="throughput", algorithm="dp")   # dp | pso_dp | exhaustive | equal_layers
    plan.stages          # [(node name, [atom ids])] in pipeline order
    plan.throughput_fps, plan.latency_ms, plan.bottleneck, plan.explain()
    pipe = ts.Pipeline(m, plan, in_flight=4)   # servers at the nodes' endpoints
    for y in pipe.map(frames): ...
    pipe.stats()         # per stage: compute, queue, link ms; accounted and wall frames per second

Stages are contiguous runs of the atoms' topological order; the values live across a cut travel on
the link between the two stages' nodes, and the model's outputs go back to the first node. Links
are symmetric unless ``symmetric=False``. At run time the device runs the first stage, each server
runs its stage and forwards the live values straight to the next stage's server, and the model's
outputs return to the device (wire protocol v3, docs/wire-protocol.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from collections.abc import Iterable, Iterator
from typing import Any, Sequence

from . import _core
from .atoms import Model, _as_tuple, _rebuild
from .types import Inputs, ModelLike

__all__ = ["Node", "Network", "PipelinePlan", "Pipeline", "plan_pipeline", "PipelineNode", "PipelineNetwork",
           "evaluate_pipeline", "plan_pipeline_convex_brute_force"]

# The engine's pipeline building blocks, the bound classes as they are (tessera.pipeline.*): what
# Network.core() builds, for networks made by hand (any link matrix, unreachable pairs included).
PipelineNode = _core.PipelineNode
PipelineNetwork = _core.PipelineNetwork
if not PipelineNode.__doc__:  # the binding has none (yet): the reference needs one
    PipelineNode.__doc__ = ("A node of a PipelineNetwork: name, compute_ms per atom, memory_bytes for weights, "
                            "load (how much busier than its costs say).")
if not PipelineNetwork.__doc__:
    PipelineNetwork.__doc__ = ("The network a pipeline is planned on: nodes (the first is the device), "
                               "bandwidth_mbps[i][j] and rtt_ms[i][j] between them (0 Mbit/s: no link), pin, tiling.")


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
    load: float = 1.0   # how much busier than its costs say (2: twice slower now)

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

    def __init__(self, nodes: Iterable[Node], links: dict, symmetric: bool = True) -> None:
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
            c.load = float(n.load)
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


def evaluate_pipeline(dag: "_core.AtomDag", network: PipelineNetwork, stages: list) -> "_core.PipelinePlan":
    """The metrics of given stages (``_core.Stage``: node index, atoms; e.g. ``plan.core.stages``)
    on a PipelineNetwork (e.g. ``Network.core(num_atoms)``), checked: contiguous, in order, every
    atom once, the first on node 0, reachable links, memory (a violated memory limit gives status
    infeasible with the reason). Returns the bound plan. C++ (plan/pipeline.h)."""
    return _core.evaluate_pipeline(dag, network, list(stages))


def plan_pipeline_convex_brute_force(dag: "_core.AtomDag", network: PipelineNetwork, order: list[int],
                                     objective: str = "throughput", max_atoms: int = 12) -> "_core.PipelinePlan":
    """The best over every convex partition of the atoms into stages on a prefix of ``order`` (node
    indices; a producer's stage never after its consumers'), not only the contiguous runs of one
    topological order that ``plan_pipeline(algorithm="dp")`` searches: how much dp gives up on DAGs
    with parallel branches. Exhaustive: at most ``max_atoms`` atoms (else InvalidArgumentError).
    Returns the bound plan (stages as atom sets). C++ (plan/pipeline.h)."""
    return _core.plan_pipeline_convex_brute_force(dag, network, [int(i) for i in order], objective, int(max_atoms))


class PipelinePlan:
    """A pipeline plan: stages [(node name, [atom ids])], throughput, latency, bottleneck."""

    def __init__(self, core: "_core.PipelinePlan", net: "_core.PipelineNetwork",
                 network: "Network | None" = None) -> None:
        self._core, self._net, self.network = core, net, network
        names = [n.name for n in net.nodes]
        self.stages = [(names[s.node], list(s.atoms)) for s in core.stages]
        # per stage: the nodes that compute row tiles of it with its own (intra-layer split)
        self.helpers = [[names[h] for h in s.helpers] for s in core.stages]

    def __getattr__(self, name):  # algorithm, status, reason, throughput_fps, latency_ms, bottleneck, ...
        return getattr(self._core, name)

    @property
    def core(self) -> "_core.PipelinePlan":
        """The bound C++ plan (its ``stages`` name nodes by index: what evaluate_pipeline takes)."""
        return self._core

    @property
    def core_network(self) -> "_core.PipelineNetwork":
        """The bound network it was planned on (node order, link matrices, pin, tiling)."""
        return self._net

    def explain(self) -> str:
        return self._core.explain(self._net)

    def __repr__(self):
        return (f"PipelinePlan({self._core.algorithm}, {self._core.status}, {self._core.throughput_fps:.2f} fps, "
                f"{len(self.stages)} stages)")


def plan_pipeline(model: ModelLike, network: Network | PipelineNetwork, objective: str = "throughput",
                  algorithm: str = "dp", order: Sequence[str] | None = None, split: int = 1,
                  pin: dict | None = None) -> PipelinePlan:
    """Place `model` over the network's nodes. algorithm: "dp" (exact for the node order: `order`, names,
    default the network's order), "pso_dp" (a particle swarm over which servers and in what order, dp
    inside; never worse than dp over `order`), "exhaustive" (every order of every subset of the servers) or
    "equal_layers" (stages of equal compute, the naive baseline). objective: throughput or latency.
    split: up to this many nodes may share one server stage by rows (intra-layer: convolution, pooling and
    element-wise chains, each node a tile of the rows with the halo its kernels read; 1 = no splits).
    pin: {atom id: node name} for atoms that must run on one node (privacy, an operator only it has).
    network may also be a :class:`PipelineNetwork` built by hand (model then may be an AtomDag): planned
    as it is, without pin= or split=; the plan has no Network, so a Pipeline needs network=."""
    dag = model.dag() if hasattr(model, "dag") else model
    if isinstance(network, _core.PipelineNetwork):  # built by hand: planned as it is
        if pin or int(split) > 1:
            raise _core.InvalidArgumentError("pin= and split= need a ts.Network (set a PipelineNetwork's pin and "
                                             "tiling yourself)")
        net, names, network = network, [n.name for n in network.nodes], None
    else:
        net = network.core(dag.num_atoms)
        names = [n.name for n in network.nodes]
    if pin:
        pins = [-1] * dag.num_atoms
        for a, node in pin.items():
            if not 0 <= int(a) < dag.num_atoms:
                raise _core.InvalidArgumentError(f"pin: atom {a} out of range (the model has {dag.num_atoms} atoms)")
            if node not in names:
                raise _core.InvalidArgumentError(f"pin: atom {a} is pinned to unknown node {node!r} "
                                                 f"(nodes: {', '.join(names)})")
            pins[int(a)] = names.index(node)
        net.pin = pins
    if int(split) > 1:
        if not hasattr(model, "_core"):
            raise _core.InvalidArgumentError("split > 1 needs the model (its row chains), not only its DAG")
        net.tiling = _core.pipeline_tiling(model._core, int(split))
    if order is None:
        idx = list(range(len(names)))
    else:
        unknown = [o for o in order if o not in names]
        if unknown:
            raise _core.InvalidArgumentError(f"unknown node(s) {unknown} in the order (nodes: {', '.join(names)})")
        if not order or order[0] != names[0]:
            raise _core.InvalidArgumentError(f"the order must start with the input source {names[0]!r} (the first "
                                             f"node: it holds the inputs and gets the results), got {list(order)}")
        idx = [names.index(o) for o in order]
    return PipelinePlan(_core.plan_pipeline(dag, net, algorithm, idx, objective), net, network)


class Pipeline:
    """Run a pipeline plan for real: the device (node 0) runs the first stage here, each server stage
    runs at its node's endpoint and forwards the live values straight to the next stage, the model's
    outputs come back here; up to ``in_flight`` inputs travel at once, so the stages overlap.

    endpoints: {node name: ZeroMQ endpoint} (default: each Node's ``endpoint``). slowdown: {node name:
    how many times slower than this machine} to emulate node speeds (default: 1 / ``speed`` for nodes
    given by a speed over a reference profile, else 1). emulation: "account" (run at this machine's
    speed; stats() report each stage's CPU time x its slowdown and each hop's bytes over its link, as if
    every node and link were its own machine) or "sleep" (every node and link waits for real).
    A stage that fails or cannot reach the next hands its values back and the device runs the rest; a
    request with no answer within timeout_ms runs here; no request is lost or answered twice.
    """

    def __init__(self, model: Model | _core.Model, plan: PipelinePlan, in_flight: int = 4,
                 endpoints: dict | None = None, slowdown: dict | None = None, emulation: str = "account",
                 timeout_ms: int = 5000, retry_ms: int = 1000, reply_bind: str = "tcp://127.0.0.1:*",
                 network: Network | None = None) -> None:
        network = network or plan.network
        if network is None:
            raise _core.InvalidArgumentError("Pipeline needs the plan's network (plan it with ts.plan_pipeline, or "
                                             "pass network=)")
        names = [n.name for n in network.nodes]
        for what, d in (("endpoints", endpoints), ("slowdown", slowdown)):
            unknown = [k for k in (d or {}) if k not in names]
            if unknown:
                raise _core.InvalidArgumentError(f"{what} names unknown node(s) {unknown} (nodes: {', '.join(names)})")
        if emulation not in ("sleep", "account"):
            raise _core.InvalidArgumentError(f"emulation must be 'sleep' or 'account', got '{emulation}'")
        o = _core.PipelineOptions()
        o.endpoints = [(endpoints or {}).get(n.name, n.endpoint) for n in network.nodes]
        o.slowdown = [float((slowdown or {}).get(n.name, 1.0 / n.speed if n.speed and n.reference is not None
                                                 else 1.0)) for n in network.nodes]
        o.in_flight = int(in_flight)
        o.timeout_ms = int(timeout_ms)
        o.retry_ms = int(retry_ms)
        o.reply_bind = reply_bind
        o.emulation = _core.Emulation.Sleep if emulation == "sleep" else _core.Emulation.Account
        self.model, self.plan, self.network = model, plan, network
        core_model = getattr(model, "_core", model)
        self._core = _core.Pipeline(core_model, plan._core, plan._net, o)

    def _outputs(self, flat):
        structure = getattr(getattr(self.model, "graph", None), "output_structure", None)
        return _rebuild(structure, flat) if structure else list(flat)

    def __call__(self, inputs: Inputs) -> Any:
        """One input through the pipeline (its latency; use map() for a stream)."""
        return self._outputs(self._core.run(list(_as_tuple(inputs))))

    def map(self, frames: Iterable, chunk: int = 256) -> Iterator:
        """Outputs of every frame, in order. Frames travel ``in_flight`` at a time; an iterable is taken
        ``chunk`` frames at a time (the pipeline drains between chunks)."""
        batch = []
        for f in frames:
            batch.append(list(_as_tuple(f)))
            if len(batch) == chunk:
                yield from (self._outputs(y) for y in self._core.map(batch))
                batch = []
        if batch:
            yield from (self._outputs(y) for y in self._core.map(batch))

    def submit(self, inputs: Inputs) -> int:
        """Streaming: start one input now (the device runs stage 0 here); returns its ticket. Collect it
        with poll(); keep in_flight at what you want (ts.StreamDeployment does this for arrivals)."""
        return self._core.submit(list(_as_tuple(inputs)))

    def poll(self, timeout_ms: int = 0) -> list:
        """Streaming: [(ticket, outputs, record)] of the inputs completed since the last poll, waiting up to
        timeout_ms for at least one."""
        return [(d.ticket, self._outputs(d.outputs), d.record) for d in self._core.poll(int(timeout_ms))]

    @property
    def in_flight(self) -> int:
        """Submitted inputs not yet returned by poll()."""
        return self._core.in_flight

    def stats(self) -> _core.PipelineStats:
        """Of the last map(): per stage (node, compute/cpu/accounted/queue ms, link ms in and back), the
        accounted and wall-clock frames per second, the bottleneck, fallbacks."""
        return self._core.stats()

    def records(self) -> list[_core.FrameRecord]:
        """Per frame of the last map(): per stage timings, fallback and why."""
        return self._core.records()

    @property
    def reply_endpoint(self) -> str:
        return self._core.reply_endpoint

    def __repr__(self):
        return f"tessera.Pipeline({len(self.plan.stages)} stages, {self.plan.throughput_fps:.2f} fps planned)"
