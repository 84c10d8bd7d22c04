"""Predictors from Python: collect samples, train, evaluate, save/load, plug in a Python predictor."""
import os
import subprocess
import sys

import pytest
import torch

import tessera as ts
from tessera import predict as tp


@pytest.fixture(scope="module")
def samples(zoo_path):
    zoo_path("squeezenet1_0")
    return tp.collect(["squeezenet1_0"], threads=(1,), background_loads=(0.0, 0.5), repeats=3, warmup=1, progress=False)


def test_features_from_the_graph(zoo_model):
    m, _, _ = zoo_model("resnet18")
    f = tp.features(m)
    assert len(f) == m.num_atoms
    conv = f[0]
    assert conv.op_class == "conv" and conv.main_kind == "aten::_convolution"
    # first conv of resnet18: 64 x 3 x 7 x 7, stride 2, output 1 x 64 x 112 x 112
    assert conv["flops"] == 2 * 64 * 112 * 112 * 3 * 49
    assert (conv["kernel"], conv["stride"], conv["groups"], conv["c_in"], conv["c_out"]) == (49, 2, 1, 3, 64)
    fc = [x for x in f if x.op_class == "linear"][0]
    assert fc["flops"] == 2 * 1000 * 512
    assert {x.op_class for x in f} >= {"conv", "norm", "eltwise", "pool", "linear"}
    x, names = tp.feature_matrix(tp.samples_of(m))
    assert x.shape == (m.num_atoms, len(names))


