"""Split and pipeline-parallel training, the planning side (issue 22): simulate_training,
plan_training against brute force over every cut, memory bounds, named errors, the Gantt chart."""
import itertools
import math
import random

import pytest

import tessera as ts
from tessera import planning


def _chain(n, act=1e5, params=None, outputs_bytes=1e3):
    """An AtomDag chain of n atoms: input -> 0 -> 1 -> ... -> n-1 -> output."""
    values = [planning.DagValue(producer=-1, consumers=[0], bytes=act, name="x")]
    for a in range(n):
        last = a == n - 1
        values.append(planning.DagValue(producer=a, consumers=[] if last else [a + 1],
                                        bytes=outputs_bytes if last else act, is_output=last, name=f"v{a}"))
    return planning.AtomDag(num_atoms=n, values=values, param_bytes=params or [0.0] * n, atom_names=[])


def test_simulate_two_equal_stages_by_hand():
    stages = [{"node": 0, "fwd_ms": 1, "bwd_ms": 2}, {"node": 1, "fwd_ms": 1, "bwd_ms": 2}]
    g = planning.simulate_training(stages, 4, "gpipe")
    o = planning.simulate_training(stages, 4, "1f1b")
    assert g.makespan_ms == pytest.approx((4 + 2 - 1) * 3) == o.makespan_ms
    assert list(g.peak_in_flight) == [4, 4] and list(o.peak_in_flight) == [2, 1]
    assert {e.op for e in o.events} == {"F", "B", "send_F", "send_B", "update"}  # sends and updates of 0 ms too
    ops = sorted((e.stage, e.op, e.micro_batch) for e in o.events if e.op in ("F", "B"))
    assert len(ops) == 2 * 2 * 4
    # stages given as bound objects, and stages on one node share it
    same = [planning.TrainingStage(node=0, fwd_ms=1, bwd_ms=2), planning.TrainingStage(node=0, fwd_ms=1, bwd_ms=2)]
    assert planning.simulate_training(same, 4).makespan_ms == pytest.approx(24)


def test_simulate_bad_input_is_named():
    with pytest.raises(ts.InvalidArgumentError, match="unknown field"):
        planning.simulate_training([{"node": 0, "fwd": 1}], 2)
    with pytest.raises(ts.InvalidArgumentError, match=r"stages\[0\].fwd_ms = -1"):
        planning.simulate_training([{"fwd_ms": -1}], 2)
    with pytest.raises(ts.InvalidArgumentError, match="micro_batches = 0"):
        planning.simulate_training([{"fwd_ms": 1}], 0)
    with pytest.raises(ts.InvalidArgumentError, match="zigzag"):
        planning.simulate_training([{"fwd_ms": 1}], 1, "zigzag")
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        planning.simulate_training({"fwd_ms": 1}, 1)


def _random_problem(rng, n):
    dag = _chain(n, params=[rng.uniform(0, 2e5) for _ in range(n)])
    fwd = {"device": [rng.uniform(2, 20) for _ in range(n)], "server": [rng.uniform(0.2, 4) for _ in range(n)]}
    bwd = {k: [2 * x for x in v] for k, v in fwd.items()}
    return dag, fwd, bwd


