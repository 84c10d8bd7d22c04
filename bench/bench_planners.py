#!/usr/bin/env python3
"""Re-plan decision time of every tessera planner, side by side with networkx max-flow.

    python bench/bench_planners.py                 # synthetic DAGs (~200 resnet-like, ~430 densenet-like, 1k, 10k)
    python bench/bench_planners.py --dag g.json    # an AtomDag from JSON (dag.h fields; optional "compute_ms")
    python bench/bench_planners.py --smoke         # a few repeats, for the test suite
    python bench/bench_planners.py --zoo resnet50 googlenet inception_v3 densenet121 mobilenet_v2
                                   [--zoo-costs profile|flops] [--device-slowdown 10]
                                                   # real torchvision atom DAGs, then the synthetic ones

What is timed: one call of Planner.plan(context) from Python on a planner whose
graph is already built (the C++ re-plan: capacities updated, max flow, evaluate,
blocks), the context's bandwidth cycling through DADS's classes (0.13, 1.1, 5.85,
18.88 Mbit/s) and more. networkx: nx.minimum_cut (preflow-push) on the same DADS
graph built once, capacities already set for the bandwidth. Calls are interleaved
(A B A B) and medians reported with min-max; ratios are computed per graph from
the medians of the same run. Parametric lookup: C++ loop over 10^6 lookups
(lookup_indices), so the Python call overhead is excluded, plus a Python call.
Single thread. Results: bench/results/planners.{csv,json}.

Real graphs (--zoo): the AtomDag of a torchvision model (tessera.zoo, random
weights); server costs are the per-atom medians profiled here (ts.profile,
1 thread, 5 repeats after 2 warm-up; --zoo-costs profile, the default) or a
deterministic roofline from the atom's FLOPs and bytes (--zoo-costs flops:
0.01 ms + FLOPs / 20 GFLOP/s + bytes moved / 5 GB/s); device = server x
--device-slowdown (10: a phone-class device). gads runs under a device memory
budget of 30% of the model's parameters.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time

import tessera as ts  # imports torch first, then the engine
from tessera import planning
from tessera.testing import NetworkxDads, random_dag

BANDWIDTHS = [0.13, 1.1, 5.85, 18.88, 0.5, 3.0, 50.0, 200.0]


# ---- synthetic graphs ------------------------------------------------------------

def _value(producer, consumers, nbytes, output=False, name=""):
    return planning.DagValue(producer=producer, consumers=sorted(set(consumers)), bytes=float(nbytes),
                          is_output=output, name=name)


def resnet_like(n, rng):
    """A chain of conv-bn-relu atoms with a skip connection every 3 atoms (residual adds)."""
    values = [_value(-1, [0], 602112, name="input")]
    for a in range(n):
        consumers = [a + 1] if a + 1 < n else []
        if a % 3 == 0 and a + 3 < n:
            consumers.append(a + 3)
        values.append(_value(a, consumers, rng.choice([200704, 401408, 802816, 100352]), a == n - 1, f"a{a}"))
    return values


def densenet_like(rng, layers=(6, 12, 24, 16)):
    """DenseNet-121-like: in a dense block every layer's input is the concatenation of
    all earlier outputs of the block (dense skip connections); each layer is
    concat, bn, relu, conv1x1, bn, relu, conv3x3; transitions between blocks."""
    values = [_value(-1, [0], 602112, name="input")]
    producers = []  # (atom, value index) whose outputs feed later concats
    atom = 0
    stem = atom
    atom += 1
    block_outputs = [len(values)]
    values.append(_value(stem, [], 802816, name="stem"))
    for b, nl in enumerate(layers):
        feeds = list(block_outputs)  # value indices available to concat in this block
        for layer in range(nl):
            concat = atom
            for v in feeds:
                values[v].consumers = sorted(set(values[v].consumers) | {concat})
            chain = [concat + i for i in range(7)]
            for i in range(6):
                values.append(_value(chain[i], [chain[i + 1]], rng.choice([401408, 802816, 1605632]) // (b + 1)))
            atom += 7
            feeds.append(len(values))
            values.append(_value(chain[6], [], 100352 // (b + 1), name=f"block{b}.layer{layer}"))
        # transition: concat of all, then bn-relu-conv-pool (4 atoms) or the classifier at the end
        concat = atom
        for v in feeds:
            values[v].consumers = sorted(set(values[v].consumers) | {concat})
        last = b == len(layers) - 1
        k = 3 if last else 5
        for i in range(k - 1):
            values.append(_value(concat + i, [concat + i + 1], 401408 // (b + 1)))
        atom += k
        block_outputs = [len(values)]
        values.append(_value(atom - 1, [], 4000 if last else 200704 // (b + 1), output=last, name=f"transition{b}"))
    return atom, values


# tessera.testing.random_dag as a random layered graph: a chain with ~0.8 skip edges per atom to
# one of the next 40 atoms (fan-out, multi-consumer values), one output; O(n) to draw.
RANDOM_DAG = dict(skip=0.1, window=40, chain=1.0, two_outputs=0.0, input_fanout=0.0, extra_outputs=0.0,
                  value_bytes=(10_000, 1_000_000), param_bytes=(0, 2_000_000))


def atom_dag(n, values, rng):
    return planning.AtomDag(num_atoms=n, values=values, param_bytes=[float(rng.randint(0, 2_000_000)) for _ in range(n)],
                         atom_names=[f"atom{a}" for a in range(n)])


def make_cost_model(dag, rng, compute_ms=None):
    n = dag.num_atoms
    if compute_ms is None:
        dev = [rng.uniform(0.05, 3.0) for _ in range(n)]
        srv = [d / rng.uniform(5, 20) for d in dev]
        compute_ms = [dev, srv]
    return planning.CostModel(dag, compute_ms)


def flop_costs_ms(model):
    """Deterministic per-atom ms from FLOPs and bytes (a roofline: 20 GFLOP/s, 5 GB/s, 10 us per call)."""
    from tessera import predict
    names = predict.feature_names()
    i_flops, i_in, i_out = names.index("flops"), names.index("in_bytes"), names.index("out_bytes")
    return [0.01 + f.x[i_flops] / 20e9 * 1e3 + (f.x[i_in] + f.x[i_out]) / 5e9 * 1e3 for f in predict.features(model)]


def zoo_cost_model(name, costs="profile", slowdown=10.0):
    """(CostModel, description) of a zoo model's real atom DAG; see the module doc."""
    from tessera import zoo
    path, xs = zoo.torchscript(name)
    m = ts.load(str(path), xs)
    if costs == "profile":
        srv = list(ts.profile(m, xs, threads=1, repeats=5, warmup=2).atom_ms)
    elif costs == "flops":
        srv = flop_costs_ms(m)
    else:
        raise SystemExit(f"--zoo-costs must be profile or flops, got {costs!r}")
    return planning.CostModel(m.dag(), [[slowdown * c for c in srv], srv])


