"""Accuracy-aware variants (issue 17): the digits data and CNN, every variant's store split-run
against its unsplit self over a real server, codecs on the wire, accuracy measured, selection
against brute force, the adaptive loop re-choosing when the device or its memory change, and
the errors a user gets."""
import math
import random

import pytest
import torch

import tessera as ts
from tessera import _core, datasets
from tessera.variant import VariantSet, prune_channels


@pytest.fixture(scope="module")
def digits():
    return datasets.digits()


@pytest.fixture(scope="module")
def cnn(digits):
    torch.set_num_threads(1)
    return datasets.digits_cnn(digits, epochs=12)


@pytest.fixture(scope="module")
def vs(digits, cnn):
    torch.set_num_threads(1)
    v = ts.variants(cnn, digits.val.x[:1], make=["wire_fp16", "wire_int8", "wire_zstd", "int8", "int8_static",
                                                 "prune50", "res6", "prune50+wire_int8"],
                    train=digits.train, finetune_epochs=3, progress=False)
    v.profile(device_slowdown=20, repeats=2)
    ts.accuracy(v, digits)
    return v


def test_digits_splits_and_cnn(digits, cnn):
    assert (len(digits.train), len(digits.val), len(digits.test)) == (1078, 359, 360)
    assert digits.train.x.shape[1:] == (1, 8, 8) and float(digits.train.x.max()) <= 1.0
    for split in (digits.train, digits.val, digits.test):  # stratified: every class in every split
        assert set(split.y.tolist()) == set(range(10))
    assert datasets.top1(cnn, digits.test, 128) > 0.9
    assert datasets.digits(size=16).test.x.shape[1:] == (1, 16, 16)
    lo = datasets.binomial_halfwidth(0.97, 360)
    assert 0.01 < lo < 0.03