def test_plan_equals_brute_force_over_cuts_and_micro_batches():
    rng = random.Random(22)
    for trial in range(12):
        n = 2 + trial % 5
        dag, fwd, bwd = _random_problem(rng, n)
        kw = dict(batch_size=8, bandwidth_mbps=rng.uniform(20, 500), rtt_ms=rng.uniform(0, 4),
                  labels_on_device=trial % 2 == 0, micro_batch_overhead_ms=0.1)
        plan = planning.plan_training(dag, fwd, bwd, micro_batches=(1, 2, 4), **kw)
        best = math.inf
        for p, q in itertools.combinations_with_replacement(range(n + 1), 2):
            if not kw["labels_on_device"] and q != n:
                continue
            placement = [0] * p + [1] * (q - p) + [0] * (n - q)
            for m, sched in itertools.product((1, 2, 4), ("1f1b", "gpipe")):
                r = planning.evaluate_training(dag, fwd, bwd, placement, m, sched, **kw)
                if r.ok:
                    best = min(best, r.step_ms)
        assert plan.status == "optimal"
        assert plan.step_ms == pytest.approx(best, rel=1e-9)
        assert plan.samples_per_s == pytest.approx(8 * 1000 / plan.step_ms)
        assert len(plan.placement) == n and set(plan.placement) <= {0, 1}
        assert plan.stages[0][0] == "device"
        if kw["labels_on_device"]:
            assert plan.stages[-1][0] == "device"  # the loss on the device: a U shape


def test_the_result_reads_like_a_plan():
    dag, fwd, bwd = _random_problem(random.Random(1), 6)
    plan = planning.plan_training(dag, fwd, bwd, batch_size=32, bandwidth_mbps=100, rtt_ms=2)
    assert plan.micro_batches in (1, 2, 4, 8) and plan.schedule in ("1f1b", "gpipe")
    assert set(plan.memory_bytes) == {"device", "server"}
    assert plan.memory_bytes["device"] == pytest.approx(plan.param_bytes["device"] + plan.stored_bytes["device"])
    text = plan.explain()
    assert "samples/s" in text and "Memory" in text and "device" in text
    assert plan.events and {e.op for e in plan.events} >= {"F", "B"}
    assert max(e.end_ms for e in plan.events) == pytest.approx(plan.step_ms)
    assert list(plan.micro_batch_choices) == [1, 2, 4, 8] and len(plan.best_step_ms) == 4
    assert plan.step_ms == pytest.approx(min(plan.best_step_ms))
    assert "TrainingPlan(" in repr(plan) and plan.ok


def test_memory_forces_another_cut_and_is_named_when_nothing_fits():
    n = 4
    dag = _chain(n, act=1e3, params=[0, 0, 0, 1e6])
    fwd = {"device": [10.0] * n, "server": [1.0] * n}
    bwd = {"device": [20.0] * n, "server": [2.0] * n}
    kw = dict(batch_size=4, bandwidth_mbps=1000)
    free = planning.plan_training(dag, fwd, bwd, **kw)
    assert free.placement == [1, 1, 1, 1]
    bound = planning.plan_training(dag, fwd, bwd, memory_bytes={"server": 2.5e6}, **kw)  # 3e6 for atom 3 + momentum
    assert bound.placement == [1, 1, 1, 0] and bound.memory_bytes["server"] <= 2.5e6
    adam = planning.plan_training(dag, fwd, bwd, memory_bytes={"server": 3.5e6}, optimizer="adam", **kw)
    assert adam.placement == [1, 1, 1, 0]  # 4e6 with Adam's two moments
    with pytest.raises(ts.InvalidArgumentError, match=r"no placement fits.*'(device|server)'.* by "):
        planning.plan_training(dag, fwd, bwd, memory_bytes={"server": 2.5e6, "device": 1e6}, **kw)
    over = planning.evaluate_training(dag, fwd, bwd, [1, 1, 1, 1], 1, memory_bytes={"server": 2.5e6}, **kw)
    assert over.status == "infeasible" and "'server'" in over.reason