def load_dag_json(path, rng):
    with open(path) as f:
        d = json.load(f)
    values = [_value(v.get("producer", -1), v.get("consumers", []), v.get("bytes", 0), v.get("is_output", False),
                     v.get("name", "")) for v in d["values"]]
    n = int(d["num_atoms"])
    cm = make_cost_model(atom_dag(n, values, rng), rng, d.get("compute_ms"))
    if d.get("param_bytes"):
        dag = cm.dag
        dag.param_bytes = [float(x) for x in d["param_bytes"]]
        if d.get("atom_names"):
            dag.atom_names = list(d["atom_names"])
        cm.dag = dag
    return cm


def dump_dag_json(cm, path):
    dag = cm.dag
    with open(path, "w") as f:
        json.dump({"num_atoms": dag.num_atoms, "param_bytes": list(dag.param_bytes),
                   "atom_names": list(dag.atom_names), "compute_ms": [list(r) for r in cm.compute_ms],
                   "values": [{"producer": v.producer, "consumers": list(v.consumers), "bytes": v.bytes,
                               "is_output": v.is_output, "name": v.name} for v in dag.values]}, f)


# ---- timing --------------------------------------------------------------------------

def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def summary(samples):
    return {"median_us": statistics.median(samples) * 1e6, "min_us": min(samples) * 1e6,
            "max_us": max(samples) * 1e6, "n": len(samples)}


