"""Bad input on the command line and in the Python API: one line naming what was wrong,
an exit code, never a traceback; and nothing is profiled before the input is checked."""
import pytest
import torch  # noqa: F401  (before tessera)

import tessera as ts
from tessera import cli
from tessera import predict as tp


def run_cli(capsys, *argv):
    """(exit code, stderr) of `tessera ARGV` run in this process."""
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse (2) and SystemExit("message") (1)
        code = e.code if isinstance(e.code, int) else 1
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=__import__("sys").stderr)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


@pytest.mark.parametrize("argv, code, words", [
    (["zoo", "nosuch"], 1, "unknown zoo model 'nosuch'"),
    (["inspect", "zoo:nosuch"], 1, "unknown zoo model 'nosuch'"),
    (["inspect", "zoo:squeezenet1_0", "--dtype", "nosuch"], 2, "'nosuch' is not a torch dtype"),
    (["run", "zoo:squeezenet1_0", "--server", "tcp://127.0.0.1:9", "--requests", "0"], 2, "0 must be >= 1"),
    (["run", "zoo:squeezenet1_0", "--server", "tcp://127.0.0.1:9", "--threads", "-2"], 2, "-2 must be >= 1"),
    (["run", "zoo:squeezenet1_0", "--server", "tcp://127.0.0.1:9", "--adaptive", "--plan", "throughput"], 1,
     "got --plan throughput"),
    (["plan", "zoo:squeezenet1_0", "--bandwidth", "5", "--explain", "nosuch"], 1, "--explain nosuch: not a planner"),
    (["plan", "zoo:squeezenet1_0", "--bandwidth", "5", "--device-slowdown", "-2"], 2,
     "-2 must be a finite number > 0"),
    (["serve", "/nonexistent/repository"], 1, "/nonexistent/repository"),
    (["run", "zoo:squeezenet1_0"], 1, "give --server ENDPOINT"),
    (["run", "zoo:squeezenet1_0", "--server", "tcp://127.0.0.1:9", "--pipeline", "n.json"], 1, "exclude each other"),
    (["plan-pipeline", "zoo:squeezenet1_0", "--nodes", "/nonexistent/nodes.json"], 1,
     "/nonexistent/nodes.json: no such nodes file"),
    (["predictor", "collect", "--models", "nosuch", "--out", "x.csv"], 1, "unknown zoo model 'nosuch'"),
])
def test_cli_names_bad_input(capsys, argv, code, words):
    got, err = run_cli(capsys, *argv)
    assert got == code and words in err, (got, err)


def test_cli_missing_directory_is_named(capsys, tmp_path):
    target = tmp_path / "missing" / "device"
    code, err = run_cli(capsys, "keygen", "--out", str(target))
    assert code == 1 and str(target) in err, err


def test_api_rejects_meaningless_values(zoo_model, tmp_path):
    with pytest.raises(ValueError, match="scale = 0"):
        ts.Link(trace=[(0, 1.0), (1, 2.0)], scale=0)
    with pytest.raises(ValueError, match="trace has no samples"):
        ts.Link(trace=[])
    with pytest.raises(ValueError, match="not both"):
        ts.Link(bandwidth_mbps=5, trace=[(0, 1.0), (1, 2.0)])
    link = ts.Link(bandwidth_mbps=5)
    with pytest.raises(ValueError, match="link time must be >= 0 s, got -3"):
        link.set_time(-3)
    with pytest.raises(ValueError, match="t_s = -1"):
        link.bandwidth_at(-1)
    m, xs, _ = zoo_model("squeezenet1_0")
    costs = {"device": [1.0] * m.num_atoms, "server": [0.1] * m.num_atoms}
    with pytest.raises(ValueError, match="rtt_ms = -5"):
        ts.AdaptiveDeployment(m, costs, server="tcp://127.0.0.1:9", rtt_ms=-5)
    with pytest.raises(ValueError, match="memory_budget_mb = -1"):
        ts.AdaptiveDeployment(m, costs, server="tcp://127.0.0.1:9", memory_budget_mb=-1)
    with pytest.raises(ValueError, match="max_message_mb = 0"):
        ts.Server(tmp_path, max_message_mb=0)
    with pytest.raises(ValueError, match="period_ms = 0"):
        tp.BackgroundLoad(0.5, period_ms=0)
    with pytest.raises(ValueError, match="unknown zoo model 'nosuch'"):
        tp.collect(["squeezenet1_0", "nosuch"], repeats=1)  # checked before the first profile


def test_plan_refuses_a_cost_table_of_another_model(zoo_model):
    m, xs, _ = zoo_model("squeezenet1_0")
    other, oxs, _ = zoo_model("resnet18")
    ct = ts.profile(other, oxs, threads=1, repeats=1, warmup=0)
    with pytest.raises(ValueError, match="cost table of model"):
        ts.plan(m, {"device": ct, "server": ct}, bandwidth_mbps=5)


def test_collect_checks_its_csv_path_first(tmp_path):
    with pytest.raises(ValueError, match="cannot write in"):
        tp.collect(["squeezenet1_0"], repeats=1, csv=tmp_path / "missing" / "s.csv")
