"""Planners: which atoms run on the device and which on the edge server (``tessera.planning``).

A thin facade over the C++ planners of ``tessera._core`` (plan layer; see
``cpp/include/tessera/plan/planners.h``); every public name here is also ``tessera.<name>``
(the module was ``tessera.plan`` until 0.2, a name the function ``tessera.plan`` hid)::

    import tessera as ts
    p = ts.plan(model, {"device": dev_ms, "server": srv_ms}, bandwidth_mbps=5.85, rtt_ms=20)
    print(p.status, p.latency_ms, p.placement)
    print(p.explain())
    side_by_side = ts.plans(model, costs, bandwidth_mbps=5.85)   # every planner
    priced = ts.evaluate(model, costs, placement, bandwidth_mbps=1.1)  # a given placement, other costs
    table = ts.ParametricPlanner(model, costs, rtt_ms=20); table.lookup(3.0)

``model`` is a :class:`tessera.Model` (anything with ``dag()``) or a
``_core.AtomDag``; ``costs`` maps ``"device"`` and ``"server"`` to per-atom
milliseconds (a sequence, or an object with ``atom_ms`` such as a profiler
CostTable). Optional keys: ``"energy"`` = ``{"device": mJ per atom, "server": ...}``
and ``"energy_mj_per_byte"`` (radio energy per byte sent). Every check happens in
C++; errors are ``tessera.InvalidArgumentError`` (a ``ValueError``) naming the field.

Training (issue 22): ``simulate_training(stages, micro_batches, schedule)`` simulates one step of a
training pipeline (GPipe or 1F1B, forwards, backwards, activations and gradients on the links);
``plan_training(model, forward_ms, backward_ms, batch_size=..., bandwidth_mbps=...)`` picks the cut
(a U shape when the labels stay on the device) and the micro-batch count; ``plot_training_timeline``
draws a step as a Gantt chart.

Planners (``planner_names()``): device_only, server_only, chain (Neurosurgeon),
mincut (DADS), compressed (CIC/QDMP), parametric, throughput (DADS heavy load),
gads (CAS, constrained re-planning).

The engine's building blocks are here too, as the bound classes: ``AtomDag`` and ``DagValue``
(a DAG built by hand), ``CostModel``, ``Context``, ``Constraints``; ``Planner(...).core`` and
``ParametricPlanner(...).core`` are the bound planners, ``Plan.core`` the bound plan.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from . import _core
from ._forward import CoreView
from .types import Costs, ModelLike, Placement

__all__ = [
    "Plan",
    "plan",
    "plans",
    "evaluate",
    "planner_names",
    "make_cost_model",
    "make_context",
    "make_constraints",
    "Planner",
    "ParametricPlanner",
    "AtomDag",
    "DagValue",
    "CostModel",
    "Context",
    "Constraints",
    "ScheduledBlock",
    "LinkCost",
    "simulate_training",
    "plan_training",
    "evaluate_training",
    "TrainingPlan",
    "TrainingStage",
    "plot_training_timeline",
]

# The engine's planning building blocks, bound classes re-exported as they are (tessera.planning.*):
# a DAG of atoms and the values between them (build one by hand for synthetic graphs; a Model's is
# ``m.dag()``), the cost model planners read (``make_cost_model`` builds one from per-atom costs), the
# context and constraints of one planning call (``make_context`` / ``make_constraints`` fill them).
AtomDag = _core.AtomDag
DagValue = _core.DagValue
CostModel = _core.CostModel
Context = _core.Context
Constraints = _core.Constraints
ScheduledBlock = _core.ScheduledBlock  # a plan's block: a convex set of atoms on one target (Plan.blocks)
LinkCost = _core.LinkCost  # what a link between two targets costs the planner (CostModel links)
TrainingStage = _core.TrainingStage  # one stage of a training pipeline as simulate_training sees it

STATUSES = ("optimal", "feasible", "infeasible", "bad_input")


def planner_names() -> list:
    """The algorithm names ``plan`` accepts."""
    return list(_core.planner_names())


def _dag_of(model) -> "_core.AtomDag":
    if isinstance(model, _core.AtomDag):
        return model
    if hasattr(model, "dag"):
        dag = model.dag()
        if isinstance(dag, _core.AtomDag):
            return dag
    raise _core.InvalidArgumentError(
        f"model must be a _core.AtomDag or have a dag() method returning one, got {type(model).__name__}")


def _per_atom(x, field: str) -> list:
    if hasattr(x, "atom_ms"):
        x = x.atom_ms
    if isinstance(x, (str, bytes, Mapping)) or not hasattr(x, "__iter__"):
        raise _core.InvalidArgumentError(f"{field} must be a sequence of per-atom values or have .atom_ms, "
                                         f"got {type(x).__name__}")
    return [float(v) for v in x]


def make_cost_model(model: ModelLike, costs: Costs | _core.CostModel) -> "_core.CostModel":
    """Build a ``_core.CostModel`` from a model (or AtomDag) and per-atom costs."""
    if isinstance(costs, _core.CostModel):
        return costs
    if not isinstance(costs, Mapping):
        raise _core.InvalidArgumentError(f"costs must be a dict with 'device' and 'server', got {type(costs).__name__}")
    unknown = set(costs) - {"device", "server", "energy", "energy_mj_per_byte"}
    if unknown:
        raise _core.InvalidArgumentError(f"costs has unknown keys {sorted(unknown)} (device, server, energy, "
                                         "energy_mj_per_byte)")
    for key in ("device", "server"):
        if key not in costs:
            raise _core.InvalidArgumentError(f"costs['{key}'] is missing (per-atom ms on the {key})")
        table_hash, model_hash = getattr(costs[key], "model_hash", ""), getattr(model, "hash", "")
        if table_hash and model_hash and table_hash != model_hash:  # a CostTable of another model
            raise _core.InvalidArgumentError(f"costs['{key}'] is a cost table of model {table_hash[:16]}, "
                                             f"not of this model ({model_hash[:16]})")
    compute = [_per_atom(costs["device"], "costs['device']"), _per_atom(costs["server"], "costs['server']")]
    energy = []
    if costs.get("energy") is not None:
        e = costs["energy"]
        energy = [_per_atom(e.get("device", []), "costs['energy']['device']"),
                  _per_atom(e.get("server", []), "costs['energy']['server']")]
    links = []
    if costs.get("energy_mj_per_byte"):
        epb = float(costs["energy_mj_per_byte"])
        links = [[_core.LinkCost(), _core.LinkCost(energy_mj_per_byte=epb)], [_core.LinkCost(energy_mj_per_byte=epb), _core.LinkCost()]]
    return _core.CostModel(_dag_of(model), compute, energy, links)


def make_context(bandwidth_mbps: float, rtt_ms: float = 0.0, server_load: float = 1.0, objective: str = "latency",
            energy_weight: float = 0.0, device_memory_budget_bytes: float = math.inf,
            device_load: float = 1.0) -> "_core.Context":
    """The planning context: link (Mbit/s, round trip ms), load multipliers of the server's and
    the device's compute, the objective ("latency" - plus energy_weight x energy when > 0 -,
    "energy", "throughput")."""
    return _core.Context(bandwidth_mbps=float(bandwidth_mbps), rtt_ms=float(rtt_ms), server_load=float(server_load),
                         device_memory_budget_bytes=float(device_memory_budget_bytes),
                         energy_weight=float(energy_weight), objective=objective, device_load=float(device_load))


def make_constraints(spec: Mapping[str, Any] | _core.Constraints | None = None) -> "_core.Constraints":
    """None, a ``_core.Constraints``, or a dict with device_memory_bytes, max_latency_ms, max_energy_mj, pin."""
    if spec is None:
        return _core.Constraints()
    if isinstance(spec, _core.Constraints):
        return spec
    if not isinstance(spec, Mapping):
        raise _core.InvalidArgumentError(f"constraints must be a dict or _core.Constraints, got {type(spec).__name__}")
    known = {"device_memory_bytes", "max_latency_ms", "max_energy_mj", "pin"}
    unknown = set(spec) - known
    if unknown:
        raise _core.InvalidArgumentError(f"constraints has unknown field(s) {sorted(unknown)} (known: {sorted(known)})")
    return _core.Constraints(
        device_memory_bytes=float(spec.get("device_memory_bytes", math.inf)),
        max_latency_ms=float(spec.get("max_latency_ms", math.inf)),
        max_energy_mj=float(spec.get("max_energy_mj", math.inf)),
        pin=[int(p) for p in spec.get("pin", [])])


class Plan(CoreView):
    """A plan: placement (target per atom: 0 device, 1 server), metrics, blocks.

    The C++ plan's fields are read through (``core`` is the bound ``_core.Plan``): ``algorithm``,
    ``status`` ('optimal' | 'feasible' | 'infeasible' | 'bad_input'), ``reason``, ``latency_ms``,
    ``throughput_fps``, ``transfer_bytes``, ``device_memory_bytes``, ``energy_mj``, ``objective``,
    ``bandwidth_mbps`` and ``rtt_ms`` (the context it was made for), ``target_ms``, ``link_ms``.
    ``placement``, ``blocks`` and ``transfers`` are Python lists (copies).
    """

    def __init__(self, core: "_core.Plan", cost_model: "_core.CostModel") -> None:
        self._core = core
        self._cm = cost_model

    @property
    def placement(self) -> list:
        """Target per atom (0 device, 1 server), a list."""
        return list(self._core.placement)

    @property
    def blocks(self) -> list:
        """ScheduledBlock list in execution order (planning.ScheduledBlock: target, atoms, inputs, outputs)."""
        return list(self._core.blocks)

    @property
    def transfers(self) -> list:
        """The values that cross a link, a list."""
        return list(self._core.transfers)

    @property
    def core(self) -> "_core.Plan":
        """The underlying _core.Plan."""
        return self._core

    @property
    def ok(self) -> bool:
        """The C++ plan's ok(): a usable plan was found (status optimal or feasible)."""
        return self._core.ok()

    def explain(self) -> str:
        """A paragraph a person reads: where the cut is, what crosses it, what each part costs."""
        return self._core.explain(self._cm)

    def problems(self) -> list:
        """Contract violations found by the C++ validator (empty = valid)."""
        return list(_core.validate_plan(self._core, self._cm))

    def __repr__(self) -> str:
        return (f"Plan({self.algorithm}, {self.status}, latency={self.latency_ms:.3f} ms, "
                f"{self.throughput_fps:.1f} fps, {sum(self._core.placement)}/{len(self._core.placement)} atoms on server)")


