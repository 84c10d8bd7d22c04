"""N-node pipelines from Python (issue 14): planning, and streams through real servers."""
import threading

import pytest
import torch

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


# ---- the runtime: streams through real servers ------------------------------------------

def _flat(y):
    if isinstance(y, torch.Tensor):
        return [y]
    out = []
    for v in y:
        out += _flat(v)
    return out


def _frames(xs, n):
    """n inputs like xs: float tensors shifted a little per frame, the others as they are."""
    return [tuple(x + 0.01 * i if x.is_floating_point() else x for x in xs) for i in range(n)]


def _three_nodes(m, endpoints):
    """Unit costs on three nodes and equal_layers: three stages of a third of the atoms each."""
    unit = [1.0] * m.num_atoms
    nodes = [ts.Node("phone", costs=unit), ts.Node("edge-a", costs=unit, endpoint=endpoints[0]),
             ts.Node("edge-b", costs=unit, endpoint=endpoints[1])]
    net = ts.Network(nodes, {("phone", "edge-a"): (20.0, 10.0), ("edge-a", "edge-b"): (1000.0, 1.0),
                             ("phone", "edge-b"): (20.0, 10.0)})
    return ts.plan_pipeline(m, net, algorithm="equal_layers")


def test_every_zoo_model_streams_through_three_nodes(zoo_model, tmp_path):
    names = list(ts.zoo.NAMES)  # every zoo model
    models = {}
    for name in names:
        m, xs, _ = zoo_model(name)
        m.save(tmp_path / name)
        models[name] = (m, xs)
    with ts.Server(tmp_path) as a, ts.Server(tmp_path, workers=2) as b:
        for name, (m, xs) in models.items():
            plan = _three_nodes(m, [a.endpoint, b.endpoint])
            assert [s[0] for s in plan.stages] == ["phone", "edge-a", "edge-b"], name
            pipe = ts.Pipeline(m, plan, in_flight=2, timeout_ms=120000)  # first use loads the atoms
            frames = _frames(xs, 3)
            ys = list(pipe.map(frames))
            for x, y in zip(frames, ys):
                for got, ref in zip(_flat(y), m.run_flat(x)):
                    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5), name
            st = pipe.stats()
            assert st.frames == 3 and st.fallbacks == 0, (name, pipe.records()[0].error)
            assert [s.node for s in st.stages] == ["phone", "edge-a", "edge-b"]
            assert st.stages[2].bytes_in > 0 and st.accounted_fps > 0 and st.bottleneck
        assert a.stats().forwards == b.stats().forwards == 3 * len(models)


def test_a_stage_server_killed_mid_stream(zoo_model, tmp_path, server_process):
    m, xs, _ = zoo_model("resnet18")
    m.save(tmp_path / "resnet18")
    a, b = server_process(tmp_path), server_process(tmp_path)
    pipe = ts.Pipeline(m, _three_nodes(m, [a.endpoint, b.endpoint]), in_flight=4, timeout_ms=1500, retry_ms=300)
    warm = _frames(xs, 4)
    ys = list(pipe.map(warm))
    assert pipe.stats().fallbacks == 0, pipe.records()[0].error
    frames = _frames(xs, 60)
    killer = threading.Timer(0.3, b.kill)
    killer.start()
    ys = list(pipe.map(frames))
    killer.join()
    for x, y in zip(frames, ys):  # every request answered, and answered right
        assert torch.allclose(y, m.run_flat(x)[0], rtol=1e-4, atol=1e-5)
    st = pipe.stats()
    assert st.frames == 60 and st.fallbacks >= 1
    errors = {r.error for r in pipe.records() if r.fallback}
    assert any("edge" in e or "hop" in e or "no result" in e or "backing off" in e for e in errors), errors


