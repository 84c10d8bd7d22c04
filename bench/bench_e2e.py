"""End to end: device_only, server_only, chain and mincut plans run for real, measured vs predicted.

The server is `tessera serve` in another process on loopback (tcp://127.0.0.1,
1 worker, 1 intra-op thread). The device is this process with 1 thread,
emulating a device `--device-slowdown` times slower than this machine (its local
compute is stretched by sleeping); the link is emulated in the transport (token
bucket at the given bandwidth + rtt/2 per message, slept for real). Costs come
from profiling this machine (device = x slowdown). Per plan: median latency over
--requests requests after one warm-up, beside the planner's prediction.

    .venv/bin/python bench/bench_e2e.py [--models resnet50 googlenet] [--bandwidths 5.85 18.88] [--rtt 20]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import experiment  # noqa: E402
from tessera.runtime import spawn_server, stop_server  # noqa: E402

from common import quantiles, smoke, table, write_csv  # noqa: E402



def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "googlenet"])
    ap.add_argument("--bandwidths", type=float, nargs="+", default=[5.85, 18.88])
    ap.add_argument("--rtt", type=float, default=20.0)
    ap.add_argument("--device-slowdown", type=float, default=10.0)
    ap.add_argument("--requests", type=int, default=5)
    args = ap.parse_args(argv)
    if smoke():
        args.models, args.bandwidths, args.requests = ["squeezenet1_0"], [18.88], 2
    ts.set_threads(1)  # OpenMP and OpenBLAS
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        loaded = experiment.prepare(args.models, tmp, args.device_slowdown)
        proc, endpoint = spawn_server(tmp)
        try:
            for name, (m, xs, costs) in loaded.items():
                ref = m.run_flat(xs)
                for bw in args.bandwidths:
                    for algo in ("device_only", "server_only", "chain", "mincut"):
                        p = ts.plan(m, costs, bandwidth_mbps=bw, rtt_ms=args.rtt, algorithm=algo)
                        link = ts.Link(bandwidth_mbps=bw, rtt_ms=args.rtt)
                        dep = ts.Deployment(m, p, server=endpoint, link=link, device_slowdown=args.device_slowdown,
                                            timeout_ms=120000)
                        dep(xs)  # warm-up (connection, server-side block cache, profiling executor)
                        lat = []
                        for _ in range(args.requests):
                            flat = dep.run_flat(xs)
                            assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(flat, ref))
                            assert not dep.last_timeline.fallback
                            lat.append(dep.last_timeline.total_ms)
                        med, lo, hi = quantiles(lat)
                        rows.append({"model": name, "Mbit/s": bw, "plan": algo,
                                     "device_atoms": sum(1 for t in p.placement if t == 0),
                                     "predicted_ms": f"{p.latency_ms:.1f}", "measured_ms": f"{med:.1f}",
                                     "spread": f"[{min(lat):.1f}-{max(lat):.1f}]",
                                     "measured/predicted": f"{med / p.latency_ms:.3f}"})
                        print(rows[-1], flush=True)
        finally:
            stop_server(proc)
    print(f"server: tessera serve in another process, loopback, 1 worker, 1 thread; device: this process, 1 thread, "
          f"emulated {args.device_slowdown:g}x slower (sleep); link: emulated in the transport (token bucket + "
          f"rtt/2 = {args.rtt / 2:g} ms per message, slept); {args.requests} requests per plan after 1 warm-up")
    print(table(rows, list(rows[0])))
    print("wrote", write_csv("bench_e2e", rows))


if __name__ == "__main__":
    main()