def _placement(current) -> list:
    if current is None:
        return []
    if isinstance(current, Plan):
        return current.placement
    if isinstance(current, _core.Plan):
        return list(current.placement)
    return [int(t) for t in current]


def plan(model: ModelLike, costs: Costs | _core.CostModel, bandwidth_mbps: float, rtt_ms: float = 0.0,
         algorithm: str = "mincut", objective: str = "latency",
         constraints: Mapping[str, Any] | _core.Constraints | None = None, server_load: float = 1.0,
         current: Plan | _core.Plan | Placement | None = None, device_load: float = 1.0) -> Plan:
    """Plan ``model`` with one algorithm for one context (see module doc).

    ``objective="training"`` plans split training instead (:func:`plan_training`): ``costs`` then
    maps "device" and "server" to training profiles (``ts.profile_training``: ``forward_ms``,
    ``backward_ms`` and ``batch`` per atom), and ``constraints`` may give ``memory_bytes``,
    ``micro_batches``, ``schedules``, ``labels_on_device``, ``optimizer`` and
    ``micro_batch_overhead_ms``; the result is a :class:`TrainingPlan` (placement, micro-batches,
    schedule) that ``ts.SplitTrainer`` takes as its plan."""
    if objective == "training":
        return _plan_for_training(model, costs, bandwidth_mbps, rtt_ms, constraints)
    cm = make_cost_model(model, costs)
    ctx = make_context(bandwidth_mbps, rtt_ms, server_load, objective, device_load=device_load)
    core = _core.make_plan(algorithm, cm, ctx, make_constraints(constraints), _placement(current))
    return Plan(core, cm)


