"""Split execution across processes: the server runs in another process (`tessera serve`)."""
import json
import struct

import pytest
import torch
import zmq

import tessera as ts

MODELS = ["resnet50", "googlenet", "mobilenet_v2", "transformer"]


@pytest.fixture(scope="module")
def repository(tmp_path_factory, zoo_model):
    repo = tmp_path_factory.mktemp("repo")
    for name in MODELS:
        m, _, _ = zoo_model(name)
        m.save(repo / name)
    return repo


def _plans(n):
    half = n // 2
    return {
        "device_only": [0] * n,
        "server_only": [1] * n,
        "split": [0] * half + [1] * (n - half),
        "alternating": [(i // max(1, n // 6)) % 2 for i in range(n)],  # device -> server -> device -> ...
    }


@pytest.mark.parametrize("name", MODELS)
def test_remote_results_equal_the_whole_model(name, repository, zoo_model, server_process):
    m, xs, orig = zoo_model(name)
    srv = server_process(repository)
    with torch.no_grad():
        ref = orig(*xs)
    ref = ref[0] if isinstance(ref, tuple) else ref
    dep = ts.Deployment(m, [0] * m.num_atoms, server=srv.endpoint, timeout_ms=20000)
    for plan_name, p in _plans(m.num_atoms).items():
        dep.set_plan(p)
        y = dep(xs)
        y = y[0] if isinstance(y, tuple) else y
        assert torch.allclose(y, ref, rtol=1e-4, atol=1e-5), plan_name
        tl = dep.last_timeline
        assert not tl.fallback, [b.error for b in tl.blocks]
        remote = [b for b in tl.blocks if b.remote]
        assert bool(remote) == (plan_name != "device_only")
        if plan_name == "alternating":
            targets = [b.target for b in tl.blocks]
            assert targets.count(1) >= 2 and targets.count(0) >= 2  # goes back and forth
        for b in remote:
            assert b.bytes_up > 0 and b.bytes_down > 0 and b.server_ms > 0
            assert b.round_trip_ms >= b.server_ms


def test_server_killed_mid_stream(repository, zoo_model, server_process):
    m, xs, _ = zoo_model("mobilenet_v2")
    ref = m.run(xs)
    srv = server_process(repository)
    port = srv.port
    n = m.num_atoms
    dep = ts.Deployment(m, [0] * (n // 3) + [1] * (n - n // 3), server=srv.endpoint, timeout_ms=3000, retry_ms=50)
    remote_by_phase = {"before": 0, "down": 0, "after": 0}
    fallbacks = 0
    for i in range(200):
        if i == 60:
            srv.kill()
        if i == 120:
            srv = server_process(repository, bind=f"tcp://127.0.0.1:{port}")
        y = dep(xs)
        assert torch.allclose(y, ref, rtol=1e-4, atol=1e-5), f"request {i}"
        tl = dep.last_timeline
        phase = "before" if i < 60 else "down" if i < 120 else "after"
        remote_by_phase[phase] += any(b.remote for b in tl.blocks)
        fallbacks += tl.fallback
    assert remote_by_phase["before"] == 60
    assert remote_by_phase["down"] == 0 and fallbacks >= 60
    assert remote_by_phase["after"] >= 60  # offloading resumed after the restart


HEADER = struct.Struct("<IHHQ32sIIqddII8x")


def _header(type_=1, rid=7, model_hash=b"\0" * 32, atoms=0, tensors=0, magic=0x41525354, version=3):
    return HEADER.pack(magic, version, type_, rid, model_hash, atoms, tensors, 0, 0.0, 0.0, 0, 0)


def _desc(dtype_code, dims, nbytes):
    return struct.pack("<BBHI", dtype_code, len(dims), 0, 0) + struct.pack(f"<{len(dims)}q", *dims) + \
        struct.pack("<Q", nbytes)


def test_malformed_messages_get_error_replies(repository, zoo_model, server_process):
    m, xs, _ = zoo_model("mobilenet_v2")
    srv = server_process(repository)
    h = bytes.fromhex(m.hash)
    first = m.combine([0])
    shape = m.graph.values[first.inputs[0]].shape
    good_desc = _desc(1, shape, 4 * torch.Size(shape).numel())
    x = xs[0].numpy().tobytes()
    atoms0 = struct.pack("<i", 0)
    cases = {
        "truncated header": ([b"TSRA"], "header frame has 4 bytes"),
        "too few frames": ([_header()], "at least 3"),
        "wrong magic": ([_header(magic=0xDEADBEEF), b"", b""], "bad magic"),
        "newer peer": ([_header(version=9), b"", b""], "the peer speaks wire protocol v9, this side speaks v3 (the peer "
                                                        "is a newer tessera)"),
        "older peer": ([_header(version=1), b"", b""], "wire protocol v1, this side speaks v3 (the peer is an older"),
        "unknown type": ([_header(type_=77), b"", b""], "unknown message type"),
        "lying length": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, _desc(1, shape, 12), x],
                         "declares 12 bytes"),
        "frame shorter than declared": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, good_desc, x[:100]],
                                        "frame has 100 bytes"),
        "absurd rank": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, _desc(1, [1] * 40, 4), b"1234"],
                        "rank 40"),
        "absurd dims": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, _desc(1, [1 << 40, 1 << 40], 0), b""],
                        "larger than the maximum message size"),
        "negative dim": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, _desc(1, [-5], 0), b""], "dimension"),
        "more frames than declared": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, good_desc, x, x],
                                      "declares 1 tensors but 2"),
        "unknown model": ([_header(model_hash=b"\x11" * 32, atoms=1, tensors=1), atoms0, good_desc, x],
                          "unknown model"),
        "unknown atom": ([_header(model_hash=h, atoms=1, tensors=1), struct.pack("<i", 99999), good_desc, x],
                         "atom id 99999 out of range"),
        "atom count lies": ([_header(model_hash=h, atoms=3, tensors=1), atoms0, good_desc, x], "declares 3 atoms"),
        "unknown dtype": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, _desc(99, shape, 4), b"1234"],
                          "unknown dtype code"),
        "wrong dtype": ([_header(model_hash=h, atoms=1, tensors=1), atoms0,
                         _desc(2, shape, 8 * torch.Size(shape).numel()), x + x], "expected float32"),
        "wrong shape": ([_header(model_hash=h, atoms=1, tensors=1), atoms0, _desc(1, [1, 3, 10, 10], 1200),
                         b"\0" * 1200], "expected float32 [1, 3, 224, 224]"),
        "wrong tensor count": ([_header(model_hash=h, atoms=1, tensors=0), atoms0, b""], "takes 1 tensors"),
        "not a request": ([_header(type_=2, model_hash=h), b"", b""], "does not accept Reply"),
    }
    ctx = zmq.Context()
    dep = ts.Deployment(m, [1] * m.num_atoms, server=srv.endpoint, timeout_ms=20000)
    ref = m.run(xs)
    try:
        for name, (frames, expect) in cases.items():
            s = ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RCVTIMEO, 20000)
            s.connect(srv.endpoint)
            s.send_multipart(frames)
            reply = s.recv_multipart()
            s.close()
            assert len(reply) >= 2, name
            assert struct.unpack_from("<H", reply[0], 6)[0] == 3, f"{name}: not an Error reply"
            msg = reply[1].decode()
            assert expect in msg, f"{name}: {msg!r}"
            # a well-behaved device is still served correctly after each
            assert torch.allclose(dep(xs), ref, rtol=1e-4, atol=1e-5), name
            assert not dep.last_timeline.fallback, name
    finally:
        ctx.term()
    stats = dep.ping()
    assert stats["errors"] >= len(cases)