def test_bad_input_is_named():
    dag, fwd, bwd = _random_problem(random.Random(3), 4)
    kw = dict(batch_size=8, bandwidth_mbps=100)
    with pytest.raises(ts.InvalidArgumentError, match=r"micro_batches\[1\] = 0"):
        planning.plan_training(dag, fwd, bwd, micro_batches=[1, 0], **kw)
    with pytest.raises(ts.InvalidArgumentError, match=r"backward_ms\[1\]\[2\]"):
        planning.plan_training(dag, fwd, {"device": bwd["device"], "server": [1, 1, -1, 1]}, **kw)
    with pytest.raises(ts.InvalidArgumentError, match=r"backward_ms\[0\] \('device'\) has 3 atom costs"):
        planning.plan_training(dag, fwd, {"device": [1, 1, 1], "server": bwd["server"]}, **kw)
    with pytest.raises(ts.InvalidArgumentError, match="unknown node"):
        planning.plan_training(dag, fwd, {**bwd, "cloud": [1] * 4}, **kw)
    with pytest.raises(ts.InvalidArgumentError, match="batch_size = 0"):
        planning.plan_training(dag, fwd, bwd, batch_size=0, bandwidth_mbps=100)
    with pytest.raises(ts.InvalidArgumentError, match="bandwidth_mbps is missing"):
        planning.plan_training(dag, fwd, bwd, batch_size=8)
    with pytest.raises(ts.InvalidArgumentError, match="lion"):
        planning.plan_training(dag, fwd, bwd, optimizer="lion", **kw)
    with pytest.raises(ts.InvalidArgumentError, match="gpipe, 1f1b"):
        planning.plan_training(dag, fwd, bwd, schedules="zigzag", **kw)


def test_n_nodes_through_a_network():
    n = 6
    dag = _chain(n, act=2e4)
    nodes = [ts.Node("phone", costs=[10.0] * n), ts.Node("edge-a", costs=[1.0] * n), ts.Node("edge-b", costs=[1.0] * n)]
    net = ts.Network(nodes, {("phone", "edge-a"): (100.0, 2.0), ("edge-a", "edge-b"): (1000.0, 0.5),
                             ("edge-b", "phone"): (100.0, 2.0)})
    bwd = {"phone": [20.0] * n, "edge-a": [2.0] * n, "edge-b": [2.0] * n}
    plan = planning.plan_training(dag, None, bwd, batch_size=8, network=net, micro_batches=(1, 4))
    assert plan.status == "optimal" and plan.stages[0][0] == "phone" and plan.stages[-1][0] == "phone"
    names = [s for s, _ in plan.stages]
    assert "edge-a" in names and "edge-b" in names  # two equal servers share the work
    alone = planning.plan_training(dag, None, bwd, batch_size=8, network=net, micro_batches=(1, 4),
                                   order=["phone", "edge-a"])
    assert plan.step_ms < alone.step_ms
    assert "edge-a" in plan.explain()


def test_a_real_models_dag(zoo_model):
    m, _, _ = zoo_model("resnet18")
    dag = m.dag()
    n = m.num_atoms
    fwd = {"device": [5.0] * n, "server": [0.5] * n}
    bwd = {k: [2 * x for x in v] for k, v in fwd.items()}
    plan = planning.plan_training(m, fwd, bwd, batch_size=16, bandwidth_mbps=50, rtt_ms=10)
    assert plan.ok and len(plan.placement) == n == dag.num_atoms
    assert plan.stages[-1][0] == "device"
    assert plan.samples_per_s > 0 and "samples/s" in plan.explain()


def test_plot_training_timeline():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    dag, fwd, bwd = _random_problem(random.Random(4), 5)
    plan = planning.plan_training(dag, fwd, bwd, batch_size=8, bandwidth_mbps=50, micro_batches=(4,))
    ax = planning.plot_training_timeline(plan)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "device" in labels and any("->" in t for t in labels) == any(e.to_node >= 0 for e in plan.events)
    tl = planning.simulate_training([{"node": 0, "fwd_ms": 1, "bwd_ms": 2, "send_fwd_ms": 0.5},
                                     {"node": 1, "fwd_ms": 1, "bwd_ms": 2, "send_bwd_ms": 0.5}], 4)
    ax2 = planning.plot_training_timeline(tl, node_names=["phone", "edge"])
    assert [t.get_text() for t in ax2.get_yticklabels()] == ["phone", "edge", "phone -> edge", "edge -> phone"]
    import matplotlib.pyplot as plt
    plt.close("all")