def test_bad_pipelines_are_named(zoo_model):
    m, xs, _ = zoo_model("resnet18")
    plan = _three_nodes(m, ["tcp://127.0.0.1:1", ""])
    with pytest.raises(ValueError, match="node 'edge-b', which has no endpoint"):
        ts.Pipeline(m, plan)
    with pytest.raises(ValueError, match=r"unknown node\(s\) \['gpu'\]"):
        ts.Pipeline(m, plan, endpoints={"gpu": "tcp://127.0.0.1:2"})
    with pytest.raises(ValueError, match="emulation"):
        ts.Pipeline(m, plan, endpoints={"edge-b": "tcp://127.0.0.1:2"}, emulation="fast")


def _nodes_json(path, endpoints=("", "")):
    import json
    path.write_text(json.dumps({
        "nodes": [{"name": "phone", "slowdown": 10}, {"name": "edge-a", "speed": 1.0, "endpoint": endpoints[0]},
                  {"name": "edge-b", "speed": 2.0, "endpoint": endpoints[1]}],
        "links": [{"from": "phone", "to": "edge-a", "bandwidth_mbps": 5.85, "rtt_ms": 20},
                  {"from": "edge-a", "to": "edge-b", "bandwidth_mbps": 1000, "rtt_ms": 1}]}))
    return path