def _plan_for_training(model, costs, bandwidth_mbps, rtt_ms, constraints) -> "TrainingPlan":
    if not isinstance(costs, Mapping) or not all(hasattr(costs.get(k), "backward_ms") for k in ("device", "server")):
        raise _core.InvalidArgumentError(
            "objective='training' needs costs={'device': profile, 'server': profile} of training profiles "
            "(ts.profile_training: forward and backward ms per atom)")
    allowed = {"memory_bytes", "micro_batches", "schedules", "labels_on_device", "optimizer", "micro_batch_overhead_ms"}
    extra = dict(constraints or {})
    unknown = sorted(set(extra) - allowed)
    if unknown:
        raise _core.InvalidArgumentError(f"objective='training': unknown constraints {unknown} "
                                         f"(known: {', '.join(sorted(allowed))})")
    batch = int(costs["device"].batch)
    return plan_training(model, {k: costs[k].forward_ms for k in ("device", "server")},
                         {k: costs[k].backward_ms for k in ("device", "server")}, batch_size=batch,
                         bandwidth_mbps=bandwidth_mbps, rtt_ms=rtt_ms, **extra)


def plans(model: ModelLike, costs: Costs | _core.CostModel, bandwidth_mbps: float, rtt_ms: float = 0.0,
          objective: str = "latency", constraints: Mapping[str, Any] | _core.Constraints | None = None,
          server_load: float = 1.0, current: Plan | _core.Plan | Placement | None = None,
          algorithms: Optional[Iterable[str]] = None,
          device_load: float = 1.0) -> Dict[str, Plan]:
    """Every algorithm (or those named) on the same inputs: name -> Plan, side by side."""
    cm = make_cost_model(model, costs)
    ctx = make_context(bandwidth_mbps, rtt_ms, server_load, objective, device_load=device_load)
    cons = make_constraints(constraints)
    cur = _placement(current)
    names = planner_names() if algorithms is None else [algorithms] if isinstance(algorithms, str) else list(algorithms)
    return {name: Plan(_core.make_plan(name, cm, ctx, cons, cur), cm) for name in names}


