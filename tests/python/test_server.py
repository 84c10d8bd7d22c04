"""A server many devices share (issue 18), from Python: dynamic batching across devices in
threads, several servers per deployment, Busy counted by the adaptive loop, the CLI's
batching / queue / metrics options and its HTTP counters."""
import threading
import urllib.error
import urllib.request

import pytest
import torch

import tessera as ts


@pytest.fixture(scope="module")
def mobilenet(zoo_model):
    return zoo_model("mobilenet_v2")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, mobilenet):
    r = tmp_path_factory.mktemp("repo")
    mobilenet[0].save(r / "mobilenet_v2")
    return r


def _tail(m, frac=0.5):
    """A placement: the first part on the device, the rest on the server."""
    n = m.num_atoms
    return [0] * int(n * frac) + [1] * (n - int(n * frac))


def test_devices_in_threads_are_batched_and_get_their_own_rows(repo, mobilenet):
    m, xs, _ = mobilenet
    placement = _tail(m)
    inputs = [tuple(torch.randn_like(x) for x in xs) for _ in range(4)]
    want = [m.run_flat(x) for x in inputs]
    with ts.Server(repo, batch_max=4, batch_delay_us=300_000) as srv:
        deps = [ts.Deployment(m, placement, server=srv.endpoint, timeout_ms=30_000) for _ in inputs]
        got = [None] * len(inputs)

        def run(i):
            got[i] = deps[i]._core.run(list(inputs[i]))
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        stats = srv.stats()
    for i in range(len(inputs)):
        assert got[i] is not None, f"device {i} got no answer"
        assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(got[i], want[i])), f"device {i}"
        blocks = [b for b in deps[i].last_timeline.blocks if b.target == 1]
        assert blocks and all(b.remote for b in blocks), [b.error for b in blocks]
    batches = [b.batch for d in deps for b in d.last_timeline.blocks if b.remote]
    assert max(batches) >= 2, batches
    assert stats.batches >= 1 and stats.batched == sum(1 for b in batches if b >= 2)


def test_a_deployment_over_several_servers(repo, mobilenet):
    m, xs, _ = mobilenet
    ref = m.run_flat(xs)
    with ts.Server(repo) as a, ts.Server(repo) as b:
        dep = ts.Deployment(m, _tail(m), server=[a.endpoint, b.endpoint], server_policy="p2c", timeout_ms=30_000)
        assert dep.servers == [a.endpoint, b.endpoint]
        used = set()
        for _ in range(12):
            y = dep._core.run(list(xs))
            assert all(torch.allclose(p, q, rtol=1e-4, atol=1e-5) for p, q in zip(y, ref))
            assert not dep.last_timeline.fallback
            used.add(dep.last_timeline.server)
        assert used == {0, 1}
        states = dep.server_states()
        assert sum(s.requests for s in states) == 12 and all(s.failures == 0 for s in states)
        assert a.stats().replies + b.stats().replies == 12
    with pytest.raises(ts.InvalidArgumentError, match="server_policy"):
        ts.Deployment(m, _tail(m), server=["tcp://127.0.0.1:1"], server_policy="nearest")


def test_serve_cli_batching_queue_and_http_counters(repo, mobilenet, server_process):
    m, xs, _ = mobilenet
    srv = server_process(repo, extra=("--batch-max", "4", "--batch-delay-us", "1000", "--max-queue", "8",
                                      "--metrics-port", "0"))
    assert srv.metrics_endpoint.startswith("http://127.0.0.1:"), srv.metrics_endpoint
    dep = ts.Deployment(m, _tail(m), server=srv.endpoint, timeout_ms=30_000)
    dep(xs)
    text = urllib.request.urlopen(srv.metrics_endpoint + "/metrics", timeout=10).read().decode()
    assert "tessera_replies_total 1" in text and "tessera_queue_capacity 8" in text, text
    assert "# TYPE tessera_request_seconds histogram" in text
    assert urllib.request.urlopen(srv.metrics_endpoint + "/healthz", timeout=10).read() == b"ok\n"
    assert b"ready" in urllib.request.urlopen(srv.metrics_endpoint + "/readyz", timeout=10).read()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(srv.metrics_endpoint + "/other", timeout=10)
    assert e.value.code == 404
    assert dep.ping()["queued"] == 0


def test_serve_cli_refuses_bad_batching_options(repo):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "tessera", "serve", str(repo), "--batch-max", "0"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--batch-max" in r.stderr and "must be >= 1" in r.stderr