def test_cli_plans_and_streams_a_pipeline(zoo_model, tmp_path, server_process, capsys):
    from tessera import cli
    nodes = _nodes_json(tmp_path / "nodes.json")
    assert cli.main(["plan-pipeline", "zoo:squeezenet1_0", "--nodes", str(nodes), "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    for algo in ("dp", "pso_dp", "exhaustive", "equal_layers"):
        assert f"\n{algo} " in out, out
    assert "best: " in out and "stage 0 on phone" in out
    m, xs, _ = zoo_model("squeezenet1_0")
    m.save(tmp_path / "store")
    a, b = server_process(tmp_path / "store"), server_process(tmp_path / "store")
    nodes = _nodes_json(tmp_path / "nodes2.json", (a.endpoint, b.endpoint))
    assert cli.main(["run", "zoo:squeezenet1_0", "--pipeline", str(nodes), "--requests", "4",
                     "--emulation", "account", "--timeout-ms", "60000"]) == 0
    out = capsys.readouterr().out
    assert "4 requests" in out and "0 wrong outputs" in out and "fps accounted" in out, out
    # bad nodes files are named
    bad = tmp_path / "bad.json"
    bad.write_text('{"nodes": [{"name": "phone"}, {"name": "edge", "speed": 1, "slowdown": 2}]}')
    with pytest.raises(ValueError, match="node 'edge' gives speed and slowdown: give one"):
        from tessera.cli.pipeline import read_network
        read_network(bad, m, ts.profile(m, xs, threads=1, repeats=1, warmup=0))


@pytest.mark.parametrize("name", ["alexnet", "vgg11"])
def test_split_stages_stream_equal_to_the_whole_model(zoo_model, tmp_path, name):
    """Intra-layer splits planned by dp for latency (three equal, slow servers on a fast LAN: a stage
    pipelined over nodes still takes its whole time per input, a stage split by rows does not) run through
    real servers and return the whole model's outputs."""
    m, xs, _ = zoo_model(name)
    ct = ts.profile(m, xs, threads=1, repeats=1, warmup=1)
    m.save(tmp_path / name)
    with ts.Server(tmp_path) as a, ts.Server(tmp_path) as b, ts.Server(tmp_path) as c:
        nodes = [ts.Node("phone", speed=0.1, reference=ct)]
        nodes += [ts.Node(f"edge-{i}", speed=0.25, reference=ct, endpoint=s.endpoint) for i, s in enumerate((a, b, c))]
        links = {("phone", f"edge-{i}"): (1000.0, 1.0) for i in range(3)}
        links.update({(f"edge-{i}", f"edge-{j}"): (10000.0, 0.1) for i in range(3) for j in range(3) if i < j})
        net = ts.Network(nodes, links)
        plan = ts.plan_pipeline(m, net, objective="latency", algorithm="dp", split=3)
        plain = ts.plan_pipeline(m, net, objective="latency", algorithm="dp")
        assert any(plan.helpers), plan.explain()          # a stage is split by rows
        assert plan.latency_ms < plain.latency_ms         # and it pays, by the cost model
        assert "split by rows with" in plan.explain()
        pipe = ts.Pipeline(m, plan, in_flight=2, timeout_ms=120000)
        frames = _frames(xs, 2)
        for x, y in zip(frames, pipe.map(frames)):
            assert torch.allclose(y, m.run_flat(x)[0], rtol=1e-4, atol=1e-5)
        st = pipe.stats()
        assert st.fallbacks == 0, pipe.records()[0].error
        split_stage = next(i for i, h in enumerate(plan.helpers) if h)
        assert st.stages[split_stage].tile_ms > 0 and st.stages[split_stage].tile_fallbacks == 0
        assert sum(s.stats().replies for s in (a, b, c)) >= 2  # helpers computed tiles (Requests of rows)


def test_pins_loads_and_the_input_source(zoo_model):
    m, xs, _ = zoo_model("resnet18")
    ct = ts.profile(m, xs, threads=1, repeats=1, warmup=1)
    net = _net(m, ct)
    last = m.num_atoms - 1
    p = ts.plan_pipeline(m, net, algorithm="exhaustive", pin={last: "edge-c"})   # e.g. a head only edge-c has
    assert p.ok() and any(n == "edge-c" and last in atoms for n, atoms in p.stages), p.explain()
    q = ts.plan_pipeline(m, net, algorithm="exhaustive", pin={last: "edge-b"})  # edge-b has no link back
    assert q.status == "infeasible"
    with pytest.raises(ValueError, match="pinned to unknown node 'gpu'"):
        ts.plan_pipeline(m, net, pin={0: "gpu"})
    with pytest.raises(ValueError, match="must start with the input source 'phone'"):
        ts.plan_pipeline(m, net, order=["edge-a", "phone"])
    free = ts.plan_pipeline(m, net, objective="latency", order=["phone", "edge-a"])
    busy_nodes = [ts.Node(n.name, costs=n.costs, speed=n.speed, reference=n.reference, load=3.0 if n.name == "edge-a"
                          else 1.0) for n in net.nodes]
    busy = ts.plan_pipeline(m, ts.Network(busy_nodes, net.links, symmetric=False), objective="latency",
                            order=["phone", "edge-a"])
    assert busy.latency_ms > free.latency_ms  # a loaded server is priced as one


def test_a_pipeline_streams_with_submit_and_poll(zoo_model, tmp_path):
    """The streaming interface from Python: tickets out, (ticket, outputs, record) back, each input once,
    equal to the whole model; map() refuses while submitted inputs are not collected."""
    m, xs, _ = zoo_model("squeezenet1_0")
    m.save(tmp_path / "squeezenet1_0")
    with ts.Server(tmp_path) as a, ts.Server(tmp_path) as b:
        pipe = ts.Pipeline(m, _three_nodes(m, [a.endpoint, b.endpoint]), timeout_ms=120000)
        frames = _frames(xs, 3)
        tickets = [pipe.submit(f) for f in frames]
        assert len(set(tickets)) == 3 and pipe.in_flight == 3
        with pytest.raises(ValueError, match=r"map\(\) while 3 submitted request\(s\) are not collected"):
            list(pipe.map(frames[:1]))
        got = {}
        while len(got) < 3:
            for ticket, y, rec in pipe.poll(1000):
                assert ticket not in got and not rec.fallback
                got[ticket] = y
        assert pipe.in_flight == 0
        for t, f in zip(tickets, frames):
            for g, r in zip(_flat(got[t]), m.run_flat(f)):
                assert torch.allclose(g, r, rtol=1e-4, atol=1e-5)


def test_the_load_switch_is_public():
    sw = ts.adapt.LoadSwitch(100.0, 25.0)  # the latency plan serves 10/s, the pipeline 25/s
    for t in (0.0, 0.05, 0.1, 0.15):
        sw.arrive(t)
    assert sw.decide(1) == "throughput" and "heavy load" in sw.why
