"""N-node pipeline planning (issue 14, the planner part): predicted throughput and planning time.

Models of the zoo profiled here (1 thread, server costs = this machine); nodes: the device 10x slower
than this machine, then servers at 1x, 2x (twice as fast), 4x, 1x, 2x (as many as --nodes asks); links:
device to every server at --device-link Mbit/s (rtt 20 ms), server to server 1 Gbit/s (rtt 1 ms).
Per model and node count: the best two-party plan (the device and one server, dp), equal_layers and dp over the given order, pso_dp, exhaustive
(every order of every subset) where it finishes; predicted frames per second from the cost model (the
pipeline runtime is not built yet: nothing here is measured throughput), and planning time in C++
called from Python (median of --repeats).

    .venv/bin/python bench/bench_pipeline.py [--models resnet50 googlenet vgg16 densenet121] [--nodes 2 3 4 6]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import zoo  # noqa: E402

from common import smoke, table, write_csv  # noqa: E402

SPEEDS = [1.0, 2.0, 4.0, 1.0, 2.0]


def network(ct, k, device_link):
    nodes = [ts.Node("device", speed=0.1, reference=ct)]
    nodes += [ts.Node(f"server{i + 1}x{SPEEDS[i]:g}", speed=SPEEDS[i], reference=ct) for i in range(k - 1)]
    links = {}
    for i, a in enumerate(nodes[1:]):
        links[("device", a.name)] = (device_link, 20.0)
        for b in nodes[i + 2:]:
            links[(a.name, b.name)] = (1000.0, 1.0)
    return ts.Network(nodes, links)


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "vgg16", "densenet121"])
    ap.add_argument("--nodes", type=int, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--device-link", type=float, default=18.88, help="Mbit/s from the device to each server")
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    if smoke():
        args.models, args.nodes, args.repeats = ["squeezenet1_0"], [2, 3], 2
    rows = []
    for name in args.models:
        path, xs = zoo.torchscript(name)
        m = ts.load(str(path), xs)
        ct = ts.profile(m, xs, threads=1, repeats=3, warmup=1)
        for k in args.nodes:
            net = network(ct, k, args.device_link)
            names = [n.name for n in net.nodes]
            single = max((ts.plan_pipeline(m, ts.Network([net.nodes[0]] + ([n] if n is not net.nodes[0] else []),
                                                         {("device", n.name): (args.device_link, 20.0)}
                                                         if n is not net.nodes[0] else {}), algorithm="dp",
                                           order=["device"] + ([n.name] if n is not net.nodes[0] else []))
                          for n in net.nodes), key=lambda p: p.throughput_fps)
            eq, _ = timed(lambda: ts.plan_pipeline(m, net, algorithm="equal_layers"), args.repeats)
            dp, dp_ms = timed(lambda: ts.plan_pipeline(m, net, algorithm="dp"), args.repeats)
            pso, pso_ms = timed(lambda: ts.plan_pipeline(m, net, algorithm="pso_dp"), max(1, args.repeats // 4))
            ex, ex_ms = (timed(lambda: ts.plan_pipeline(m, net, algorithm="exhaustive"), max(1, args.repeats // 10))
                         if k <= 6 else (None, None))
            rows.append({"model": name, "atoms": m.num_atoms, "nodes": k,
                         "best_two_party_fps": f"{single.throughput_fps:.2f}",
                         "equal_layers_fps": f"{eq.throughput_fps:.2f}", "dp_fps": f"{dp.throughput_fps:.2f}",
                         "pso_dp_fps": f"{pso.throughput_fps:.2f}",
                         "exhaustive_fps": f"{ex.throughput_fps:.2f}" if ex else "-",
                         "dp/best_two_party": f"{dp.throughput_fps / single.throughput_fps:.2f}",
                         "dp_ms": f"{dp_ms:.2f}", "pso_dp_ms": f"{pso_ms:.1f}", "exhaustive_ms": f"{ex_ms:.1f}" if ex else "-",
                         "dp_stages": " | ".join(f"{n}:{len(a)}" for n, a in dp.stages)})
            print(rows[-1], flush=True)
    print(f"\npredicted by the cost model (1 thread profiles here; device 10x slower; servers 1x/2x/4x/1x/2x; device link "
          f"{args.device_link:g} Mbit/s rtt 20 ms, servers 1 Gbit/s rtt 1 ms); planning ms: median of {args.repeats} "
          f"calls from Python")
    print(table(rows, list(rows[0])))
    print("wrote", write_csv("bench_pipeline", rows))


if __name__ == "__main__":
    main()