def test_curve_allows_only_listed_clients(repository, zoo_model, server_process, tmp_path):
    m, xs, _ = zoo_model("mobilenet_v2")
    server_pub, server_sec = ts.keygen()
    client_pub, client_sec = ts.keygen()
    other_pub, other_sec = ts.keygen()
    (tmp_path / "server.key").write_text(server_sec + "\n")
    (tmp_path / "allowed").write_text(f"# devices\n{client_pub}\n")
    srv = server_process(repository, extra=["--curve-secret-key-file", str(tmp_path / "server.key"),
                                            "--allow-keys-file", str(tmp_path / "allowed")])
    ref = m.run(xs)
    ok = ts.Deployment(m, [1] * m.num_atoms, server=srv.endpoint, timeout_ms=20000,
                       curve_server_key=server_pub, curve_keys=(client_pub, client_sec))
    assert torch.allclose(ok(xs), ref, rtol=1e-4, atol=1e-5)
    assert not ok.last_timeline.fallback
    intruder = ts.Deployment(m, [1] * m.num_atoms, server=srv.endpoint, timeout_ms=1500,
                             curve_server_key=server_pub, curve_keys=(other_pub, other_sec))
    assert intruder.ping(timeout_ms=1500) is None  # gets nothing
    y = intruder(xs)  # still correct: it ran locally
    assert torch.allclose(y, ref, rtol=1e-4, atol=1e-5) and intruder.last_timeline.fallback
    plain = ts.Deployment(m, [1] * m.num_atoms, server=srv.endpoint, timeout_ms=1500)
    assert plain.ping(timeout_ms=1500) is None  # no key at all: nothing either
    assert json.loads(json.dumps(ok.ping()))["replies"] >= 1


