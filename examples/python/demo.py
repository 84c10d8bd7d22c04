"""make demo: the whole story of tessera on an embedded default.

1. trace a torchvision AlexNet (random weights, offline) to TorchScript: a model whose activations
   shrink early, so that with this device and trace the best plan is often a mid-model split
   (bench/bench_seeds.py maps where a split pays, per model: ResNet-50 or DenseNet-121 never split
   at these speed ratios, AlexNet and MobileNet-V2 do);
2. cut it into atoms once and write the atom store;
3. profile every atom on this machine;
4. start an edge server in another process (`tessera serve`) on loopback;
5. replay a bandwidth trace through the emulated link with every policy
   (device only, server only, a static min-cut plan, Neurosurgeon's chain,
   tessera's adaptive deployment, and the oracle that knows the true bandwidth);
6. print mean and p95 latency per policy and write the plot as a PNG.

Emulation: the device is taken to be 10x slower than this machine (a phone
against an edge server: device costs = measured x 10, local compute accounted
x 10); the link follows the embedded trace below with a 20 ms RTT, in "account"
mode (transfers over loopback are real, the emulated link's time is added).
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import tessera as ts
from tessera import experiment, zoo
from tessera.cli import positive_int
from tessera.runtime import spawn_server, stop_server

# An embedded trace (time s, Mbit/s): WiFi, then a drive through 4G, 3G and a
# CAT1-class dead zone, and back (the uplink classes of DADS: 18.88 / 5.85 / 1.1 / 0.13).
DEMO_TRACE = [(0, 30.0), (4, 38.0), (8, 18.9), (10, 5.9), (14, 6.4), (17, 4.8), (20, 1.1), (23, 0.9),
              (26, 0.13), (30, 0.2), (32, 1.3), (35, 5.2), (38, 18.9), (41, 35.0), (45, 40.0)]


def main(argv=None):
    ap = argparse.ArgumentParser(description="tessera demo: adaptive split inference on a bandwidth trace")
    ap.add_argument("--model", default="alexnet")
    ap.add_argument("--requests", type=positive_int, default=48, help="one request per second of trace")
    ap.add_argument("--device-slowdown", type=float, default=10.0)
    ap.add_argument("--plot", default="demo_adaptive.png")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    path, xs = zoo.torchscript(args.model)
    m = ts.load(str(path), xs)
    print(f"1-2. {args.model}: {m.graph.num_compute_nodes()} operators -> {m.num_atoms} atoms "
          f"({time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        m.save(Path(tmp) / args.model)
        ct = ts.profile(m, xs, threads=1, repeats=5, warmup=2)
        print(f"3.   profiled: whole model {ct.model_ms:.1f} ms, sum of atoms {ct.sum_atom_ms:.1f} ms "
              f"(device = x{args.device_slowdown:g})")
        costs = experiment.costs_from_profile(ct, args.device_slowdown)
        proc, endpoint = spawn_server(tmp)
        try:
            print(f"4.   edge server (another process) on {endpoint}")
            link = {"trace": DEMO_TRACE, "rtt_ms": 20.0, "label": "demo trace"}
            runs = experiment.replay(m, xs, costs, endpoint, link, requests=args.requests,
                                     device_slowdown=args.device_slowdown)
        finally:
            stop_server(proc)
    print(f"5.   {args.requests} requests over the embedded trace (0.13-40 Mbit/s, RTT 20 ms), every output "
          f"checked against the unsplit model:")
    from bench_table import table
    print(table(experiment.summary_rows(runs)))
    a = runs["adaptive"]
    print(f"     adaptive decisions: median {sorted(a.decide_us)[len(a.decide_us) // 2]:.1f} us per request, "
          f"{a.switches} plan switches; {a.split_requests} of {len(a.latency_ms)} requests ran a mid-model split "
          f"(atoms on both sides: split_requests)")
    experiment.plot(runs, args.plot, title=f"{args.model}, device x{args.device_slowdown:g}, demo trace")
    print(f"6.   plot written to {args.plot}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