def test_every_variant_runs_split_like_itself(vs, digits, tmp_path, server_process):
    repo = vs.save(tmp_path / "repo")
    srv = server_process(repo)
    x = digits.test.x[3:4]
    for v in vs:
        n = v.model.num_atoms
        whole = v.model.run_flat([x])[0]
        cm = vs.cost_model(v)
        for k in sorted({0, 1, n // 3, n // 2, n - 1}):
            placement = [0] * k + [1] * (n - k)
            plan = _core.evaluate(cm, _core.Context(bandwidth_mbps=1.0), placement)
            if any(t.bytes >= 1e15 for t in plan.transfers):  # a quantized activation: never cut there
                continue
            o = _core.DeploymentOptions()
            o.server, o.timeout_ms, o.codec = srv.endpoint, 10000, v.codec
            d = _core.Deployment(v.model._core, placement, o)
            y = d.run([x])[0]
            tl = d.last_timeline()
            assert not tl.fallback, [b.error for b in tl.blocks]
            if v.codec in ("", "zstd"):
                assert torch.equal(y, whole), (v.name, k)
            else:  # exactly what the codec's round trip at the cut gives
                assert torch.equal(y, vs.runner(v, placement)(x)[0]), (v.name, k)
                assert (y - whole).abs().max() <= 0.05 * whole.abs().max() + 1e-6
            if k < n:
                assert all(b.codec_up == v.codec for b in tl.blocks if b.remote and b.atoms[0] > 0)


def test_int8_wire_bytes_and_codec_bounds():
    x = torch.randn(1, 64, 32, 32)
    for codec, most in (("int8", 0.26), ("int8_channel", 0.26), ("fp16", 0.51), ("bf16", 0.51)):
        nbytes, params, used = _core.codec_wire_bytes(x, codec)
        assert used == codec and (nbytes + params) <= most * x.numel() * 4
    y = _core.codec_round_trip(x, "int8")
    scale = (float(x.max()) - float(x.min())) / 255
    assert float((y - x).abs().max()) <= scale / 2 * 1.0001
    assert torch.equal(_core.codec_round_trip(x, "zstd"), x)
    with pytest.raises(ts.InvalidArgumentError, match="codec 'int4' is unknown"):
        _core.codec_round_trip(x, "int4")


def test_static_int8_is_never_cut_at_quantized_values(vs):
    v = vs["int8_static"]
    dag = v.model.dag()
    quantized = [i for i, val in enumerate(dag.values) if val.dtype not in ("", "float32", "int64")]
    assert quantized, "the static int8 model has no quantized activations between atoms"
    cm = vs.cost_model(v)
    for bw in (0.01, 1.0, 1000.0):
        plan = _core.make_plan("mincut", cm, _core.Context(bandwidth_mbps=bw, rtt_ms=5))
        assert not any(t.value in quantized for t in plan.transfers), bw
    # a plan cutting there is refused by name
    val = dag.values[quantized[0]]
    n = v.model.num_atoms
    placement = [0 if a <= val.producer else 1 for a in range(n)]
    problems = _core.validate_plan_on(_core.plan_from_placement(dag, placement, 2), dag, 2)
    assert any("no wire carries" in p and val.dtype in p for p in problems), problems
    # its packed int8 weights are counted (they were 0 before)
    assert v.param_bytes > 0.2 * vs.base.param_bytes


def test_prune_keeps_the_largest_l1_channels():
    torch.manual_seed(0)
    net = datasets.DigitsCNN().eval()
    first = net.features[0]
    norms = first.weight.detach().abs().flatten(1).sum(1)
    p = prune_channels(net, 0.5)
    kept = p.features[0].weight.detach()
    expect = first.weight.detach()[norms.topk(8).indices.sort().values]
    assert torch.equal(kept, expect)
    assert p(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert sum(q.numel() for q in p.parameters()) < 0.45 * sum(q.numel() for q in net.parameters())
    import torchvision

    for build in (torchvision.models.mobilenet_v2, torchvision.models.resnet18):
        m = build(weights=None).eval()
        pm = prune_channels(m, 0.3)
        assert pm(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
        assert sum(q.numel() for q in pm.parameters()) < sum(q.numel() for q in m.parameters())
    with pytest.raises(ts.UnsupportedError, match="no inner channels"):
        prune_channels(torch.nn.Sequential(torch.nn.Linear(4, 4)), 0.3)


def test_accuracy_is_measured_not_assumed(vs, digits):
    rows = {r["variant"]: r for r in vs.table()}
    assert rows["fp32"]["loss_pct"] == 0
    base = vs.base.score
    assert base == pytest.approx(datasets.top1(vs.base.module, digits.val, 0))
    for v in vs:
        if v.codec:  # the same network: its model-level loss is the network's
            assert v.score == vs[v.name.split("+")[0] if "+" in v.name else "fp32"].score
    # res6 throws information away: it must measure worse than the original
    assert vs["res6"].score < base
    # a user's own metric
    rows = ts.accuracy(vs, digits.val, metric=lambda f, d: -float(torch.nn.functional.cross_entropy(
        torch.cat([f(d.x[i:i + 1])[0] for i in range(20)]), d.y[:20])))
    assert {r["variant"] for r in rows} == set(vs.names())
    ts.accuracy(vs, digits)  # back to top-1 for the other tests


def test_selection_matches_brute_force_and_names_impossible_budgets(vs):
    cands = vs.candidates(rtt_ms=10)
    sel = _core.VariantSelector(cands)
    rng = random.Random(4)
    for _ in range(300):
        ctx = _core.Context(bandwidth_mbps=10 ** rng.uniform(-1.5, 2.5), rtt_ms=10, device_load=rng.choice([1, 2, 5]),
                            device_memory_budget_bytes=rng.choice([math.inf, 1e5, 5e4]))
        budget = rng.choice([0, 0.005, 0.01, 0.02, 0.5])
        ok = [c for c in cands if c.loss <= budget + 1e-12 and c.device_memory_bytes <= ctx.device_memory_budget_bytes]
        if not ok:
            with pytest.raises(ts.NotFoundError):
                sel.select(ctx, budget)
            continue
        best = min(c.latency_ms(ctx) for c in ok)
        ch = sel.select(ctx, budget)
        assert ch.latency_ms == pytest.approx(best)
        assert cands[ch.index].loss <= budget + 1e-12
    # the one-shot planner: (variant, split, codec) for a context, with the plan's explanation
    r = vs.plan(1.1, 0.01, rtt_ms=10, device_load=2)
    assert r["loss"] <= 0.01 and r["variant"] in vs.names() and "latency" in r["plan"].explain()
    ctx = _core.Context(bandwidth_mbps=1.1, rtt_ms=10, device_load=2)
    assert r["plan"].latency_ms == pytest.approx(min(c.latency_ms(ctx) for c in cands if c.loss <= 0.01 + 1e-12))
    lossy = [c for c in cands if c.loss > 0]
    assert lossy, "some variant measured a loss (res6 at least)"
    least = min(lossy, key=lambda c: c.loss)
    with pytest.raises(ts.NotFoundError, match=rf"least loss available is {100 * least.loss:.4g}% \({least.name}\)"):
        _core.VariantSelector(lossy).select(_core.Context(bandwidth_mbps=1), 0.0)


def test_variant_deployment_rechooses_when_device_and_memory_change(vs, digits, tmp_path, server_process):
    repo = vs.save(tmp_path / "repo")
    srv = server_process(repo)
    # the device as profiled (20x this machine): ~1.4 ms on the device against >= 50 ms of round trip,
    # so that no hiccup of a loaded machine (x20 when accounted) can make offloading look better
    link = ts.Link(bandwidth_mbps=20, rtt_ms=50)
    dep = ts.AdaptiveDeployment(vs.base.model, None, server=srv.endpoint, link=link, variants=vs,
                                accuracy_budget=0.02, rtt_ms=50, device_slowdown=20, emulation="account",
                                initial_bandwidth_mbps=20)
    assert isinstance(dep, ts.VariantDeployment)
    xs = [digits.test.x[i:i + 1] for i in range(12)]

    def run(x):
        y = dep(x)
        r = dep.timeline[-1]
        v = vs[r["variant"]]
        assert r["loss"] <= 0.02 + 1e-12
        placement = list(dep._deps[vs.names().index(v.name)].placement)
        assert torch.equal(y, vs.runner(v, placement)(x)[0]), r
        return r

    fast = [run(x) for x in xs[:4]]
    assert all(r["device_atoms"] == r["atoms"] for r in fast[1:]), fast  # a fast device keeps everything
    dep.set_device_slowdown(4000)  # the device becomes 200x slower than profiled: offloading pays
    slow = [run(x) for x in xs[4:10]]
    assert slow[-1]["device_atoms"] < slow[-1]["atoms"], [(r["variant"], r["device_load"], r["predicted_ms"], r["latency_ms"], r["why"]) for r in slow]
    assert any(r["switched"] for r in slow)
    assert slow[-1]["device_load"] > 3  # the monitor saw the slower device (EWMA of its samples)
    # memory: only variants whose device part fits may run
    dep.set_memory_budget(1e-6)
    r = run(xs[10])
    cand_mem = [c for c in dep.selector.candidates if c.name == r["variant"]]
    assert min(c.device_memory_bytes for c in cand_mem) <= 1.0
    for key in ("variant", "codec", "device_atoms", "bytes_up", "bytes_down", "predicted_ms", "latency_ms",
                "bandwidth_estimate", "decide_us", "why"):
        assert key in r
    with pytest.raises(ts.NotFoundError, match="least loss available"):
        worse = VariantSet([v for v in vs if v.name == "res6"], vs.example_inputs)
        worse.metric, worse.base_score, worse.codec_costs = vs.metric, vs.base_score, vs.codec_costs
        ts.AdaptiveDeployment(None, None, server=srv.endpoint, variants=worse, accuracy_budget=0.0)
    with pytest.raises(ts.InvalidArgumentError, match="accuracy_budget"):
        ts.AdaptiveDeployment(vs.base.model, None, server=srv.endpoint, variants=vs)


def test_fidelity_without_labels():
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(8 * 14 * 14, 20), torch.nn.ReLU(), torch.nn.Linear(20, 5)).eval()
    x = torch.randn(1, 3, 16, 16)
    vs = ts.variants(net, x, make=["wire_fp16", "int8"], progress=False)
    rows = {r["variant"]: r for r in ts.fidelity(vs, torch.randn(16, 3, 16, 16))}
    assert rows["fp32"]["agreement"] == 1.0 and rows["fp32"]["rel_err"] == 0.0
    assert 0 < rows["int8"]["rel_err"] < 0.1
    with pytest.raises(ts.InvalidArgumentError, match="needs the eager nn.Module"):
        ts.variants(vs.base.model, x, make=["int8"], progress=False)
    with pytest.raises(ts.InvalidArgumentError, match="unknown variant 'int4'"):
        ts.variants(net, x, make=["int4"], progress=False)
    with pytest.raises(ts.InvalidArgumentError, match="unknown codec 'lz4'"):
        ts.variants(net, x, make=["wire_lz4"], progress=False)


def test_cli_variants_prints_the_table(capsys):
    from tessera.cli import main

    assert main(["variants", "digits", "--make", "wire_int8", "int8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "top1" in out and "wire_int8" in out and "cut_bytes" in out
