"""Profiler from Python: ts.profile returns a CostTable planners accept; bad options are refused."""
import json
import os
import subprocess
import sys

import pytest
import torch

import tessera as ts


def test_profile_table(zoo_model, tmp_path):
    m, xs, _ = zoo_model("squeezenet1_0")
    before = torch.get_num_threads()
    t = ts.profile(m, xs, threads=1, repeats=3, warmup=1)
    assert torch.get_num_threads() == before
    assert isinstance(t, ts.CostTable)
    assert t.num_atoms == m.num_atoms and len(t.atom_ms) == m.num_atoms
    assert all(ms > 0 for ms in t.atom_ms)
    assert all(q1 <= ms <= q3 for q1, ms, q3 in zip(t.atom_q1_ms, t.atom_ms, t.atom_q3_ms))
    assert t.param_bytes == [a.param_bytes for a in m.atoms]
    assert len(t.value_bytes) == len(m.graph.values)
    assert t.value_bytes[m.graph.inputs[0]] == 3 * 224 * 224 * 4
    assert t.model_ms > 0 and t.sum_atom_ms == pytest.approx(sum(t.atom_ms))
    # one-atom blocks pay a call each; the sum stays close to the whole model
    assert 0.5 < t.sum_atom_ms / t.model_ms < 2.0
    assert (t.threads, t.repeats, t.warmup, t.model_hash) == (1, 3, 1, m.hash)
    assert "whole model" in t.summary(top=5)
    t.save(tmp_path / "t.json")
    back = ts.CostTable.read(tmp_path / "t.json")
    assert back.atom_ms == t.atom_ms and back.model_ms == t.model_ms
    assert json.loads(t.to_json())["format"] == "tessera-cost-table/1"
    # planners read .atom_ms
    p = ts.plan(m, {"device": t, "server": [x / 4 for x in t.atom_ms]}, bandwidth_mbps=100.0)
    assert p.status == "optimal"


def test_profile_progress(zoo_model):
    m, xs, _ = zoo_model("squeezenet1_0")
    from tessera import _core
    seen = []
    _core.profile(m._core, list(xs), _core.ProfileOptions(threads=1, repeats=2, warmup=1),
                  lambda done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    ts.profile(m, xs, threads=1, repeats=1, warmup=0, progress=True)  # tqdm bar: no error


@pytest.mark.parametrize("kwargs, text", [
    ({"repeats": 0}, "repeats = 0"),
    ({"repeats": -2}, "repeats = -2"),
    ({"warmup": -1}, "warmup = -1"),
    ({"threads": 10_000}, "hardware threads"),
    ({"threads": 0}, "threads = 0"),
    ({"load": -1.0}, "load"),
])
def test_profile_bad_options(zoo_model, kwargs, text):
    m, xs, _ = zoo_model("squeezenet1_0")
    with pytest.raises(ts.InvalidArgumentError, match=text):
        ts.profile(m, xs, **kwargs)


def test_profile_bad_inputs(zoo_model):
    m, xs, _ = zoo_model("squeezenet1_0")
    with pytest.raises(ts.InvalidArgumentError, match="shape"):
        ts.profile(m, torch.randn(1, 3, 32, 32), repeats=1)
    with pytest.raises(ts.InvalidArgumentError, match="tessera.Model"):
        ts.profile("model.pt", xs)
    with pytest.raises(ts.NotFoundError):
        ts.CostTable.read("/nonexistent/table.json")


def test_cli_profile(zoo_path, tmp_path, repo_root):
    path, _ = zoo_path("squeezenet1_0")
    out = tmp_path / "t.json"
    env = dict(os.environ, PYTHONPATH=str(repo_root / "python"))
    r = subprocess.run([sys.executable, "-m", "tessera", "profile", str(path), "--input-shape", "1x3x224x224",
                        "--repeats", "2", "--warmup", "1", "--top", "3", "--json", str(out), "--quiet"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "whole model" in r.stdout and out.exists()
    assert "machine state: canary" in r.stdout  # the canary before and after the profile
    r = subprocess.run([sys.executable, "-m", "tessera", "profile", str(path), "--input-shape", "1x3x224x224",
                        "--repeats", "0"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and "repeats = 0" in r.stderr


def test_profile_settle(zoo_model):
    """settle: rounds outside the canary's reference state run again, capped; off by default."""
    m, xs, _ = zoo_model("squeezenet1_0")
    assert ts.canary_ms() > 0
    t = ts.profile(m, xs, threads=1, repeats=2, warmup=0, settle=0.1, reference_ms=1e-9, max_discarded=3,
                   max_wait_s=0.2)
    assert (t.rounds_discarded, t.settled) == (3, False)
    assert t.waited_ms >= 200  # waited for the state, within the budget
    assert t.canary_ms > 0 and t.canary_reference_ms == 1e-9
    assert "NOT reached" in t.summary(top=1)
    t = ts.profile(m, xs, threads=1, repeats=2, warmup=0, settle=0.1, reference_ms=1e9)
    assert (t.rounds_discarded, t.settled) == (0, True)
    t = ts.profile(m, xs, threads=1, repeats=1, warmup=0)
    assert (t.canary_ms, t.canary_reference_ms) == (0, 0)
    with pytest.raises(ts.InvalidArgumentError, match="settle = -1"):
        ts.profile(m, xs, repeats=1, settle=-1)


def test_machine_check(capsys):
    """The machine check watches the canary in windows (and beside a busy sibling CPU); it
    reports, it does not judge a test: no timing is asserted."""
    import os

    r = ts.machine_check(seconds=0.4, window_s=0.1, progress=False)
    assert len(r.windows_ms) >= 3 and all(w > 0 for w in r.windows_ms)
    assert r.spread >= 1.0 and r.canary_ms > 0 and r.sibling_slowdown is None
    assert "canary" in r.report() and ("steady" in r.report())
    if len(os.sched_getaffinity(0)) >= 2:
        before = os.sched_getaffinity(0)
        r = ts.machine_check(seconds=0.3, window_s=0.1, sibling=True, progress=False)
        assert r.sibling_slowdown > 0 and "other CPU busy" in r.report()
        assert os.sched_getaffinity(0) == before  # the pinning is undone
    for bad in (dict(seconds=0), dict(seconds=1, window_s=2), dict(seconds=-1)):
        with pytest.raises(ValueError, match="window_s"):
            ts.machine_check(**bad)
    from tessera import cli
    assert cli.main(["machine", "--seconds", "0.3", "--window", "0.1", "--quiet"]) == 0
    assert "canary" in capsys.readouterr().out