def bench_graph(name, cm, repeats, nx_repeats, rtt=10.0):
    rows = []
    n = cm.dag.num_atoms
    print(f"\n== {name}: {n} atoms, {len(cm.dag.values)} values, rtt {rtt} ms, server load 1, 1 thread")
    # the bound planners (Planner.core): what is timed is the C++ call, not the Python wrapper's conversions
    planners = {alg: ts.Planner(cm.dag, cm, algorithm=alg).core for alg in ts.planner_names()}
    total_params = sum(cm.dag.param_bytes)
    cons = {alg: ts.make_constraints() for alg in planners}
    cons["gads"] = ts.make_constraints({"device_memory_bytes": 0.3 * total_params})
    ctxs = [ts.make_context(bw, rtt) for bw in BANDWIDTHS]
    current = {alg: [] for alg in planners}
    for alg, p in planners.items():  # warm-up (parametric builds its envelope here)
        for c in ctxs[:2]:
            current[alg] = list(p.plan(c, cons[alg], current[alg]).placement) if alg == "gads" else []
    nxg = NetworkxDads(cm.dag, cm.compute_ms[0], cm.compute_ms[1], rtt_ms=rtt) if nx_repeats > 0 else None
    samples = {alg: [] for alg in planners}
    nx_samples = []
    agree = True
    for r in range(repeats):
        ctx = ctxs[r % len(ctxs)]
        for alg, p in planners.items():
            dt, plan = timed(lambda: p.plan(ctx, cons[alg], current[alg]))
            samples[alg].append(dt)
            if alg == "gads":
                current[alg] = list(plan.placement)
        if nxg is not None and r < nx_repeats:
            nxg.set_bandwidth(ctx.bandwidth_mbps)
            dt, cut = timed(nxg.cut)
            nx_samples.append(dt)
            ours = planners["mincut"].plan(ctx).latency_ms
            agree &= abs(cut.value_ms - ours) <= 1e-6 * max(1.0, ours)
    nx_med = statistics.median(nx_samples) if nx_samples else None
    print(f"{'planner':<12} {'median us':>11} {'min-max us':>21}  {'vs networkx':>12}")
    for alg in planners:
        s = summary(samples[alg])
        ratio = nx_med / (s["median_us"] / 1e6) if nx_med else None
        print(f"{alg:<12} {s['median_us']:>11.1f} {s['min_us']:>10.1f}-{s['max_us']:<10.1f} "
              f"{(f'{ratio:.0f}x faster' if ratio else ''):>12}")
        rows.append({"graph": name, "atoms": n, "planner": alg, **s,
                     "networkx_median_us": nx_med * 1e6 if nx_med else None, "speedup_vs_networkx": ratio})
    if nx_samples:
        s = summary(nx_samples)
        print(f"{'networkx':<12} {s['median_us']:>11.1f} {s['min_us']:>10.1f}-{s['max_us']:<10.1f}  "
              f"(nx.minimum_cut, same graph; values agree with mincut: {agree})")
        rows.append({"graph": name, "atoms": n, "planner": "networkx.minimum_cut", **s,
                     "networkx_median_us": s["median_us"], "speedup_vs_networkx": 1.0, "agrees": agree})
    # Parametric lookups: C++ loop, then one Python call.
    par = ts.ParametricPlanner(cm.dag, cm, rtt_ms=rtt).core
    bws = [10 ** random.uniform(-2, 4) for _ in range(10 ** 6)]
    dt, _ = timed(lambda: par.lookup_indices(bws))
    py = [timed(lambda: par.lookup_index(5.85))[0] for _ in range(2000)]
    print(f"parametric: {len(par.segments)} segments, {par.num_cuts_solved} min cuts to build; lookup "
          f"{dt / len(bws) * 1e9:.1f} ns in C++ ({statistics.median(py) * 1e6:.2f} us per Python call)")
    rows.append({"graph": name, "atoms": n, "planner": "parametric.lookup (C++ loop)",
                 "median_us": dt / len(bws) * 1e6, "segments": len(par.segments)})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dag", action="append", default=[], help="AtomDag JSON file (repeatable)")
    ap.add_argument("--repeats", type=int, default=1000, help="re-plans per planner")
    ap.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    ap.add_argument("--zoo", nargs="+", default=[], metavar="NAME",
                    help="real atom DAGs of zoo models (e.g. resnet50 densenet121), benchmarked before the synthetic ones")
    ap.add_argument("--zoo-costs", default="profile", choices=["profile", "flops"],
                    help="server costs of zoo models: profiled here (default) or FLOP-derived")
    ap.add_argument("--device-slowdown", type=float, default=10.0, help="device ms = server ms x this (default 10)")
    ap.add_argument("--no-synthetic", action="store_true", help="only the --zoo / --dag graphs")
    ap.add_argument("--write-dag", help="write the densenet-like synthetic DAG (or the first graph) as JSON here and exit")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    args = ap.parse_args(argv)
    rng = random.Random(0)
    random.seed(0)
    graphs = []
    for name in args.zoo:
        t0 = time.perf_counter()
        graphs.append((name, zoo_cost_model(name, args.zoo_costs, args.device_slowdown)))
        print(f"{name}: atom DAG and {args.zoo_costs} costs in {time.perf_counter() - t0:.1f} s", flush=True)
    for path in args.dag:
        graphs.append((os.path.basename(path), load_dag_json(path, rng)))
    if not args.dag and not args.no_synthetic:
        graphs.append(("resnet-like", make_cost_model(atom_dag(200, resnet_like(200, rng), rng), rng)))
        n, vals = densenet_like(rng)
        graphs.append(("densenet-like", make_cost_model(atom_dag(n, vals, rng), rng)))
        graphs.append(("random-1k", make_cost_model(random_dag(rng, 1000, **RANDOM_DAG), rng)))
        if not args.smoke:
            graphs.append(("random-10k", make_cost_model(random_dag(rng, 10000, **RANDOM_DAG), rng)))
    if args.write_dag:
        named = dict(graphs)
        dump_dag_json(named.get("densenet-like", graphs[0][1]), args.write_dag)
        return 0
    rows = []
    for name, cm in graphs:
        big = cm.dag.num_atoms > 5000
        repeats = 5 if args.smoke else (30 if big else args.repeats)
        nx_repeats = 2 if args.smoke else (5 if big else 30)
        rows += bench_graph(name, cm, repeats, nx_repeats)
    if not args.smoke:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "planners.json"), "w") as f:
            json.dump(rows, f, indent=1)
        keys = sorted({k for r in rows for k in r})
        with open(os.path.join(args.out, "planners.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        print(f"\nwrote {args.out}/planners.csv and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
