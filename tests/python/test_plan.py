"""Plan layer from Python: the C++ min cut (DADS graph, Boykov-Kolmogorov) against
a networkx max-flow oracle on random DAGs of 50-300 atoms, every exact planner
against brute force on small DAGs, the facade, and errors naming the field."""
import importlib
import random

import pytest

import tessera
from tessera import _core
from tessera.testing import brute_force, networkx_min_cut, random_dag, reference_latency

tplan = importlib.import_module("tessera.planning")


def integer_costs(rng, n):
    return {"device": [float(rng.randint(1, 60)) for _ in range(n)],
            "server": [float(rng.randint(0, 12)) for _ in range(n)]}


# ---- networkx oracle -------------------------------------------------------------

@pytest.mark.parametrize("seed,n", [(1, 50), (2, 80), (3, 120), (4, 200), (5, 300), (6, 300)])
def test_mincut_matches_networkx_oracle(seed, n):
    rng = random.Random(seed)
    # Integer capacities: bytes are multiples of 125 and bandwidth 1 Mbit/s, so
    # bytes * 8 / 1e6 * 1e3 is an integer number of ms; rtt is even.
    dag = random_dag(rng, n, byte_unit=125.0)
    costs = integer_costs(rng, n)
    bw, rtt = 1.0, float(2 * rng.randint(0, 20))
    cut = networkx_min_cut(dag, costs["device"], costs["server"], bw, rtt)
    oracle = cut.value_ms
    assert oracle == int(oracle)
    assert reference_latency(dag, costs["device"], costs["server"], cut.placement, bw, rtt) == pytest.approx(oracle)
    for algorithm in ("mincut", "compressed", "parametric"):
        p = tessera.plan(dag, costs, bandwidth_mbps=bw, rtt_ms=rtt, algorithm=algorithm)
        assert p.status == "optimal", p.reason
        assert p.latency_ms == pytest.approx(oracle, rel=1e-12, abs=1e-9), algorithm
        assert p.latency_ms == pytest.approx(
            reference_latency(dag, costs["device"], costs["server"], p.placement, bw, rtt), rel=1e-12)
        assert p.problems() == []


# ---- brute force on small DAGs ---------------------------------------------------

@pytest.mark.parametrize("seed", range(40))
def test_exact_planners_match_brute_force(seed):
    rng = random.Random(100 + seed)
    n = rng.randint(2, 10)
    dag = random_dag(rng, n, skip=0.3, extra_outputs=0.1, byte_unit=500.0)
    costs = {"device": [rng.uniform(0.1, 40) for _ in range(n)], "server": [rng.uniform(0.01, 8) for _ in range(n)]}
    bw, rtt, load = 10 ** rng.uniform(-1, 2), rng.uniform(0, 50), rng.uniform(1, 3)
    best, _ = brute_force(dag, costs["device"], costs["server"], bw, rtt, load)
    chain, _ = brute_force(dag, costs["device"], costs["server"], bw, rtt, load, chain=True)
    got = tessera.plans(dag, costs, bandwidth_mbps=bw, rtt_ms=rtt, server_load=load)
    assert set(got) == set(tplan.planner_names())
    for name in ("mincut", "compressed", "parametric"):
        assert got[name].latency_ms == pytest.approx(best, rel=1e-9), name
    assert got["chain"].latency_ms == pytest.approx(chain, rel=1e-9)
    for name, p in got.items():
        assert p.latency_ms >= best * (1 - 1e-9), name
        assert p.problems() == [], name
    tp = got["throughput"]
    assert tp.throughput_fps > 0 and tp.status in ("optimal", "feasible")


# ---- facade ------------------------------------------------------------------------

class FakeModel:
    """Anything with dag() is a model for the planners (tessera.Model has it)."""

    def __init__(self, dag):
        self._dag = dag

    def dag(self):
        return self._dag


class FakeCostTable:
    def __init__(self, ms):
        self.atom_ms = ms


def small_case():
    rng = random.Random(7)
    dag = random_dag(rng, 12, byte_unit=200.0)
    return dag, integer_costs(rng, 12)


