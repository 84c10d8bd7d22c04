"""N-node pipeline planning from Python (issue 14, the planner part)."""
import pytest

import tessera as ts


def _net(m, ct, mem=None):
    phone = [10 * c for c in ct.atom_ms]
    nodes = [ts.Node("phone", costs=phone, memory_mb=mem), ts.Node("edge-a", costs=list(ct.atom_ms)),
             ts.Node("edge-b", speed=0.5, reference=ct), ts.Node("edge-c", speed=2.0, reference=ct)]
    links = {("phone", "edge-a"): ts.Link(bandwidth_mbps=18.88, rtt_ms=10), ("edge-a", "edge-b"): (1000.0, 1.0),
             ("edge-b", "edge-c"): (1000.0, 1.0), ("edge-a", "edge-c"): (1000.0, 1.0), ("phone", "edge-c"): (1.1, 40.0)}
    return ts.Network(nodes, links)


def test_a_model_over_four_nodes(zoo_model):
    m, xs, _ = zoo_model("resnet18")
    ct = ts.profile(m, xs, threads=1, repeats=2, warmup=1)
    net = _net(m, ct)
    dp = ts.plan_pipeline(m, net, algorithm="dp")
    assert dp.status == "optimal" and dp.stages[0][0] == "phone"
    assert sorted(a for _, atoms in dp.stages for a in atoms) == list(range(m.num_atoms))
    best = ts.plan_pipeline(m, net, algorithm="exhaustive")
    naive = ts.plan_pipeline(m, net, algorithm="equal_layers")
    alone = ts.plan_pipeline(m, net, algorithm="dp", order=["phone"])
    assert best.throughput_fps >= dp.throughput_fps * (1 - 1e-9)
    assert best.throughput_fps >= naive.throughput_fps * (1 - 1e-9)
    assert dp.throughput_fps > alone.throughput_fps  # servers help a 10x slower phone
    lat = ts.plan_pipeline(m, net, objective="latency", algorithm="exhaustive")
    assert lat.latency_ms <= best.latency_ms * (1 + 1e-9)
    text = dp.explain()
    assert "stage 0 on phone" in text and "fps" in text


def test_bad_pipeline_specs_are_named(zoo_model):
    m, xs, _ = zoo_model("resnet18")
    ct = ts.profile(m, xs, threads=1, repeats=2, warmup=1)
    ok = [ts.Node("phone", costs=list(ct.atom_ms)), ts.Node("edge", costs=list(ct.atom_ms))]
    with pytest.raises(ValueError, match="unknown node 'cloud'"):
        ts.Network(ok, {("phone", "cloud"): (10.0, 1.0)})
    with pytest.raises(ValueError, match="link to itself"):
        ts.Network(ok, {("edge", "edge"): (10.0, 1.0)})
    with pytest.raises(ValueError, match="edge cannot be reached from phone"):
        ts.Network(ok, {})
    with pytest.raises(ValueError, match="unknown node"):
        ts.plan_pipeline(m, ts.Network(ok, {("phone", "edge"): (10.0, 1.0)}), order=["phone", "gpu"])
    with pytest.raises(ValueError, match="atom costs"):
        ts.plan_pipeline(m, ts.Network([ts.Node("phone", costs=[1.0])], {}))
    tight = [ts.Node("phone", costs=list(ct.atom_ms), memory_mb=0.001), ts.Node("edge", costs=list(ct.atom_ms),
                                                                              memory_mb=0.001)]
    p = ts.plan_pipeline(m, ts.Network(tight, {("phone", "edge"): (10.0, 1.0)}))
    assert p.status == "infeasible" and "memory" in p.reason