def evaluate(model: ModelLike, costs: Costs | _core.CostModel, placement: Plan | _core.Plan | Placement,
             bandwidth_mbps: float, rtt_ms: float = 0.0, objective: str = "latency",
             server_load: float = 1.0, device_load: float = 1.0, energy_weight: float = 0.0) -> Plan:
    """What a given placement (one target per atom: 0 device, 1 server) costs under these costs
    and this context: a Plan with its latency, energy, memory and transfers (no planner runs)."""
    cm = make_cost_model(model, costs)
    ctx = make_context(bandwidth_mbps, rtt_ms, server_load, objective, energy_weight=energy_weight,
                       device_load=device_load)
    return Plan(_core.evaluate(cm, ctx, _placement(placement)), cm)


class Planner:
    """A planner prepared once for a model and costs; ``plan`` re-plans fast (graph already built)."""

    def __init__(self, model: ModelLike, costs: Costs | _core.CostModel, algorithm: str = "mincut") -> None:
        self._cm = make_cost_model(model, costs)
        self._core = _core.make_planner(algorithm, self._cm)

    @property
    def name(self) -> str:
        """The algorithm's name."""
        return self._core.name

    @property
    def core(self) -> "_core.Planner":
        """The bound C++ planner: ``core.plan(context, constraints, current)`` takes a
        :class:`Context` and :class:`Constraints` and returns a ``_core.Plan`` (no Python
        conversion on the way: what benchmarks time)."""
        return self._core

    def plan(self, bandwidth_mbps: float, rtt_ms: float = 0.0, objective: str = "latency",
             constraints: Mapping[str, Any] | _core.Constraints | None = None, server_load: float = 1.0,
             current: Plan | _core.Plan | Placement | None = None, device_load: float = 1.0) -> Plan:
        """Re-plan in this context (the graph is built once); ``current``: the placement in use,
        which incremental planners start from."""
        ctx = make_context(bandwidth_mbps, rtt_ms, server_load, objective, device_load=device_load)
        return Plan(self._core.plan(ctx, make_constraints(constraints), _placement(current)), self._cm)


class ParametricPlanner:
    """All optimal min-cut plans over bandwidth [0.01, 10000] Mbit/s; ``lookup(bw)`` is a binary search."""

    def __init__(self, model: ModelLike, costs: Costs | _core.CostModel, rtt_ms: float = 0.0,
                 objective: str = "latency", server_load: float = 1.0,
                 constraints: Mapping[str, Any] | _core.Constraints | None = None) -> None:
        self._cm = make_cost_model(model, costs)
        ctx = make_context(1.0, rtt_ms, server_load, objective)
        self._core = _core.ParametricPlanner(self._cm, ctx, make_constraints(constraints))

    def lookup(self, bandwidth_mbps: float) -> Plan:
        """The optimal plan at this bandwidth, from the precomputed envelope (a binary search)."""
        return Plan(self._core.lookup(float(bandwidth_mbps)), self._cm)

    def lookup_placement(self, bandwidth_mbps: float) -> list:
        """Only the placement of :meth:`lookup` (no Plan object: the fastest path)."""
        return self._core.lookup_placement(float(bandwidth_mbps))

    def breakpoints(self) -> list:
        """The bandwidths (Mbit/s) at which the optimal plan changes (the segments' boundaries)."""
        return list(self._core.breakpoints())

    @property
    def segments(self) -> list:
        """The envelope's segments (bandwidth interval, placement, latency line), a list."""
        return list(self._core.segments)

    @property
    def core(self) -> "_core.ParametricPlanner":
        """The bound C++ planner (``lookup_index``, ``lookup_indices`` over many bandwidths in one
        call, ``num_cuts_solved``, ...): what benchmarks time."""
        return self._core


# ---- split and pipeline-parallel training (issue 22; C++: plan/training.h) ----------------------

_STAGE_FIELDS = ("node", "fwd_ms", "bwd_ms", "send_fwd_ms", "send_bwd_ms", "fwd_delay_ms", "bwd_delay_ms",
                 "stored_bytes", "update_ms")