def test_bad_deployment_arguments(zoo_model):
    m, xs, _ = zoo_model("mobilenet_v2")
    with pytest.raises(ValueError, match="placement has 3 entries"):
        ts.Deployment(m, [0, 1, 0], server="tcp://127.0.0.1:1")
    with pytest.raises(ValueError, match="timeout_ms"):
        ts.Deployment(m, [0] * m.num_atoms, server="tcp://127.0.0.1:1", timeout_ms=0)
    with pytest.raises(ValueError, match="cannot connect to server endpoint 'nonsense'"):
        ts.Deployment(m, [1] * m.num_atoms, server="nonsense")


def test_several_clients_at_once(repository, zoo_model, server_process):
    import threading
    m, xs, _ = zoo_model("mobilenet_v2")
    ref = m.run(xs)
    srv = server_process(repository, extra=["--workers", "2"])
    n = m.num_atoms
    errors = []

    def client(k):
        try:
            dep = ts.Deployment(m, [0] * (k * 10) + [1] * (n - k * 10), server=srv.endpoint, timeout_ms=30000)
            for _ in range(10):
                y = dep(xs)
                assert torch.allclose(y, ref, rtol=1e-4, atol=1e-5)
                assert not dep.last_timeline.fallback, [b.error for b in dep.last_timeline.blocks]
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    stats = ts.Deployment(m, [1] * n, server=srv.endpoint).ping()
    assert stats["replies"] >= 30


def _gone(pid: int, within_s: float) -> bool:
    """True once process pid no longer exists (or is a zombie), polling up to within_s."""
    import time
    t_end = time.time() + within_s
    while time.time() < t_end:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().split(") ")[1].startswith("Z"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("what", ["server", "background_load"])
def test_children_do_not_outlive_a_killed_parent(what, repository, repo_root):
    """A parent killed outright (SIGKILL: no finally, no atexit) takes its server process
    or its background-load spinners with it."""
    import os
    import signal
    import subprocess
    import sys

    code = {
        "server": f"from tessera.runtime import spawn_server\np, ep = spawn_server({str(repository)!r})\n"
                  "print(p.pid, flush=True)\n",
        "background_load": "import os\nfrom tessera.predict import BackgroundLoad\nb = BackgroundLoad(0.5).__enter__()\n"
                           "print(' '.join(str(pid) for pid in b.pids), flush=True)\n",
    }[what]
    env = dict(os.environ, PYTHONPATH=str(repo_root / "python"))
    parent = subprocess.Popen([sys.executable, "-c", "import torch, tessera\n" + code + "import time\ntime.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        children = [int(p) for p in parent.stdout.readline().split()]
        assert children, "the parent printed no child pid"
        assert all(not _gone(c, 0.2) for c in children)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
    for c in children:
        assert _gone(c, 30), f"{what} child {c} outlived its killed parent"


def test_replay_stops_at_a_dead_server(zoo_model, repository):
    """The experiment assumes a live server: the first fallback is an error naming the
    policy and the request, not hours of silent device-only latencies."""
    from tessera import experiment

    m, xs, _ = zoo_model("squeezenet1_0")
    srv = ts.Server(repository).start()
    endpoint = srv.endpoint
    srv.stop()
    costs = {"device": [1.0] * m.num_atoms, "server": [0.1] * m.num_atoms}
    with pytest.raises(ts.EngineError, match=r"server_only: request 0 fell back to the device"):
        experiment.replay(m, xs, costs, endpoint, {"bandwidth_mbps": 10.0}, requests=2, timeout_ms=2000,
                          policies=("server_only",))
    with pytest.raises(ValueError, match="requests = 0"):
        experiment.replay(m, xs, costs, endpoint, {"bandwidth_mbps": 10.0}, requests=0)


def test_the_device_holds_only_the_atoms_it_runs(repository, zoo_model, server_process):
    """AdaMEC's memory saving needs it: a device that opens only its atoms and runs a split loads
    none of the server's (they are spliced only if a fallback runs them), and the outputs still
    equal the whole model's; when the server is gone, the fallback loads and runs the rest."""
    name = MODELS[0]
    m, xs, _ = zoo_model(name)
    n = m.num_atoms
    placement = [0] * (n // 3) + [1] * (n - n // 3)
    device = [a for a, t in enumerate(placement) if t == 0]
    srv = server_process(repository)
    part = ts.Model.open(repository / name, atoms=device)
    dep = ts.Deployment(part, placement, server=srv.endpoint, timeout_ms=20000, retry_ms=60000)
    y = dep.run_flat(xs)
    ref = m.run_flat(xs)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(y, ref))
    assert not dep.last_timeline.fallback
    assert part.loaded_atoms() == device
    assert part.loaded_param_bytes() == sum(m.atoms[a].param_bytes for a in device)
    srv.kill()
    y = dep.run_flat(xs)  # the server is gone: the device runs (and so loads) the rest itself
    assert dep.last_timeline.fallback
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(y, ref))
    assert part.loaded_atoms() == list(range(n))