def test_flops_follow_argument_order_and_transposed_convolutions():
    """K of a matmul is the left operand's last dim, whichever value was made first; a
    transposed convolution's weight is [C_in, C_out / groups, k...]."""

    class Attn(torch.nn.Module):
        def forward(self, x):                  # x: [1, 197, 64]
            v = x * 2                          # made before a: a lower value id
            a = torch.softmax(x @ x.transpose(1, 2), -1)  # [1, 197, 197]
            return a @ v                       # K = 197

    class ConstLeft(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(8, 16))

        def forward(self, x):                  # x: [16, 5]
            return torch.relu(self.w @ x)      # [8, 5], K = 16

    class Up(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up = torch.nn.ConvTranspose2d(4, 6, 3, stride=2)

        def forward(self, x):                  # [1, 4, 5, 5] -> [1, 6, 11, 11]
            return torch.relu(self.up(x))

    def op_flops(model, xs, kind):
        m = ts.load(torch.jit.script(model.eval()), xs)
        f = [a for a in tp.features(m) if a.main_kind == kind]
        return [a["main_flops"] for a in f]

    assert op_flops(Attn(), (torch.randn(1, 197, 64),), "aten::matmul")[-1] == 2 * 197 * 64 * 197
    assert op_flops(ConstLeft(), (torch.randn(16, 5),), "aten::matmul") == [2 * 8 * 5 * 16]
    up = [a for a in tp.features(ts.load(torch.jit.script(Up().eval()), (torch.randn(1, 4, 5, 5),)))
          if a.op_class == "conv"]
    assert len(up) == 1 and up[0]["main_flops"] == 2 * (4 * 5 * 5) * 6 * 9 + 6 * 11 * 11  # + bias
    assert (up[0]["kernel"], up[0]["groups"], up[0]["stride"]) == (9, 1, 2)


def test_collect_train_evaluate(samples, tmp_path, zoo_model):
    assert len(samples) == 2 * 65
    assert {s.ctx.background_load for s in samples} == {0.0, 0.5}
    tp.write_samples(tmp_path / "s.csv", samples)
    back = tp.read_samples(tmp_path / "s.csv")
    assert [s.ms for s in back] == [s.ms for s in samples]
    m, _, _ = zoo_model("squeezenet1_0")
    for kind in tp.kinds():
        p = tp.train(tmp_path / "s.csv", kind=kind)
        acc = tp.evaluate(p, samples)
        assert acc.atoms > 0 and 0 <= acc.atoms_within <= 1
        if kind == "lookup":
            assert acc.atoms_within == 1.0 and acc.mape == 0
        p.save(tmp_path / f"{kind}.json")
        q = tp.load(tmp_path / f"{kind}.json")
        assert q.kind() == kind
        assert q.predict(samples).ms == pytest.approx(p.predict(samples).ms, rel=1e-6)
        c = tp.costs(m, q, threads=1)
        assert len(c.atom_ms) == m.num_atoms and c.model_ms > 0
        ts.plan(m, {"device": c, "server": c}, bandwidth_mbps=10.0)


def test_unseen_op_gets_analytic_and_a_flag(samples, zoo_model):
    p = tp.train(samples, kind="xgboost", rounds=50)
    m, _, _ = zoo_model("transformer")  # layer_norm, matmul, softmax: never in squeezenet
    c = tp.costs(m, p, threads=1)
    assert any(c.fallback) and not all(c.fallback)
    assert all(ms > 0 for ms in c.atom_ms)


def test_python_predictor_plugs_in(samples, zoo_model, tmp_path):
    class Half(tp.PythonPredictor):
        name = "half-of-analytic"

        def __init__(self, base):
            super().__init__()
            self.base = base

        def predict(self, batch):
            return [0.5 * ms for ms in self.base.predict(batch).ms]

    base = tp.train(samples, kind="analytic")
    half = Half(base)
    m, _, _ = zoo_model("squeezenet1_0")
    c = tp.costs(m, half, threads=1)  # called back from C++
    assert c.atom_ms == pytest.approx([0.5 * x for x in tp.costs(m, base).atom_ms])
    assert half.kind() == "half-of-analytic"
    assert tp.evaluate(half, samples).atoms > 0
    with pytest.raises(ts.UnsupportedError):
        half.update(samples)

    # a TorchScript module over the learned features (as trained in a notebook)
    x, names = tp.feature_matrix(samples, base.predict(samples).ms)
    lin = torch.nn.Linear(len(names), 1)
    with torch.no_grad():
        lin.weight.zero_()
        lin.bias.zero_()
        lin.weight[0, names.index("log_analytic_ms")] = 1.0  # = the analytic estimate
    ts_pred = tp.TorchScriptPredictor(torch.jit.script(lin), base=base, known_classes={"conv", "pool"})
    c2 = tp.costs(m, ts_pred, threads=1)
    assert c2.atom_ms == pytest.approx(tp.costs(m, base).atom_ms, rel=1e-4)
    assert any(c2.fallback)  # eltwise/memory atoms: not in known_classes
    ts_pred.save(tmp_path / "mlp.pt")

    class Broken(tp.PythonPredictor):
        def predict(self, batch):
            return [1.0]  # wrong length

    with pytest.raises(ts.InvalidArgumentError, match="returned 1 values"):
        tp.costs(m, Broken())


def test_collect_settles_on_the_machine_state(zoo_path):
    """collect profiles in the machine's reference state by default: every table carries the
    canary reference of its context; settle=0 turns the canary off."""
    zoo_path("squeezenet1_0")
    tables = []
    tp.collect(["squeezenet1_0"], threads=(1,), background_loads=(0.0, 0.5), repeats=1, warmup=0, progress=False,
               tables=tables)
    assert len(tables) == 2 and all(t.canary_reference_ms > 0 and t.canary_ms > 0 for _, t in tables)
    tables = []
    tp.collect(["squeezenet1_0"], repeats=1, warmup=0, progress=False, tables=tables, settle=0)
    assert tables[0][1].canary_reference_ms == 0
    with pytest.raises(ts.InvalidArgumentError, match="settle = -0.1"):
        tp.collect(["squeezenet1_0"], settle=-0.1)


def test_bad_input(samples, tmp_path):
    with pytest.raises(ts.InvalidArgumentError, match="model list is empty"):
        tp.collect([])
    with pytest.raises(ts.InvalidArgumentError, match="repeats = 0"):
        tp.collect(["squeezenet1_0"], repeats=0)
    with pytest.raises(ts.InvalidArgumentError, match="repeats = -1"):
        tp.collect(["squeezenet1_0"], repeats=-1)
    with pytest.raises(ts.InvalidArgumentError, match="threads = 999"):
        tp.collect(["squeezenet1_0"], threads=(999,))
    with pytest.raises(ts.InvalidArgumentError, match="unknown predictor kind"):
        tp.train(samples, kind="forest")
    with pytest.raises(ts.InvalidArgumentError, match="empty"):
        tp.train([], kind="xgboost")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "tessera-predictor/1", "kind": "xgboost", "analytic": {"fits": [')
    with pytest.raises(ts.InvalidArgumentError, match="corrupt"):
        tp.load(bad)
    p = tp.train(samples, kind="xgboost", rounds=20)
    p.save(tmp_path / "good.json")
    text = (tmp_path / "good.json").read_text()
    (tmp_path / "trunc.json").write_text(text[: len(text) // 2])
    with pytest.raises(ts.InvalidArgumentError):
        tp.load(tmp_path / "trunc.json")
    # a valid JSON shell around a broken XGBoost model
    import json
    j = json.loads(text)
    j["xgboost"]["model"] = '{"learner": "nonsense"}'
    (tmp_path / "xgb.json").write_text(json.dumps(j))
    with pytest.raises(ts.InvalidArgumentError, match="XGBoost model is corrupt"):
        tp.load(tmp_path / "xgb.json")
    with pytest.raises(ts.NotFoundError):
        tp.load(tmp_path / "missing.json")
    with pytest.raises(ts.InvalidArgumentError, match="load"):
        tp.BackgroundLoad(-1)


def test_background_load_slows_a_loop():
    import time

    def spin():
        t0 = time.perf_counter()
        x = torch.randn(256, 256)
        for _ in range(200):
            x = torch.tanh(x)
        return time.perf_counter() - t0

    with tp.BackgroundLoad(0.5) as bl:
        assert len(bl.pids) == 1
        spin()
    assert not bl.pids


def test_cli_predictor(samples, tmp_path, repo_root):
    csv = tmp_path / "s.csv"
    tp.write_samples(csv, samples)
    env = dict(os.environ, PYTHONPATH=str(repo_root / "python"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "tessera", "predictor", *a], capture_output=True,
                                    text=True, env=env, timeout=300)
    r = run("train", "--samples", str(csv), "--kind", "xgboost", "--out", str(tmp_path / "p.json"))
    assert r.returncode == 0, r.stderr
    assert "trained xgboost" in r.stdout
    r = run("eval", str(tmp_path / "p.json"), "--samples", str(csv))
    assert r.returncode == 0, r.stderr
    assert "within +-10%" in r.stdout
    r = run("collect", "--models", "squeezenet1_0", "--repeats", "1", "--warmup", "0", "--quiet",
            "--out", str(tmp_path / "c.csv"))
    assert r.returncode == 0, r.stderr
    assert len(tp.read_samples(tmp_path / "c.csv")) == 65
    r = run("train", "--out", str(tmp_path / "q.json"))
    assert r.returncode == 1 and "model list is empty" in r.stderr
    (tmp_path / "bad.json").write_text("not json")
    r = run("eval", str(tmp_path / "bad.json"), "--samples", str(csv))
    assert r.returncode == 1 and "corrupt" in r.stderr


def test_bench_smoke(repo_root):
    env = dict(os.environ, PYTHONPATH=str(repo_root / "python"), TESSERA_BENCH_SMOKE="1")
    r = subprocess.run([sys.executable, str(repo_root / "bench" / "bench_predictor.py")], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "atoms<=10%" in r.stdout and "learning curve" in r.stdout


def test_a_loaded_xgboost_predictor_keeps_learning(samples, tmp_path):
    """Every update of a predictor loaded from a file adds trees to the loaded ones (its
    training samples are not in the file: retraining from scratch would forget them)."""
    import json

    def trees(path):
        model = json.loads(json.loads(path.read_text())["xgboost"]["model"])
        return int(model["learner"]["gradient_booster"]["model"]["gbtree_model_param"]["num_trees"])

    p = tp.train(samples, kind="xgboost")
    p.save(tmp_path / "a.json")
    first = trees(tmp_path / "a.json")
    q = tp.load(tmp_path / "a.json")
    q.update(samples[:40])
    q.update(samples[40:80])
    q.save(tmp_path / "b.json")
    added = trees(tmp_path / "b.json") - first
    assert added > 0  # a retrain from scratch would have as many trees as the first
    r = tp.load(tmp_path / "a.json")
    r.update(samples[:40])
    r.save(tmp_path / "c.json")
    assert trees(tmp_path / "b.json") - first == 2 * (trees(tmp_path / "c.json") - first)  # two updates, two shares


def test_old_spellings_of_background_load_still_work_with_a_warning(tmp_path):
    """Issue 19: 'load' meant two things (a slowdown factor of a plan's context; cores kept busy
    beside a profile). The second is background_load now; the old spellings warn until 0.3."""
    with pytest.warns(DeprecationWarning, match="MachineState"):
        ctx_cls = tp.Context
    assert ctx_cls is tp.MachineState
    state = tp.MachineState(threads=2, background_load=0.5)
    assert (state.threads, state.background_load) == (2, 0.5)
    class Tiny(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x * 2) + 1

    xs = (torch.randn(1, 8),)
    m = ts.load(torch.jit.script(Tiny().eval()), xs)
    table = ts.profile(m, xs, repeats=1, warmup=0, background_load=0.5, progress=False)
    assert table.background_load == 0.5
    with pytest.warns(DeprecationWarning, match="background_load"):
        assert table.load == 0.5
    with pytest.warns(DeprecationWarning, match="'load=' is now 'background_load='"):
        old = tp.samples_of(m, threads=1, load=0.5)
    assert {s.ctx.background_load for s in old} == {0.5}
    with pytest.raises(TypeError, match="both"):
        tp.samples_of(m, threads=1, load=0.5, background_load=1.0)


# ---- issue 20: judging a predictor (families, interleaved labels, few-shot transfer, plan regret) ----
class _Chain(torch.nn.Module):
    """Three linear layers: 5 atoms, input 1 x 64 (256 bytes), output 1 x 8 (32 bytes)."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = torch.nn.Linear(64, 64), torch.nn.Linear(64, 64), torch.nn.Linear(64, 8)

    def forward(self, x):
        return self.c(torch.relu(self.b(torch.relu(self.a(x)))))


def _chain():
    xs = (torch.randn(1, 64),)
    return ts.load(torch.jit.trace(_Chain().eval(), xs), xs), xs


def test_families_cover_the_zoo():
    from tessera import zoo

    names = [n for fam in tp.FAMILIES.values() for n in fam]
    assert sorted(names) == sorted(zoo.NAMES) and len(names) == len(set(names))
    assert tp.family_of("resnet152") == "resnet" and tp.family_of("googlenet") == "inception"
    assert tp.family_of("my_net") == "my_net"  # a family of its own
    assert tp.family_of("a", {"x": ("a", "b")}) == "x"


def test_interleaved_collection_measures_both_passes_alike():
    """Round-robin per context: A B then A B again; every profile has the same rounds, both
    passes hold the same atoms."""
    m, xs = _chain()
    tabs = []
    passes = tp.collect_interleaved([("a", m, xs), ("b", m, xs)], threads=(1,), background_loads=(0.0, 0.5),
                                    passes=2, repeats=3, warmup=1, progress=False, tables=tabs, settle=0.0)
    assert len(passes) == 2
    order = [(k, lbl, t.background_load) for k, lbl, t in tabs]
    assert order == [(0, "a", 0.0), (0, "b", 0.0), (1, "a", 0.0), (1, "b", 0.0),
                     (0, "a", 0.5), (0, "b", 0.5), (1, "a", 0.5), (1, "b", 0.5)]
    assert {t.repeats for _, _, t in tabs} == {3}
    key = lambda s: (s.label, s.f.atom, s.ctx.threads, s.ctx.background_load)  # noqa: E731
    assert sorted(map(key, passes[0])) == sorted(map(key, passes[1])) and len(passes[0]) == 2 * 2 * m.num_atoms
    with pytest.raises(ts.InvalidArgumentError, match="passes"):
        tp.collect_interleaved([("a", m, xs)], passes=0)


def _relabel(samples, label, scale=1.0, per_class=None):
    """The same atoms under another label, their ms scaled (per op class when given)."""
    out = []
    for s in samples:
        f = (per_class or {}).get(s.f.op_class, scale)
        out += tp._core.make_samples([s.f], s.ctx, [s.ms * f], label)
    return out


def test_leave_one_family_out_never_trains_on_the_held_out_family(samples):
    a = _relabel(samples, "resnet18")
    b = _relabel(samples, "vgg16", scale=5.0)  # the same atoms, 5x slower: a family of its own
    pred = tp.leave_one_family_out(a + b, kind="xgboost", rounds=30)
    only_a = tp.train(a, kind="xgboost", rounds=30)
    assert list(pred.ms)[len(a):] == pytest.approx(list(only_a.predict(b).ms), rel=1e-6)
    ms_b = [s.ms for s in b]
    assert sum(p < 0.5 * m for p, m in zip(list(pred.ms)[len(a):], ms_b)) > 0.8 * len(b)  # never saw the 5x
    with pytest.raises(ts.InvalidArgumentError, match="two families"):
        tp.leave_one_family_out(a, kind="analytic")


def test_adapt_repairs_a_mis_scaled_predictor(samples):
    """A predictor trained on one machine meets a target where convolutions run 3x slower and
    everything else 1.5x: 20 atoms measured there are enough to adapt it (a per-class scale, or
    more trees)."""
    target = _relabel(samples, "squeezenet1_0", per_class={"conv": 3.0}, scale=1.5)  # same model hash
    big = [s for s in target if s.ms >= 0.1]
    shots = big[::len(big) // 20][:20]  # spread over the model
    rest = [s for s in target if all(s is not t for t in shots)]
    assert len(shots) == 20
    exact = tp.train(samples, kind="lookup")  # right on the source machine, 1.5-3x off on the target
    assert tp.evaluate(exact, rest).atoms_within == 0.0
    scaled = tp.adapt(exact, shots, kind="scale")
    assert isinstance(scaled, tp.ScaledPredictor) and scaled.scales["conv"] == pytest.approx(3.0, rel=1e-6)
    assert tp.evaluate(scaled, [s for s in rest if s.f.op_class == "conv"]).atoms_within == 1.0
    assert tp.evaluate(scaled, rest).atoms_within > 0.3
    base = tp.train(samples, kind="xgboost")
    before = list(base.predict(samples).ms)
    trees = tp.adapt(base, shots, kind="trees")
    assert trees.kind() == "xgboost" and tp.evaluate(trees, rest).mape < 0.6 * tp.evaluate(base, rest).mape
    assert list(base.predict(samples).ms) == pytest.approx(before)  # the original is left as it was
    m, _ = _chain()
    assert len(tp.costs(m, scaled).atom_ms) == m.num_atoms  # a Python predictor: planners take it
    with pytest.raises(ts.InvalidArgumentError, match="trees"):
        tp.adapt(base, shots, kind="nope")
    with pytest.raises(ts.InvalidArgumentError, match="samples"):
        tp.adapt(base, [], kind="scale")


def test_plan_regret_equals_a_hand_computed_case():
    """Predicted costs near zero make the device look free; measured, every atom costs 10 ms on the
    server and 100x on the device. Hand-computed: the predicted plan runs all 5 atoms on the device
    (5000 ms); the measured optimum ships input and output (256 + 32 bytes at 10 Mbit/s) and runs
    on the server: 5 x 10 + 20 (rtt) + 288 x 8 / 1e7 x 1e3 ms."""
    m, _ = _chain()
    n = m.num_atoms
    assert n == 5
    [case] = tp.plan_regret(m, [0.001] * n, [10.0] * n, device_factors=[100], bandwidths_mbps=[10], rtts_ms=[20])
    optimum = 5 * 10 + 20 + 288 * 8 / 1e7 * 1e3
    assert case.optimum_ms == pytest.approx(optimum) and case.chosen_ms == pytest.approx(5000.0)
    assert case.regret == pytest.approx(5000.0 / optimum - 1) and not case.split
    same = tp.plan_regret(m, [10.0] * n, [10.0] * n, device_factors=[2, 100], bandwidths_mbps=[1, 100], rtts_ms=[5])
    assert len(same) == 4 and all(c.regret == pytest.approx(0.0) for c in same)
    with pytest.raises(ts.InvalidArgumentError, match="atoms"):
        tp.plan_regret(m, [1.0], [1.0] * n)