def test_plan_object_and_explain():
    dag, costs = small_case()
    p = tessera.plan(FakeModel(dag), {"device": FakeCostTable(costs["device"]), "server": costs["server"]},
                     bandwidth_mbps=5.85, rtt_ms=20)
    assert isinstance(p, tplan.Plan)
    assert p.status == "optimal" and p.reason == ""
    assert len(p.placement) == 12 and set(p.placement) <= {0, 1}
    assert p.latency_ms > 0 and p.throughput_fps > 0 and p.transfer_bytes >= 0
    atoms = sorted(a for b in p.blocks for a in b.atoms)
    assert atoms == list(range(12))
    text = p.explain()
    assert "mincut plan: optimal" in text
    if 1 in p.placement:
        assert "Mbit/s" in text
    assert "optimal" in repr(p)


def test_constraints_current_and_status_strings():
    dag, costs = small_case()
    total = sum(dag.param_bytes)
    p = tessera.plan(dag, costs, bandwidth_mbps=1.0, algorithm="gads",
                     constraints={"device_memory_bytes": 0.3 * total}, current=[0] * 12)
    assert p.status in ("optimal", "feasible"), p.reason
    assert p.device_memory_bytes <= 0.3 * total * (1 + 1e-9)
    pinned = tessera.plan(dag, costs, bandwidth_mbps=1.0, algorithm="gads",
                          constraints={"device_memory_bytes": 0.0, "pin": [0] + [-1] * 11})
    if dag.param_bytes[0] > 0:
        assert pinned.status == "infeasible"
        assert "device_memory_bytes" in pinned.reason and "pinned" in pinned.reason
    ignored = tessera.plan(dag, costs, bandwidth_mbps=1.0, algorithm="device_only",
                           constraints={"device_memory_bytes": 1.0})
    assert ignored.status == "infeasible" and "gads" in ignored.reason
    assert all(s in tplan.STATUSES for s in (p.status, pinned.status, ignored.status))


def test_parametric_planner_lookup_and_breakpoints():
    dag, costs = small_case()
    par = tplan.ParametricPlanner(dag, costs, rtt_ms=10)
    bps = par.breakpoints()
    assert bps == sorted(bps)
    assert len(par.segments) == len(bps) + 1
    for bw in (0.05, 0.5, 5.85, 50, 5000):
        exact = tessera.plan(dag, costs, bandwidth_mbps=bw, rtt_ms=10)
        assert par.lookup(bw).latency_ms == pytest.approx(exact.latency_ms, rel=1e-9)
        assert par.lookup_placement(bw) == par.lookup(bw).placement


def test_prepared_planner_replans():
    dag, costs = small_case()
    planner = tplan.Planner(dag, costs, "compressed")
    assert planner.name == "compressed"
    for bw in (0.13, 1.1, 5.85, 18.88):
        assert planner.plan(bw, rtt_ms=5).latency_ms == pytest.approx(
            tessera.plan(dag, costs, bandwidth_mbps=bw, rtt_ms=5).latency_ms, rel=1e-12)


def test_validate_rejects_broken_plan():
    dag, costs = small_case()
    cm = tplan.make_cost_model(dag, costs)
    core = _core.evaluate(cm, _core.Context(bandwidth_mbps=1.0), [0] * 6 + [1] * 6)
    assert _core.validate_plan(core, cm) == []
    core.blocks = list(reversed(core.blocks))
    problems = _core.validate_plan(core, cm)
    assert any("not executable in order" in p for p in problems)
    core.placement = [0] * 11
    assert any("entries, the model has" in p for p in _core.validate_plan(core, cm))


# ---- errors -----------------------------------------------------------------------

def test_device_load_scales_device_compute_and_moves_the_cut():
    dag, costs = small_case()
    one = tessera.plan(dag, costs, bandwidth_mbps=1.0, algorithm="device_only")
    two = tessera.plan(dag, costs, bandwidth_mbps=1.0, algorithm="device_only", device_load=2.0)
    assert two.latency_ms == pytest.approx(one.latency_ms + sum(costs["device"]))
    # a busier device never keeps more atoms at home, and some load moves work away
    at = [tessera.plan(dag, costs, bandwidth_mbps=5.0, device_load=x).placement.count(0) for x in (0.2, 1, 5, 50)]
    assert at == sorted(at, reverse=True) and at[0] > at[-1], at


