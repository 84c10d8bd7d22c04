"""Transport: tensor round trips through tessera's protocol vs raw ZeroMQ vs pickle over TCP.

Three servers run in other processes on loopback (tcp://127.0.0.1): `tessera serve`
(Echo messages: header + descriptors + zero-copy tensor frames, through the ROUTER,
the proxy and a REP worker), a plain ZeroMQ ROUTER echo (one raw frame, C++), and a
Python socket server that unpickles and re-pickles a torch tensor (what research
code usually does). Each round interleaves tessera and raw message by message
(tessera-raw, raw-tessera, ...; timed in C++, so that the machine's drift hits
both alike), then runs the pickle round trips. Throughput ratio = raw time /
tessera time, from the medians of each round; median [q1-q3] over rounds.

    .venv/bin/python bench/bench_transport.py [--sizes-mb 0.1 0.6 1 2 4] [--rounds 30] [--per-round 30]
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera.runtime import spawn_server, stop_server  # noqa: E402

from common import built_binary, quantiles, smoke, table, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def bench_binary() -> str:
    """The C++ loops (bench/cpp/transport_bench.cpp)."""
    return built_binary("tessera-bench-transport", "bench_transport")

PICKLE_SERVER = r"""
import pickle, socket, struct, sys, torch
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
print("pickle listening on", srv.getsockname()[1], flush=True)
conn, _ = srv.accept(); conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def recv_exact(n):
    buf = bytearray(n); view = memoryview(buf); got = 0
    while got < n:
        k = conn.recv_into(view[got:], n - got)
        if not k: sys.exit(0)
        got += k
    return buf
while True:
    (n,) = struct.unpack("<Q", recv_exact(8))
    t = pickle.loads(recv_exact(n))
    data = pickle.dumps(t)
    conn.sendall(struct.pack("<Q", len(data)) + data)
"""


def _start(cmd, marker, env=None):
    from tessera._proc import die_with_parent
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         preexec_fn=die_with_parent)
    ready, _, _ = select.select([p.stdout], [], [], 120)
    line = p.stdout.readline() if ready else ""
    if marker not in line:
        p.kill()
        raise RuntimeError(f"{cmd[:3]} did not start: {line!r} {p.stderr.read()[-1000:]}")
    return p, line.split(marker)[1].split()[0]


class PickleClient:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", int(port)))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _recv_exact(self, n):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            got += self.s.recv_into(view[got:], n - got)
        return buf

    def roundtrip(self, t):
        import time
        t0 = time.perf_counter()
        data = pickle.dumps(t)
        self.s.sendall(struct.pack("<Q", len(data)) + data)
        (n,) = struct.unpack("<Q", self._recv_exact(8))
        back = pickle.loads(self._recv_exact(n))
        dt = (time.perf_counter() - t0) * 1e3
        assert back.numel() == t.numel()
        return dt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-mb", type=float, nargs="+", default=[0.1, 0.602112, 1, 2, 4])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--per-round", type=int, default=30)
    args = ap.parse_args(argv)
    if smoke():
        args.sizes_mb, args.rounds, args.per_round = [0.602112], 2, 3
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        m = ts.load(torch.nn.Sequential(torch.nn.Linear(8, 8)).eval(), torch.randn(1, 8))
        m.save(Path(tmp) / "tiny")
        try:
            p, ep = spawn_server(tmp)
            procs.append(p)
            exe = bench_binary()
            p, raw_ep = _start([exe, "serve-raw", "tcp://127.0.0.1:*"], "listening on ", env)
            procs.append(p)
            p, port = _start([sys.executable, "-c", PICKLE_SERVER], "listening on ", env)
            procs.append(p)
            pk = PickleClient(port)
            rows = []
            for mb in args.sizes_mb:
                n = int(mb * 1e6) // 4
                t = torch.randn(n)
                nbytes = n * 4
                tt, rr, pp, ratios = [], [], [], []
                for _ in range(2):  # warm-up
                    pk.roundtrip(t)
                # tessera and raw interleaved message by message (order alternating), timed in C++
                # by the benchmark binary (which warms up both first), then pickle from here
                out = subprocess.run([exe, "pairs", str(Path(tmp) / "tiny"), ep, raw_ep, str(nbytes), str(args.rounds),
                                      str(args.per_round)], capture_output=True, text=True, timeout=1800)
                if out.returncode != 0:
                    raise SystemExit(f"bench_transport: {exe} pairs failed: {out.stderr.strip()}")
                for line in out.stdout.splitlines():
                    rnd = json.loads(line)
                    a, b = rnd["tessera"], rnd["raw"]
                    tt += a
                    rr += b
                    ratios.append(quantiles(b)[0] / quantiles(a)[0])
                for r in range(args.rounds):
                    pp += [pk.roundtrip(t) for _ in range(args.per_round)]
                rq, r1, r3 = quantiles(ratios)
                rows.append({
                    "MB": f"{nbytes / 1e6:.2f}",
                    "raw_ms": f"{quantiles(rr)[0]:.3f}", "tessera_ms": f"{quantiles(tt)[0]:.3f}",
                    "pickle_ms": f"{quantiles(pp)[0]:.3f}",
                    "tessera/raw_throughput": f"{rq:.2f} [{r1:.2f}-{r3:.2f}]",
                    "raw_GB/s": f"{2 * nbytes / quantiles(rr)[0] / 1e6:.2f}",
                    "tessera_GB/s": f"{2 * nbytes / quantiles(tt)[0] / 1e6:.2f}",
                    "tessera_vs_pickle": f"{quantiles(pp)[0] / quantiles(tt)[0]:.1f}x",
                })
        finally:
            for p in procs:
                stop_server(p)
    print(f"loopback TCP (tcp://127.0.0.1), servers in other processes, 1 worker; {args.rounds} interleaved rounds "
          f"of {args.per_round} round trips per size; medians")
    print(table(rows, list(rows[0])))
    print("wrote", write_csv("bench_transport", rows))


if __name__ == "__main__":
    main()
