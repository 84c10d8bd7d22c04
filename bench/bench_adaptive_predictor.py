"""Does the latency predictor in the adaptive loop pay? (issue 20, AdaMEC's runtime predictor)

One model split over a loopback server, its device costs profiled in one machine state (1
intra-op thread, no background load); then requests in phases while the machine changes to states
nobody profiled, every policy on the same requests, interleaved request by request (the order
rotated), so each phase's machine touches every policy alike:

  P  the profiled state: 1 thread, no load;
  L  real background load on the device's core: --load cores of spin loops (tessera.predict's
     duty-cycled spinners, 5 ms period) pinned to the CPU the device runs on, 1 thread;
  T  --threads intra-op threads (torch / OpenMP / OpenBLAS, ts.set_threads), no load.

Policies:

  adaptive            ts.AdaptiveDeployment without a predictor: an unprofiled state scales the
                      profiled costs by the measured device load (the ratio measured / profiled);
  adaptive+predictor  the same with predictor= an XGBoost predictor trained beforehand (below), as
                      it is (the deployment anchors its predictions to the profile); the app declares
                      nothing: threads are read from the process, the load is inferred from the
                      measured slowdown;
  +declared           the same predictor, the app declaring each phase's state (set_machine_state);
  static <S>          the optimal plan for the costs profiled in state S (P, L, T: a profile taken in
                      that state before the phases), run unchanged in every phase. The best of them in
                      a phase, as measured there, is the ceiling (oracle); static P is "no adaptation".

The predictor: tp.train(kind="xgboost") on tp.collect samples of --train-models (not the benchmark
model) in the states (1 thread, load 0), (1 thread, load --load) and (--threads, load 0), plus the
benchmark model's own profile in the profiled state (the deployment has it). Its load is produced
the same way as in phase L (the collecting process pinned to the device's CPU, so the spinners are
too). It never saw the benchmark model in L or T.

Real: every block runs (device blocks in this process, pinned to CPU 0 at one thread; server blocks
in `tessera serve` on loopback, pinned to CPU 1, 1 worker, 1 thread); every output is checked.
Emulated: the device is --device-slowdown times slower than this process's measured compute
(accounted: its measured time x slowdown), so a background load or another thread count on this
machine changes the emulated device by the same factor; the link is the transport's emulator
(constant --bandwidth Mbit/s + rtt/2 per message, accounted). --bandwidth 0 (default) picks the
bandwidth of a grid where the three states' profiled plans differ most.

    .venv/bin/python bench/bench_adaptive_predictor.py [--model squeezenet1_0] [--requests 30]
"""
from __future__ import annotations

import argparse
import collections
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import experiment, zoo  # noqa: E402
from tessera import predict as tp  # noqa: E402
from tessera._proc import Spinners  # noqa: E402
from tessera.runtime import spawn_server, stop_server  # noqa: E402

from common import RESULTS, quantiles, smoke, table, write_csv  # noqa: E402

DEVICE_CPU, SERVER_CPU = 0, 1
GRID_MBPS = (1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50, 100)


def pinned():
    """Two CPUs or more: the device (this process) on one, the server on the other."""
    return (os.cpu_count() or 1) >= 2 and hasattr(os, "sched_setaffinity")


def set_state(state, n_threads):
    """This process's threads and CPUs for a machine state (P/L: one thread on the device's CPU;
    T: n_threads on every CPU)."""
    if pinned():
        os.sched_setaffinity(0, set(range(os.cpu_count())) if state == "T" else {DEVICE_CPU})
    ts.set_threads(n_threads if state == "T" else 1)


def spinners(level):
    """`level` cores of background load on the device's CPU (as tp.BackgroundLoad, but pinned)."""
    n = max(1, math.ceil(level))
    return Spinners(n, duty=level / n, period_s=0.005, cpu=DEVICE_CPU if pinned() else None)


class nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def load_for(state, level):
    return spinners(level) if state == "L" and level > 0 else nothing()


def state_of(state, args):
    """(threads, background load) of a phase."""
    return {"P": (1, 0.0), "L": (1, args.load), "T": (args.threads, 0.0)}[state]


def norm_source(s):
    """A cost_source with its measured correction factor elided ("scaled x1.31" -> "scaled x*")."""
    return re.sub(r"(?<=scaled )x[\d.]+|(?<=\) )x[\d.]+", "x*", s) or "-"


