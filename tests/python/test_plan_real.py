"""Planners on the real atom DAGs of torchvision models (resnet50, googlenet,
inception_v3, densenet121, mobilenet_v2): the C++ min cut against an independent
networkx max-flow on the same DADS cost graph (integer capacities), and the
contract checker on every planner's plan.

Costs are synthetic but deterministic (no profiling, so the test is fast):
device ms = 1e-6 x the atom's output bytes + 0.05, server ms = device ms / 10.
"""
import importlib

import pytest

from tessera.testing import NetworkxDads

tplan = importlib.import_module("tessera.planning")

MODELS = ["resnet50", "googlenet", "inception_v3", "densenet121", "mobilenet_v2"]
BANDWIDTHS = [0.13, 1.1, 5.85, 18.88, 100.0]  # Mbit/s (DADS's classes and a fast link)
RTT_MS = 20.0
SCALE = 10 ** 6  # networkx capacities: integer nanoseconds (ms x 1e6)


def synthetic_costs(model):
    dev = [1e-6 * a.output_bytes + 0.05 for a in model.atoms]
    return {"device": dev, "server": [d / 10 for d in dev]}


@pytest.mark.parametrize("name", MODELS)
def test_mincut_matches_networkx_on_real_graph(zoo_model, name):
    m, _, _ = zoo_model(name)
    dag = m.dag()
    costs = synthetic_costs(m)
    planner = tplan.Planner(dag, costs, "mincut")
    oracle = NetworkxDads(dag, costs["device"], costs["server"], RTT_MS, scale=SCALE)
    for bw in BANDWIDTHS:
        ours = planner.plan(bw, rtt_ms=RTT_MS)
        assert ours.status == "optimal"
        oracle.set_bandwidth(bw)
        cut = oracle.cut()
        ref, finite = cut.value_ms, cut.finite_edges
        # rounding each finite capacity to 1/SCALE ms moves the optimum by at most finite / (2 SCALE)
        assert ours.objective == pytest.approx(ref, abs=finite / (2 * SCALE) + 1e-9 * ref), (name, bw)
        assert ours.latency_ms == pytest.approx(ours.objective, rel=1e-12)


@pytest.mark.parametrize("name", MODELS)
def test_every_planner_valid_on_real_graph(zoo_model, name):
    m, _, _ = zoo_model(name)
    dag = m.dag()
    costs = synthetic_costs(m)
    budget = 0.3 * sum(dag.param_bytes)
    for bw in (1.1, 18.88):
        plans = tplan.plans(dag, costs, bandwidth_mbps=bw, rtt_ms=RTT_MS)
        plans["gads"] = tplan.plan(dag, costs, bandwidth_mbps=bw, rtt_ms=RTT_MS, algorithm="gads",
                                   constraints={"device_memory_bytes": budget})
        assert set(plans) == set(tplan.planner_names())
        for alg, p in plans.items():
            assert p.problems() == [], (name, bw, alg, p.problems()[:3])
            assert p.status in ("optimal", "feasible"), (name, bw, alg, p.status, p.reason)
            assert len(p.placement) == dag.num_atoms
        best = plans["mincut"].latency_ms
        for alg in ("compressed", "parametric"):  # exact planners: the same optimum
            assert plans[alg].latency_ms == pytest.approx(best, rel=1e-9), (name, bw, alg)
        for alg in ("device_only", "server_only", "chain", "throughput"):  # nothing beats the exact cut
            assert plans[alg].latency_ms >= best * (1 - 1e-9), (name, bw, alg)
        assert plans["gads"].device_memory_bytes <= budget * (1 + 1e-9)
        assert plans["gads"].latency_ms >= best * (1 - 1e-9)


def test_cli_plan_side_by_side(tmp_path, repo_root):
    """`tessera plan zoo:squeezenet1_0` prints every planner; cost tables replace profiling."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(repo_root / "python"))
    cmd = [sys.executable, "-m", "tessera", "plan", "zoo:squeezenet1_0", "--bandwidth", "5.85", "--rtt", "20",
           "--memory-mb", "1", "--explain", "mincut"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [ln for ln in out.stdout.splitlines() if " plan: " not in ln]  # table rows, not explain()
    for name in tplan.planner_names():
        row = [ln for ln in lines if ln.startswith(name + " ")]
        assert len(row) == 1, (name, out.stdout)
        assert any(s in row[0] for s in ("optimal", "feasible", "infeasible")), row[0]
    assert "device_only  infeasible" in out.stdout  # 5 MB of weights over a 1 MB budget
    assert "mincut plan: " in out.stdout and "lowest predicted latency:" in out.stdout

    # Cost tables instead of profiling (the same table for both sides: a device as fast as the server).
    import tessera as ts
    path, xs = ts.zoo.torchscript("squeezenet1_0")
    m = ts.load(str(path), xs)
    ts.profile(m, xs, threads=1, repeats=1, warmup=0).save(tmp_path / "ct.json")
    out = subprocess.run([sys.executable, "-m", "tessera", "plan", "zoo:squeezenet1_0", "--bandwidth", "1",
                          "--costs-device", str(tmp_path / "ct.json"), "--costs-server", str(tmp_path / "ct.json")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cost tables" in out.stdout
    mincut_row = [ln for ln in out.stdout.splitlines() if ln.startswith("mincut ") and " plan: " not in ln][0]
    assert "all on device" in mincut_row  # equal speeds: sending anything only costs time
