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

Planners (``planner_names()``): device_only, server_only, chain (Neurosurgeon),
mincut (DADS), compressed (CIC/QDMP), parametric, throughput (DADS heavy load),
gads (CAS, constrained re-planning).

The engine's building blocks are here too, as the bound classes: ``AtomDag`` and ``DagValue``
(a DAG built by hand), ``CostModel``, ``Context``, ``Constraints``; ``Planner(...).core`` and
``ParametricPlanner(...).core`` are the bound planners, ``Plan.core`` the bound plan.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence

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
    """Plan ``model`` with one algorithm for one context (see module doc)."""
    cm = make_cost_model(model, costs)
    ctx = make_context(bandwidth_mbps, rtt_ms, server_load, objective, device_load=device_load)
    core = _core.make_plan(algorithm, cm, ctx, make_constraints(constraints), _placement(current))
    return Plan(core, cm)


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