def _training_stage(spec: Union[Mapping[str, float], "_core.TrainingStage"], i: int) -> "_core.TrainingStage":
    if isinstance(spec, _core.TrainingStage):
        return spec
    if not isinstance(spec, Mapping):
        raise _core.InvalidArgumentError(f"stages[{i}] must be a dict or a TrainingStage, got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(_STAGE_FIELDS))
    if unknown:
        raise _core.InvalidArgumentError(f"stages[{i}] has unknown field(s) {unknown} (known: {', '.join(_STAGE_FIELDS)})")
    return _core.TrainingStage(**{k: (int(v) if k == "node" else float(v)) for k, v in spec.items()})


def simulate_training(stages: Sequence[Union[Mapping[str, float], "_core.TrainingStage"]], micro_batches: int,
                      schedule: str = "1f1b") -> "_core.TrainingTimeline":
    """Simulate one training step of a pipeline: ``micro_batches`` micro-batches through ``stages``
    (in pipeline order), with the ``schedule`` "gpipe" (all forwards, then all backwards) or "1f1b"
    (PipeDream-flush: stages - i warm-up forwards on stage i, then one backward one forward).

    Each stage is a dict (or :class:`TrainingStage`) with ``node`` (stages on one node share its
    compute: a U-shaped split has the first and last stages on node 0), per micro-batch ``fwd_ms``,
    ``bwd_ms``, ``send_fwd_ms`` (activations to the next stage, on the link), ``send_bwd_ms``
    (gradients to the previous one), ``fwd_delay_ms`` / ``bwd_delay_ms`` (rtt / 2 after a send, not
    occupying the link), ``stored_bytes`` (activations a micro-batch keeps there until its backward)
    and ``update_ms`` (the optimizer step, once). Missing fields are 0. Nodes and directed links are
    FIFO resources. Returns the timeline: ``events`` (stage, micro_batch, op "F" | "B" | "send_F" |
    "send_B" | "update", node, to_node, start_ms, end_ms), ``makespan_ms``, ``node_busy_ms``,
    ``peak_in_flight`` and ``peak_stored_bytes`` per stage, ``node_peak_stored_bytes``. Bad input:
    :class:`tessera.InvalidArgumentError` naming the field."""
    if isinstance(stages, (str, bytes, Mapping)) or not hasattr(stages, "__iter__"):
        raise _core.InvalidArgumentError(f"stages must be a sequence of dicts or TrainingStage, got "
                                         f"{type(stages).__name__}")
    st = [_training_stage(s, i) for i, s in enumerate(stages)]
    return _core.simulate_training(st, int(micro_batches), str(schedule))


class TrainingPlan(CoreView):
    """A training plan: ``placement`` (node per atom: 0 the device, 1 the server, ...),
    ``micro_batches``, ``schedule`` ("1f1b" | "gpipe"), ``step_ms`` (the simulated step),
    ``samples_per_s``, ``stages`` [(node name, [atom ids])], ``events`` (the simulated step, for a
    Gantt chart: :func:`plot_training_timeline`), memory per node by name (``memory_bytes``,
    ``stored_bytes``, ``param_bytes``: weights + gradients + optimizer state), ``explain()``.

    The C++ plan's other fields are read through (``core`` is the bound ``_core.TrainingPlan``):
    ``algorithm``, ``status``, ``reason``, ``batch_size``, ``stage_costs``, ``timeline``,
    ``micro_batch_choices`` and ``best_step_ms`` (the best step per choice), ``simulated``,
    ``pruned``, ``over_memory``."""

    def __init__(self, core: "_core.TrainingPlan", network: "_core.PipelineNetwork") -> None:
        self._core = core
        self._net = network

    @property
    def core(self) -> "_core.TrainingPlan":
        """The bound C++ plan (stages name nodes by index)."""
        return self._core

    @property
    def core_network(self) -> "_core.PipelineNetwork":
        """The bound network it was planned on (nodes with forward ms, memory, links)."""
        return self._net

    @property
    def node_names(self) -> List[str]:
        """The nodes' names, by index."""
        return [n.name for n in self._net.nodes]

    @property
    def placement(self) -> List[int]:
        """Node index per atom (0: the device), a list."""
        return list(self._core.placement)

    @property
    def stages(self) -> List[tuple]:
        """[(node name, [atom ids])] in pipeline order; node 0's first and last stages may have no
        atoms (it only sends the inputs, or only computes the loss)."""
        names = self.node_names
        return [(names[s.node], list(s.atoms)) for s in self._core.stages]

    @property
    def events(self) -> list:
        """The simulated step's events (stage, micro_batch, op, node, to_node, start_ms, end_ms)."""
        return list(self._core.timeline.events)

    def _by_node(self, values) -> Dict[str, float]:
        return dict(zip(self.node_names, values))

    @property
    def memory_bytes(self) -> Dict[str, float]:
        """Per node name: the bytes the plan needs there (param_bytes + stored_bytes)."""
        return self._by_node(self._core.node_memory_bytes)

    @property
    def stored_bytes(self) -> Dict[str, float]:
        """Per node name: the peak bytes of stored activations (simulated)."""
        return self._by_node(self._core.node_stored_bytes)

    @property
    def param_bytes(self) -> Dict[str, float]:
        """Per node name: its atoms' parameters x (2 + the optimizer's state factor)."""
        return self._by_node(self._core.node_param_bytes)

    @property
    def ok(self) -> bool:
        """Status optimal or feasible."""
        return self._core.ok()

    def explain(self) -> str:
        """One paragraph: stages, micro-batches and schedule, step and samples/s, the busiest
        node, each node's memory."""
        return self._core.explain(self._net)

    def __repr__(self) -> str:
        return (f"TrainingPlan({self._core.algorithm}, {self._core.status}, {self._core.step_ms:.3f} ms, "
                f"{self._core.samples_per_s:.1f} samples/s, {self._core.micro_batches} micro-batches, "
                f"{self._core.schedule})")


def _per_node(spec, names: List[str], field: str) -> list:
    """Per node (in ``names`` order) per-atom values from {name: per-atom} or a list of per-atom rows."""
    if isinstance(spec, Mapping):
        unknown = [k for k in spec if k not in names]
        if unknown:
            raise _core.InvalidArgumentError(f"{field} names unknown node(s) {unknown} (nodes: {', '.join(names)})")
        missing = [n for n in names if n not in spec]
        if missing:
            raise _core.InvalidArgumentError(f"{field} has no costs for node(s) {missing}")
        rows = [_per_atom(spec[n], f"{field}['{n}']") for n in names]
    elif isinstance(spec, (str, bytes)) or not hasattr(spec, "__iter__"):
        raise _core.InvalidArgumentError(f"{field} must be a dict {{node name: per-atom ms}}, got {type(spec).__name__}")
    else:
        rows = [_per_atom(r, f"{field}[{i}]") for i, r in enumerate(spec)]
        if len(rows) != len(names):
            raise _core.InvalidArgumentError(f"{field} has {len(rows)} rows for {len(names)} nodes ({', '.join(names)})")
    return rows


def _training_inputs(model: ModelLike, forward_ms, backward_ms, batch_size: int, bandwidth_mbps, rtt_ms: float,
                     memory_bytes, update_ms, micro_batches, schedules, labels_on_device: bool, optimizer,
                     micro_batch_overhead_ms: float, network, order, pin):
    """The bound (dag, network, costs, options) of plan_training / evaluate_training."""
    dag = _dag_of(model)
    n = dag.num_atoms
    if labels_on_device and hasattr(model, "graph") and hasattr(model, "atoms"):
        # labels on the device: the atoms making the model's outputs run there too (the U's last
        # arm), so neither the labels nor the logits' gradient leave it (ts.SplitTrainer checks it)
        g = model.graph
        pin = dict(pin or {})
        for v in g.outputs:
            p = g.values[v].producer
            a = g.nodes[p].atom if p >= 0 else -1
            if a >= 0:
                pin.setdefault(a, (network.core(n).nodes[0].name if hasattr(network, "core") else
                                   network.nodes[0].name) if network is not None else "device")
    if network is None:
        if bandwidth_mbps is None:
            raise _core.InvalidArgumentError("bandwidth_mbps is missing (the device <-> server link, Mbit/s), "
                                             "or give network=")
        names = ["device", "server"]
        net = _core.PipelineNetwork()
        nodes = []
        for name in names:
            node = _core.PipelineNode()
            node.name = name
            nodes.append(node)
        net.nodes = nodes
        bw, rtt = float(bandwidth_mbps), float(rtt_ms)
        net.bandwidth_mbps = [[0.0, bw], [bw, 0.0]]
        net.rtt_ms = [[0.0, rtt], [rtt, 0.0]]
    else:
        if bandwidth_mbps is not None:
            raise _core.InvalidArgumentError("give bandwidth_mbps or network=, not both (the network has its links)")
        if isinstance(network, _core.PipelineNetwork):  # a copy: the caller's network stays as it was
            net = _core.PipelineNetwork()
            net.nodes, net.bandwidth_mbps, net.rtt_ms, net.pin = network.nodes, network.bandwidth_mbps, \
                network.rtt_ms, network.pin
        elif hasattr(network, "core"):
            net = network.core(n)
        else:
            raise _core.InvalidArgumentError(f"network must be a tessera.Network or a PipelineNetwork, got "
                                             f"{type(network).__name__}")
        names = [nd.name for nd in net.nodes]
    if forward_ms is not None:
        rows = _per_node(forward_ms, names, "forward_ms")
        nodes = list(net.nodes)
        for nd, row in zip(nodes, rows):
            nd.compute_ms = row
        net.nodes = nodes
    elif network is None:
        raise _core.InvalidArgumentError("forward_ms is missing: {'device': per-atom ms, 'server': per-atom ms}")
    if memory_bytes is not None:
        if not isinstance(memory_bytes, Mapping):
            raise _core.InvalidArgumentError(f"memory_bytes must be a dict {{node name: bytes}}, got "
                                             f"{type(memory_bytes).__name__}")
        unknown = [k for k in memory_bytes if k not in names]
        if unknown:
            raise _core.InvalidArgumentError(f"memory_bytes names unknown node(s) {unknown} (nodes: {', '.join(names)})")
        nodes = list(net.nodes)
        for nd in nodes:
            if nd.name in memory_bytes:
                nd.memory_bytes = float(memory_bytes[nd.name])
        net.nodes = nodes
    if pin:
        pins = [-1] * n
        for a, node in pin.items():
            if not 0 <= int(a) < n:
                raise _core.InvalidArgumentError(f"pin: atom {a} out of range (the model has {n} atoms)")
            if node not in names:
                raise _core.InvalidArgumentError(f"pin: atom {a} is pinned to unknown node {node!r} "
                                                 f"(nodes: {', '.join(names)})")
            pins[int(a)] = names.index(node)
        net.pin = pins
    costs = _core.TrainingCosts()
    costs.backward_ms = _per_node(backward_ms, names, "backward_ms")
    if update_ms is not None:
        costs.update_ms = _per_node(update_ms, names, "update_ms")
    opts = _core.TrainingOptions()
    opts.batch_size = int(batch_size)
    if micro_batches is None:  # the default choices a batch can be split into
        micro_batches = [m for m in (1, 2, 4, 8) if m <= max(int(batch_size), 1)]
    opts.micro_batches = [int(m) for m in ([micro_batches] if isinstance(micro_batches, int) else micro_batches)]
    opts.schedules = [schedules] if isinstance(schedules, str) else [str(s) for s in schedules]
    opts.labels_on_device = bool(labels_on_device)
    opts.optimizer_state_factor = (_core.optimizer_state_factor(optimizer) if isinstance(optimizer, str)
                                   else float(optimizer))
    opts.micro_batch_overhead_ms = float(micro_batch_overhead_ms)
    if order is not None:
        unknown = [o for o in order if o not in names]
        if unknown:
            raise _core.InvalidArgumentError(f"unknown node(s) {unknown} in the order (nodes: {', '.join(names)})")
        opts.order = [names.index(o) for o in order]
    return dag, net, costs, opts


def plan_training(model: ModelLike, forward_ms: Optional[Mapping[str, Any]], backward_ms: Mapping[str, Any], *,
                  batch_size: int, bandwidth_mbps: Optional[float] = None, rtt_ms: float = 0.0,
                  memory_bytes: Optional[Mapping[str, float]] = None,
                  update_ms: Optional[Mapping[str, Any]] = None,
                  micro_batches: Union[int, Sequence[int], None] = None,
                  schedules: Union[str, Sequence[str]] = ("1f1b", "gpipe"), labels_on_device: bool = True,
                  optimizer: Union[str, float] = "sgd_momentum", micro_batch_overhead_ms: float = 0.0,
                  network: Any = None, order: Optional[Sequence[str]] = None,
                  pin: Optional[Mapping[int, str]] = None) -> TrainingPlan:
    """Where to train each atom and with how many micro-batches: the fastest simulated step.

    ``model``: a :class:`tessera.Model` or an :class:`AtomDag` (value bytes = activations at the full
    batch; ``param_bytes`` per atom). ``forward_ms`` / ``backward_ms``: per node name, per-atom ms at
    the full batch of ``batch_size`` samples (a sequence, or an object with ``atom_ms``); two parties
    by default: ``{"device": ..., "server": ...}`` with the link ``bandwidth_mbps`` / ``rtt_ms``
    (both ways). For N nodes give ``network=`` (a :class:`tessera.Network` or a bound
    ``PipelineNetwork``: nodes, loads, links; its node costs are the forward ms unless ``forward_ms``
    is given) and optionally ``order`` (node names, the device first). ``memory_bytes``: {node name:
    bytes} for weights + gradients + optimizer state (``optimizer``: "sgd" 0, "sgd_momentum" 1,
    "adam" 2 x the parameters, or a factor) + stored activations (unlimited when missing).
    ``update_ms``: the optimizer step per atom and node (default 0). ``micro_batches``: the choices
    (default 1, 2, 4, 8 up to ``batch_size``); a micro-batch of 1/m costs cost / m +
    ``micro_batch_overhead_ms`` per stage and pass. ``schedules``: "1f1b", "gpipe" or both.

    Searched: node 0's prefix, a run per server of the order, and node 0's suffix when
    ``labels_on_device`` (a U shape: the loss on the device; with a :class:`tessera.Model` the atoms
    making its outputs are pinned to node 0 too, as ``ts.SplitTrainer`` requires) - every cut - x the ``micro_batches``
    choices x the ``schedules``; exact over that space (checked against brute force). ``pin``:
    {atom id: node name}. Errors (:class:`tessera.InvalidArgumentError`) name the field: negative
    costs, wrong lengths, a micro-batch choice < 1 or > batch_size, no placement fitting memory
    (which node, by how much)."""
    dag, net, costs, opts = _training_inputs(model, forward_ms, backward_ms, batch_size, bandwidth_mbps, rtt_ms,
                                             memory_bytes, update_ms, micro_batches, schedules, labels_on_device,
                                             optimizer, micro_batch_overhead_ms, network, order, pin)
    return TrainingPlan(_core.plan_training(dag, net, costs, opts), net)


def evaluate_training(model: ModelLike, forward_ms: Optional[Mapping[str, Any]], backward_ms: Mapping[str, Any],
                      placement: Placement, micro_batches: int, schedule: str = "1f1b", *, batch_size: int,
                      bandwidth_mbps: Optional[float] = None, rtt_ms: float = 0.0,
                      memory_bytes: Optional[Mapping[str, float]] = None,
                      update_ms: Optional[Mapping[str, Any]] = None, labels_on_device: bool = True,
                      optimizer: Union[str, float] = "sgd_momentum", micro_batch_overhead_ms: float = 0.0,
                      network: Any = None, pin: Optional[Mapping[int, str]] = None) -> TrainingPlan:
    """The simulated training step of a given placement (node per atom) with ``micro_batches`` and
    ``schedule``, on the same cost model and arguments as :func:`plan_training` (a naive cut, a
    baseline). A node over its memory gives status "infeasible" with the reason (which node, by how
    much); a placement that needs a missing link raises InvalidArgumentError."""
    if isinstance(placement, TrainingPlan):
        placement = placement.placement
    dag, net, costs, opts = _training_inputs(model, forward_ms, backward_ms, batch_size, bandwidth_mbps, rtt_ms,
                                             memory_bytes, update_ms, [int(micro_batches)], [str(schedule)],
                                             labels_on_device, optimizer, micro_batch_overhead_ms, network, None, pin)
    core = _core.evaluate_training(dag, net, costs, [int(t) for t in placement], int(micro_batches), str(schedule),
                                   opts)
    return TrainingPlan(core, net)


_OP_COLORS = {"F": "#4c72b0", "B": "#dd8452", "send_F": "#8fb0d8", "send_B": "#f0b88e", "update": "#55a868"}


def plot_training_timeline(result: Union[TrainingPlan, "_core.TrainingTimeline", "_core.TrainingPlan"],
                           ax: Any = None, node_names: Optional[Sequence[str]] = None, labels: bool = True) -> Any:
    """A Gantt chart of one simulated training step: one row per node (its forwards, backwards and
    updates) and per directed link used (its sends), one bar per event, labelled with its
    micro-batch. ``result``: a :class:`TrainingPlan` or a timeline from :func:`simulate_training`.
    Draws on ``ax`` (a matplotlib Axes; a new figure when None) and returns the Axes."""
    if isinstance(result, TrainingPlan):
        events, names = result.events, result.node_names
    elif hasattr(result, "timeline"):
        events, names = list(result.timeline.events), None
    elif hasattr(result, "events"):
        events, names = list(result.events), None
    else:
        raise _core.InvalidArgumentError(f"result must be a TrainingPlan or a timeline, got {type(result).__name__}")
    if node_names is not None:
        names = list(node_names)

    def name(u: int) -> str:
        return names[u] if names is not None and 0 <= u < len(names) else f"node {u}"

    if ax is None:
        import matplotlib.pyplot as plt
        _, ax = plt.subplots(figsize=(10, 3))
    rows: Dict[tuple, int] = {}
    for e in sorted(events, key=lambda e: (e.to_node >= 0, e.node, e.to_node)):
        rows.setdefault((e.node, e.to_node), len(rows))
    for e in events:
        width = e.end_ms - e.start_ms
        if width <= 0:
            continue
        y = rows[(e.node, e.to_node)]
        ax.broken_barh([(e.start_ms, width)], (y - 0.4, 0.8), facecolors=_OP_COLORS.get(e.op, "grey"),
                       edgecolors="white", linewidth=0.5)
        if labels and e.micro_batch >= 0:
            ax.text(e.start_ms + width / 2, y, str(e.micro_batch), ha="center", va="center", fontsize=7)
    ax.set_yticks(list(rows.values()))
    ax.set_yticklabels([name(u) if v < 0 else f"{name(u)} -> {name(v)}" for (u, v) in rows])
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    from matplotlib.patches import Patch
    ax.legend(handles=[Patch(color=c, label=op) for op, c in _OP_COLORS.items()], loc="upper right", fontsize=7,
              ncol=len(_OP_COLORS))
    return ax