@pytest.mark.parametrize("call,field", [
    (lambda d, c: tessera.plan(d, c, bandwidth_mbps=0.0), "bandwidth_mbps"),
    (lambda d, c: tessera.plan(d, c, bandwidth_mbps=float("nan")), "bandwidth_mbps"),
    (lambda d, c: tessera.plan(d, c, bandwidth_mbps=1.0, rtt_ms=-1), "rtt_ms"),
    (lambda d, c: tessera.plan(d, c, bandwidth_mbps=1.0, device_load=0), "device_load"),
    (lambda d, c: tessera.plan(d, c, bandwidth_mbps=1.0, algorithm="magic"), "algorithm 'magic'"),
    (lambda d, c: tessera.plan(d, c, bandwidth_mbps=1.0, objective="speed"), "objective 'speed'"),
    (lambda d, c: tessera.plan(d, {"device": c["device"][:-1], "server": c["server"]}, 1.0), "compute_ms[0]"),
    (lambda d, c: tessera.plan(d, {"device": c["device"], "server": [float("nan")] * 12}, 1.0), "compute_ms[1][0]"),
    (lambda d, c: tessera.plan(d, {"device": c["device"]}, 1.0), "costs['server']"),
    (lambda d, c: tessera.plan(d, c, 1.0, constraints={"memory": 1}), "unknown field"),
    (lambda d, c: tessera.plan(d, c, 1.0, constraints={"pin": [5] * 12}), "pin[0]"),
    (lambda d, c: tessera.plan(d, c, 1.0, algorithm="gads", current=[0, 1]), "current placement"),
    (lambda d, c: tessera.plan(object(), c, 1.0), "model must be"),
])
def test_errors_are_value_errors_naming_the_field(call, field):
    dag, costs = small_case()
    with pytest.raises(ValueError) as info:
        call(dag, costs)
    assert isinstance(info.value, tessera.InvalidArgumentError)
    assert field in str(info.value)


def test_edge_inputs_are_named_not_crashes():
    """Inputs whose sums overflow, malformed low-level DAGs and NaN lookups: errors that name
    the value, never a segfault, a hang or an 'optimal' plan with inf latency."""
    import sys

    import torch

    ts = tessera
    tplan = sys.modules["tessera.planning"]
    m = ts.load(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                    torch.nn.Linear(8 * 30 * 30, 10)).eval(), torch.randn(1, 3, 32, 32))
    n = m.num_atoms
    costs = {"device": [5.0] * n, "server": [0.5] * n}
    with pytest.raises(ValueError, match=r"must be in \[0, 1e12\] ms"):
        ts.plan(m, {"device": [1e308] * n, "server": [1e308] * n}, bandwidth_mbps=5, algorithm="throughput")
    with pytest.raises(ValueError, match="bandwidth_mbps must be in"):
        ts.plan(m, costs, bandwidth_mbps=5e-324, algorithm="throughput")
    with pytest.raises(ValueError, match="device_load must be in"):
        ts.plan(m, costs, bandwidth_mbps=5, device_load=1e308)
    with pytest.raises(ValueError, match="costs has unknown keys"):
        ts.plan(m, {**costs, "energy_per_byte": 1e-3}, bandwidth_mbps=5)
    with pytest.raises(ValueError, match="sequence of per-atom values"):
        ts.plan(m, {"device": {i: 1.0 for i in range(n)}, "server": costs["server"]}, bandwidth_mbps=5)
    assert list(tplan.plans(m, costs, bandwidth_mbps=5, algorithms="mincut")) == ["mincut"]  # a name, not letters
    table = tplan.ParametricPlanner(m, costs)
    for bad in (float("nan"), 0.0, -1.0, float("inf")):
        with pytest.raises(ValueError, match="bandwidth_mbps must be finite and > 0"):
            table.lookup_placement(bad)
    V = _core.DagValue
    dag = _core.AtomDag(2, [V(-1, [0], 1.0, False), V(0, [7], 1.0, False), V(1, [], 1.0, True)])
    with pytest.raises(ValueError, match=r"consumers\[0\] = 7 is out of range"):
        _core.schedule_blocks(dag, [0, 1])
    cm = _core.CostModel(m.dag(), [[1.0], [1.0]])
    with pytest.raises(ValueError, match="compute_ms"):
        _core.evaluate(cm, tplan.make_context(5.0), [0] * n)