def pick_bandwidth(m, costs_by_state, server_ms, rtt):
    """The grid bandwidth where the plans made from each state's profile differ most (distinct
    placements), then where keeping the profiled plan costs the most (predicted, summed over states)."""
    best = None
    for bw in GRID_MBPS:
        plans = {s: ts.plan(m, {"device": c, "server": server_ms}, bandwidth_mbps=bw, rtt_ms=rtt)
                 for s, c in costs_by_state.items()}
        distinct = len({tuple(p.placement) for p in plans.values()})
        loss = 0.0
        for s, c in costs_by_state.items():
            cm = {"device": c, "server": server_ms}
            kept = ts.evaluate(m, cm, plans["P"].placement, bw, rtt).latency_ms
            loss += kept / plans[s].latency_ms - 1
        key = (distinct, loss)
        if best is None or key > best[0]:
            best = (key, bw)
    return best[1]


def train_predictor(args, m, ct_p, label):
    """XGBoost on tp.collect samples of the training models in the three states (1-thread states
    pinned to the device's CPU, so BackgroundLoad's spinners are there too), plus the benchmark
    model's profile in the profiled state."""
    t0 = time.perf_counter()
    samples = []
    if args.train_models:
        set_state("P", 1)  # pinned: the spinners tp.collect forks inherit the device's CPU
        samples += tp.collect(args.train_models, threads=(1,), background_loads=(0.0, args.load),
                              repeats=args.train_repeats, warmup=args.warmup, settle=args.settle,
                              max_wait_s=args.max_wait, progress=False)
        set_state("T", args.threads)
        samples += tp.collect(args.train_models, threads=(args.threads,), background_loads=(0.0,),
                              repeats=args.train_repeats, warmup=args.warmup, settle=args.settle,
                              max_wait_s=args.max_wait, progress=False)
        set_state("P", 1)
    samples += tp.samples_of(m, ct_p, label=label)
    p = tp.train(samples, kind="xgboost")
    return p, len(samples), time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="squeezenet1_0")
    ap.add_argument("--train-models", nargs="*", default=["mobilenet_v2", "resnet18", "googlenet"])
    ap.add_argument("--phases", nargs="+", default=["P", "L", "T"], choices=["P", "L", "T"])
    ap.add_argument("--requests", type=int, default=30, help="requests per phase per policy")
    ap.add_argument("--load", type=float, default=1.0, help="phase L: cores of background load on the device's CPU")
    ap.add_argument("--threads", type=int, default=2, help="phase T: intra-op threads")
    ap.add_argument("--device-slowdown", type=float, default=10.0)
    ap.add_argument("--bandwidth", type=float, default=0.0, help="Mbit/s (0: where the states' plans differ most)")
    ap.add_argument("--rtt", type=float, default=10.0)
    ap.add_argument("--warm-requests", type=int, default=3, help="requests per policy before the phases, not recorded")
    ap.add_argument("--repeats", type=int, default=10, help="timed rounds of the benchmark model's profiles")
    ap.add_argument("--train-repeats", type=int, default=5, help="timed rounds of each training profile")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--settle", type=float, default=0.2, help="canary tolerance of the profiles (0: off)")
    ap.add_argument("--max-wait", type=float, default=3.0, 
                    help="per profile, the longest wait (s) for the reference state")
    args = ap.parse_args(argv)
    if smoke():
        args.train_models, args.requests, args.repeats, args.train_repeats = ["mobilenet_v3_small"], 3, 2, 1
        args.warmup, args.settle = 1, 0.0
    t_start = time.perf_counter()
    path, xs = zoo.torchscript(args.model)
    m = ts.load(str(path), xs)
    ref = m.run(xs)
    tmp = tempfile.mkdtemp()
    proc = None
    try:
        m.save(Path(tmp) / args.model)
        prefix = ["taskset", "-c", str(SERVER_CPU)] if pinned() and shutil.which("taskset") else []
        proc, endpoint = spawn_server(tmp, prefix=prefix, extra=["--threads", "1"])

        # ---- profiles: the profiled state (the deployment's costs), and each state for the statics
        tables = {}
        for s in ("P", "L", "T"):
            th, lv = state_of(s, args)
            set_state(s, args.threads)
            with load_for(s, lv):
                tables[s] = ts.profile(m, xs, threads=th, repeats=args.repeats, warmup=args.warmup,
                                       background_load=lv, settle=args.settle, max_wait_s=args.max_wait)
        set_state("P", 1)
        server_ms = list(tables["P"].atom_ms)  # the server is this machine at one thread
        slow = args.device_slowdown
        costs = experiment.costs_from_profile(tables["P"], slow)
        dev = {s: [slow * v for v in t.atom_ms] for s, t in tables.items()}
        bw = args.bandwidth or pick_bandwidth(m, dev, server_ms, args.rtt)

        # ---- the predictor, trained before the phases
        pred, n_samples, t_train = train_predictor(args, m, tables["P"], args.model)
        acc = []
        for s in ("P", "L", "T"):
            th, lv = state_of(s, args)
            pc = tp.costs(m, pred, threads=th, background_load=lv)
            acc.append({"state": s, "threads": th, "load": lv, "measured_ms": f"{sum(tables[s].atom_ms):.1f}",
                        "predicted_ms": f"{pc.model_ms:.1f}",
                        "measured/P": f"{sum(tables[s].atom_ms) / sum(tables['P'].atom_ms):.2f}",
                        "predicted/P": f"{pc.model_ms / sum(tables['P'].atom_ms):.2f}",
                        "atoms<=10%": f"{tp.evaluate(pc.atom_ms, tp.samples_of(m, tables[s])).atoms_within:.0%}"})

        # ---- deployments: each its own link, same requests
        def link():
            lk = ts.Link(bandwidth_mbps=bw, rtt_ms=args.rtt)
            lk.set_time(0.0)
            return lk

        common = dict(rtt_ms=args.rtt, device_slowdown=slow, emulation="account", timeout_ms=60000)
        adaptive = dict(initial_bandwidth_mbps=bw, profiled_threads=1, profiled_background_load=0.0, **common)
        # candidate static plans: each state's profiled plan, the predictor's plan for each state, and
        # the profiled costs' plans for a device 0.25-4x as fast (what a scaled table can choose);
        # every one is warmed (device and server blocks) and measured in every phase: the best of
        # them there is the ceiling
        statics = collections.OrderedDict()
        cands = [(s, dev[s]) for s in ("P", "L", "T")]
        for s in ("L", "T"):
            th, lv = state_of(s, args)
            cands.append((f"pred {s}", [slow * v for v in tp.costs(m, pred, threads=th, background_load=lv).atom_ms]))
        cands += [(f"P x{f:g}", [f * v for v in dev["P"]]) for f in (0.25, 0.5, 0.75, 1.5, 2, 3, 4)]
        for label, c in cands:
            pl = ts.plan(m, {"device": c, "server": server_ms}, bandwidth_mbps=bw, rtt_ms=args.rtt)
            statics.setdefault(tuple(pl.placement), []).append(label)
        deps, links = {}, {}
        # the trained predictor as it is: it predicts this machine's ms, the device is `slow` times
        # slower, and the deployment anchors predictions to the profile (profiled x the predictor's
        # ratio between the state and the profiled one), which removes that factor
        device_predictor = pred
        for name, kw in (("adaptive", {}), ("adaptive+predictor", {"predictor": device_predictor}),
                         ("+declared", {"predictor": device_predictor})):
            links[name] = link()
            deps[name] = ts.AdaptiveDeployment(m, costs, endpoint, link=links[name], **adaptive, **kw)
        static_names = {}
        for key, labels in statics.items():
            name = f"static {key.count(0)} dev"
            static_names[name] = labels
            links[name] = link()
            deps[name] = ts.Controller(m, costs, endpoint, ts.adapt.static_policy(name, list(key)),
                                       link=links[name], **common)
        # warm-up in the profiled state, not recorded: every block's first runs (TorchScript optimises
        # a graph then), the adaptive deployments' first requests
        clock = 0.0  # the links' virtual clock: one request per second, so no transfer queues behind another
        for _ in range(args.warm_requests):
            for name, d in deps.items():
                links[name].set_time(clock)
                d(xs)
            clock += 1.0

        # ---- the phases
        recs = {name: [] for name in deps}
        phase_of = []
        rng = random.Random(1)
        names = list(deps)
        for phase in args.phases:
            th, lv = state_of(phase, args)
            set_state(phase, args.threads)
            deps["+declared"].set_machine_state(threads=th, background_load=lv)
            with load_for(phase, lv):
                for _ in range(2):  # the new state's transients (the spinners' fork: copy-on-write faults
                    m.run(xs)       # here; a new thread pool) hit no policy
                time.sleep(0.2)
                for k in range(args.requests):
                    order = names[:]
                    rng.shuffle(order)  # no policy always first after a change
                    for name in order:
                        links[name].set_time(clock)
                        y = deps[name](xs)
                        if not torch.allclose(y, ref, rtol=1e-4, atol=1e-4):
                            raise SystemExit(f"{name}: wrong output in phase {phase}, request {k}")
                        recs[name].append(ts.adapt.record_dict(deps[name].last_record))
                    phase_of.append(phase)
                    clock += 1.0
        set_state("P", 1)
    finally:
        if proc is not None:
            stop_server(proc)
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- report
    rows, detail = [], {}
    for phase in args.phases:
        idx = [j for j, p in enumerate(phase_of) if p == phase]
        means = {name: statistics.fmean(recs[name][j]["total_ms"] for j in idx) for name in deps}
        ceiling = min(v for name, v in means.items() if name.startswith("static"))
        for name in deps:
            rs = [recs[name][j] for j in idx]
            lat = [r["total_ms"] for r in rs]
            med, q1, q3 = quantiles(lat)
            plans = collections.Counter(r["device_atoms"] for r in rs)
            srcs = collections.Counter(norm_source(r["cost_source"]) for r in rs)
            rows.append({"phase": phase, "policy": name, "mean_ms": f"{means[name]:.1f}",
                         "median [q1, q3]": f"{med:.1f} [{q1:.1f}, {q3:.1f}]",
                         "x ceiling": f"{means[name] / ceiling:.3f}",
                         "plans (device atoms: requests)": ", ".join(f"{a}:{c}" for a, c in sorted(plans.items())),
                         "cost_source": "; ".join(f"{s} ({c})" for s, c in srcs.most_common(3))
                         if not name.startswith("static") else "-"})
            detail[f"{phase}/{name}"] = [{k: r[k] for k in ("total_ms", "device_ms", "transfer_ms", "server_ms",
                                                             "device_atoms", "est_device_load", "cost_source",
                                                             "device_threads", "device_background_load")}
                                         for r in rs]
    elapsed = time.perf_counter() - t_start
    print(f"\nmodel {args.model} (input {tuple(xs[0].shape)}, {m.num_atoms} atoms); device {args.device_slowdown:g}x "
          f"slower than this process (accounted), link {bw:g} Mbit/s + rtt {args.rtt:g} ms (emulated, accounted); "
          f"server in another process on loopback{' pinned to CPU 1' if pinned() else ''}, 1 thread; device "
          f"{'pinned to CPU 0 at 1 thread (P, L), both CPUs' if pinned() else '1 thread (P, L),'} at {args.threads} "
          f"threads (T); L = {args.load:g} cores of spin loops on the device's CPU; {args.requests} requests per phase "
          f"per policy, interleaved; {elapsed:.0f} s in all")
    print(f"predictor: xgboost on {n_samples} samples ({', '.join(args.train_models) or 'no other model'} at "
          f"(1, 0), (1, {args.load:g}), ({args.threads}, 0); {args.model} at (1, 0) only), {t_train:.0f} s to "
          f"collect and train; its predictions of {args.model}, beside the profiles taken in each state:")
    print(table(acc, list(acc[0])))
    print()
    print("static plans (each the optimum of these costs: P/L/T = the profile in that state, pred S = the "
          "predictor's costs for state S, P xF = the profiled device costs times F):")
    for name, labels in static_names.items():
        print(f"  {name}: {', '.join(labels)}")
    print(table(rows, list(rows[0])))
    for phase in args.phases:
        r = {x["policy"]: float(x["mean_ms"]) for x in rows if x["phase"] == phase}
        print(f"{phase}: adaptive+predictor / adaptive {r['adaptive+predictor'] / r['adaptive']:.3f}, "
              f"+declared / adaptive {r['+declared'] / r['adaptive']:.3f}")
    print("wrote", write_csv("bench_adaptive_predictor", rows))
    if not smoke():
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "bench_adaptive_predictor_detail.json").write_text(json.dumps(
            {"bandwidth_mbps": bw, "args": vars(args), "predictor": acc, "records": detail}))


if __name__ == "__main__":
    main()
