"""N-node pipelines (issue 14): predicted and measured throughput, planning time.

Models of the zoo profiled here (1 thread, server costs = this machine); nodes: the device 10x slower
than this machine, then servers at 1x, 2x (twice as fast), 4x, 1x, 2x (as many as --nodes asks); links:
device to every server at --device-link Mbit/s (rtt 20 ms), server to server 1 Gbit/s (rtt 1 ms).
Per model and node count: the best two-party plan (the device and one server, dp), equal_layers and dp
over the given order, pso_dp, exhaustive (every order of every subset) where it finishes: predicted
frames per second from the cost model, planning time in C++ called from Python (median of --repeats).

Measured (unless --no-measure): every plan but exhaustive streams --frames inputs through real
`tessera serve` processes on loopback (one per server node, one worker, 1 intra-op thread), in_flight
= 2 x stages. Emulation, said plainly: all nodes share this machine's 2 cores, so the *accounted*
throughput is what the plan would do with every node and link on its own: each stage's thread CPU
time x its node's slowdown (device 10, servers 1/speed) and each hop's wire bytes over its link; the
*wall* throughput is what this machine did, every process competing for the same 2 cores. Also the
headline configuration: vgg16, the device on an --device-link link to three equal (1x) servers joined
at 1 Gbit/s, best single server against the pipeline. Writes bench_pipeline.csv, bench_pipeline_measured.csv
and bench_pipeline.png (accounted against predicted throughput, and the stages of the headline plans);
--only-headline writes bench_pipeline_headline.{csv,png}; --plot-only redraws the PNG from the CSV.

    .venv/bin/python bench/bench_pipeline.py [--models resnet50 googlenet vgg16 densenet121 transformer]
                                             [--nodes 2 3 4 6] [--frames 12] [--no-measure]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import zoo  # noqa: E402

from common import RESULTS, smoke, table, write_csv  # noqa: E402

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


def best_single(m, net, device_link, servers=None, objective="throughput"):
    """The best plan on the device and at most one server (dp), as the two-party planners place it."""
    dev = net.nodes[0]
    cands = [ts.plan_pipeline(m, ts.Network([dev], {}), objective=objective, algorithm="dp")]
    for n in net.nodes[1:]:
        if servers is not None and n.name not in servers:
            continue
        sub = ts.Network([dev, n], {(dev.name, n.name): (device_link, 20.0)})
        cands.append(ts.plan_pipeline(m, sub, objective=objective, algorithm="dp"))
    if objective == "latency":
        return min(cands, key=lambda p: p.latency_ms)
    return max(cands, key=lambda p: p.throughput_fps)


def accounted_latency(plan, st):
    """One input's latency from the accounted stage figures: each stage's compute (a split stage: its own
    tile or its slowest helper's round, whichever is longer), each link's serialisation and half its rtt."""
    net = plan.core_network
    nodes = [s.node for s in plan.core.stages]
    ms = 0.0
    for i, s in enumerate(st.stages):
        u = nodes[i]
        ms += max(s.accounted_ms, s.tile_ms + 2 * s.tile_link_ms)
        if i > 0:
            ms += s.link_in_ms + net.rtt_ms[nodes[i - 1]][u] / 2
        if s.link_back_ms > 0:
            ms += s.link_back_ms + net.rtt_ms[u][0] / 2
    return ms


class Servers:
    """One `tessera serve` process per server node, on loopback, serving the model's atom store."""

    def __init__(self, m, names):
        from tessera.runtime import spawn_server
        self.dir = tempfile.TemporaryDirectory(prefix="tessera-bench-pipeline-")
        m.save(Path(self.dir.name) / "model")
        self.procs, self.endpoints = [], {}
        for name in names:
            proc, ep = spawn_server(Path(self.dir.name) / "model", extra=["--threads", "1"])
            self.procs.append(proc)
            self.endpoints[name] = ep

    def close(self):
        from tessera.runtime import stop_server
        for p in self.procs:
            stop_server(p)
        self.dir.cleanup()


def measure(m, xs, plan, endpoints, frames):
    """Streams `frames` inputs through the plan twice (after a warm-up that loads the atoms): overlapped
    (in_flight = 2 x stages: the wall-clock figure, every process on this machine's cores at once) and one
    at a time (in_flight = 1: each stage's CPU time with no other stage competing for the cores, which is
    what the accounted figure, every node on its own machine, is made of). Returns (isolated, overlapped)."""
    names = {n.name for n in plan.network.nodes}
    eps = {k: v for k, v in endpoints.items() if k in names}
    stages = len(plan.stages)
    out = []
    for window in (2 * stages, 1):
        pipe = ts.Pipeline(m, plan, in_flight=window, endpoints=eps, emulation="account", timeout_ms=120000)
        list(pipe.map([xs] * min(frames, 2 * stages)))  # first use: the servers load their atoms
        ys = list(pipe.map([xs] * frames))
        assert len(ys) == frames
        out.append(pipe.stats())
    return out[1], out[0]


def measured_row(model, config, algorithm, plan, sts):
    st, over = sts
    acc = st.accounted_fps
    return {"model": model, "config": config, "algorithm": algorithm, "stages": len(plan.stages),
            "predicted_fps": f"{plan.throughput_fps:.3f}", "accounted_fps": f"{acc:.3f}",
            "accounted/predicted": f"{acc / plan.throughput_fps:.3f}" if plan.throughput_fps > 0 else "-",
            "accounted_overlapped_fps": f"{over.accounted_fps:.3f}",
            "wall_fps": f"{over.wall_fps:.3f}", "fallbacks": st.fallbacks + over.fallbacks,
            "predicted_bottleneck": plan.bottleneck, "accounted_bottleneck": st.bottleneck,
            "stage_accounted_ms": " | ".join(f"{x.node}:{x.accounted_ms:.1f}" for x in st.stages),
            "plan_stage_ms": " | ".join(f"{n}:{ms:.1f}" for (n, _), ms in zip(plan.stages, plan.stage_ms))}


def reprice(m, plan, ct2):
    """The plan's predicted fps under a second profile of the same machine (nodes by speed over it): how far
    the prediction itself moves between two measurements, the ceiling of any agreement with it."""
    net = plan.network
    nodes = [ts.Node(n.name, speed=n.speed, reference=ct2) for n in net.nodes]
    again = ts.Network(nodes, net.links, symmetric=False).core(m.num_atoms)
    again.tiling = plan.core_network.tiling  # the same splits, if any
    again.pin = plan.core_network.pin
    return ts.pipeline.evaluate_pipeline(m.dag(), again, plan.core.stages).throughput_fps


def _stage_ms(text):
    """"device:0.0 | equal1:314.7" -> [("device", 0.0), ("equal1", 314.7)]"""
    out = []
    for part in text.split(" | "):
        name, ms = part.rsplit(":", 1)
        out.append((name, float(ms)))
    return out


def plot(measured, path, headline=("best_single_server", "single_server_alone", "pso_dp")):
    """Accounted against predicted fps for every measured plan, and the stages of the headline plans
    (vgg16 on three equal servers as fast as this machine), from the rows written to the CSV."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    heads = [r for a in headline for r in measured if r["config"] == "3 equal servers x1" and r["algorithm"] == a]
    fig, axes = plt.subplots(1, 1 + len(heads), figsize=(5 + 5 * len(heads), 4.2), squeeze=False)
    axes = axes[0]
    ax = axes[0]
    pts = [(float(r["predicted_fps"]), float(r["accounted_fps"])) for r in measured
           if r["accounted/predicted"] not in ("-", "")]
    top = max(max(p) for p in pts) * 1.1
    ax.plot([0, top], [0, top], "k-", lw=0.8)
    ax.fill_between([0, top], [0, 0.9 * top], [0, 1.1 * top], color="0.9", label="within 10%")
    ax.scatter([p for p, _ in pts], [a for _, a in pts], s=14)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("predicted fps (cost model)")
    ax.set_ylabel("accounted fps (measured)")
    ax.set_title(f"{len(pts)} measured plans")
    ax.legend(loc="upper left")
    for ax, r in zip(axes[1:], heads):
        acc, pred = _stage_ms(r["stage_accounted_ms"]), _stage_ms(r["plan_stage_ms"])
        y = range(len(acc))
        ax.barh([i + 0.2 for i in y], [ms for _, ms in acc], height=0.4, label="compute (accounted)")
        ax.barh([i - 0.2 for i in y], [ms for _, ms in pred], height=0.4, label="compute (predicted)")
        ax.set_yticks(list(y))
        ax.set_yticklabels([f"{i}: {n}" for i, (n, _) in enumerate(acc)])
        ax.invert_yaxis()
        ax.set_xlabel("ms per frame")
        ax.set_title(f"{r['model']} {r['algorithm']}, {r['config']}\n{float(r['accounted_fps']):.2f} fps accounted, "
                     f"{float(r['predicted_fps']):.2f} predicted ({r['accounted_bottleneck']})", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def random_branchy(rng, max_atoms, K):
    """An inception-like random DAG (blocks fanning out into 1-3 branches of 1-2 atoms that join again)
    and a random K-node network (device 10x slower, servers 1-4x, links 1-200 Mbit/s, some missing)."""
    producers, consumers = [], []

    def value(p):
        producers.append(p)
        consumers.append([])
        return len(producers) - 1

    n = 0

    def atom(ins):
        nonlocal n
        a = n
        n += 1
        for v in ins:
            consumers[v].append(a)
        return value(a)

    head = value(-1)
    while n < max_atoms - 1:
        tails = []
        for _ in range(rng.randint(1, 3)):
            if n >= max_atoms - 1:
                break
            v = atom([head])
            for _ in range(rng.randint(1, 2) - 1):
                if n < max_atoms - 1:
                    v = atom([v])
            tails.append(v)
        head = atom(tails)
    values = [ts.planning.DagValue(producers[v], consumers[v], rng.uniform(1e3, 1e6), not consumers[v])
              for v in range(len(producers))]
    dag = ts.planning.AtomDag(n, values, [rng.uniform(0, 1e6) for _ in range(n)])
    net = ts.pipeline.PipelineNetwork()
    nodes = []
    for k in range(K):
        node = ts.pipeline.PipelineNode()
        node.name = "device" if k == 0 else f"edge-{k}"
        speed = 10 if k == 0 else rng.uniform(1, 4)
        node.compute_ms = [rng.uniform(0.1, 10) * speed for _ in range(n)]
        nodes.append(node)
    net.nodes = nodes
    net.bandwidth_mbps = [[0.0 if i == j or rng.random() > 0.85 else rng.uniform(1, 200) for j in range(K)]
                          for i in range(K)]
    net.rtt_ms = [[0.0 if i == j else rng.uniform(0, 5) for j in range(K)] for i in range(K)]
    return dag, net


def convex_gap_study(instances, seed=1):
    """dp (contiguous stages of one topological order) against the best over every convex partition
    (brute force) on random branchy DAGs of <= 10 atoms and <= 4 nodes, both objectives."""
    import random
    rng = random.Random(seed)
    gaps = {"throughput": [], "latency": []}
    for i in range(instances):
        K = rng.randint(2, 4)
        dag, net = random_branchy(rng, rng.randint(4, 10), K)
        for obj in gaps:
            dp = ts.plan_pipeline(dag, net, objective=obj, algorithm="dp")  # node order 0..K-1
            bf = ts.pipeline.plan_pipeline_convex_brute_force(dag, net, list(range(K)), obj)
            if dp.ok() and bf.ok():
                a, b = (dp.bottleneck_ms, bf.bottleneck_ms) if obj == "throughput" else (dp.latency_ms, bf.latency_ms)
                gaps[obj].append(a / b - 1 if b > 0 else 0.0)
    return gaps


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times) * 1e3


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "vgg16", "densenet121", "transformer"])
    ap.add_argument("--nodes", type=int, nargs="+", default=[2, 3, 4, 6])
    ap.add_argument("--device-link", type=float, default=18.88, help="Mbit/s from the device to each server")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--frames", type=int, default=12, help="measured frames per plan")
    ap.add_argument("--no-measure", action="store_true", help="predictions and planning times only")
    ap.add_argument("--plot-only", action="store_true", help="redraw bench_pipeline.png from the measured CSV")
    ap.add_argument("--only-headline", action="store_true",
                    help="only the three-equal-servers headline (vgg16), written to bench_pipeline_headline.csv")
    args = ap.parse_args(argv)
    if args.plot_only:
        import csv
        with open(RESULTS / "bench_pipeline_measured.csv") as f:
            print("wrote", plot(list(csv.DictReader(f)), RESULTS / "bench_pipeline.png"))
        return
    if smoke():
        args.models, args.nodes, args.repeats, args.frames = ["squeezenet1_0"], [2, 3], 2, 3
    ts.set_threads(1)  # the device's stages, like the profile and the servers: OpenMP and OpenBLAS
    rows, measured, plans_of = [], [], {}
    for name in args.models:
        path, xs = zoo.torchscript(name)
        m = ts.load(str(path), xs)
        for _ in range(3):  # touch the weights and let TorchScript settle before the profile
            m.run_flat(xs)
        canary0 = ts.canary_ms(9)
        ct = ts.profile(m, xs, threads=1, repeats=3, warmup=1)
        servers = None
        if not args.no_measure:
            k_max = max(max(args.nodes), 4 if (name == "vgg16" or smoke()) else 0)  # the headline needs 3 servers
            servers = Servers(m, [n.name for n in network(ct, k_max, args.device_link).nodes[1:]])
        for k in ([] if args.only_headline else args.nodes):
            net = network(ct, k, args.device_link)
            single = best_single(m, net, args.device_link)
            # tessera's two-target heavy-load planner (DADS's throughput planner: any convex placement on the
            # device and one server, one shared link stage) on the device and the fastest server
            fastest = max(net.nodes[1:], key=lambda n: n.speed)
            two = ts.plan(m, {"device": net.nodes[0].atom_ms(m.num_atoms), "server": fastest.atom_ms(m.num_atoms)},
                          bandwidth_mbps=args.device_link, rtt_ms=20.0, algorithm="throughput")
            eq, _ = timed(lambda: ts.plan_pipeline(m, net, algorithm="equal_layers"), args.repeats)
            dp, dp_ms = timed(lambda: ts.plan_pipeline(m, net, algorithm="dp"), args.repeats)
            pso, pso_ms = timed(lambda: ts.plan_pipeline(m, net, algorithm="pso_dp"), max(1, args.repeats // 4))
            ex, ex_ms = (timed(lambda: ts.plan_pipeline(m, net, algorithm="exhaustive"), max(1, args.repeats // 10))
                         if k <= 6 else (None, None))
            rows.append({"model": name, "atoms": m.num_atoms, "nodes": k,
                         "best_two_party_fps": f"{single.throughput_fps:.2f}",
                         "two_target_throughput_planner_fps": f"{two.throughput_fps:.2f}",
                         "equal_layers_fps": f"{eq.throughput_fps:.2f}", "dp_fps": f"{dp.throughput_fps:.2f}",
                         "pso_dp_fps": f"{pso.throughput_fps:.2f}",
                         "exhaustive_fps": f"{ex.throughput_fps:.2f}" if ex else "-",
                         "dp/best_two_party": f"{dp.throughput_fps / single.throughput_fps:.2f}",
                         "dp_ms": f"{dp_ms:.2f}", "pso_dp_ms": f"{pso_ms:.1f}", "exhaustive_ms": f"{ex_ms:.1f}" if ex else "-",
                         "dp_stages": " | ".join(f"{n}:{len(a)}" for n, a in dp.stages)})
            print(rows[-1], flush=True)
            if servers is not None:
                for algo, plan in (("best_two_party", single), ("equal_layers", eq), ("dp", dp), ("pso_dp", pso)):
                    st = measure(m, xs, plan, servers.endpoints, args.frames)
                    measured.append(measured_row(name, f"{k} nodes", algo, plan, st))
                    plans_of.setdefault(name, []).append(plan)
                    print(measured[-1], flush=True)
        if servers is not None and (name == "vgg16" or smoke()):
            # the headline: the device on one link to three equal servers joined at 1 Gbit/s; servers as fast
            # as this machine, then 4x slower (embedded edge boxes, the multi-device seed's setting)
            eps = dict(zip([f"equal{i}" for i in (1, 2, 3)], list(servers.endpoints.values())[:3]))
            for speed in (1.0, 0.25):
                nodes = [ts.Node("device", speed=0.1, reference=ct)] + [
                    ts.Node(f"equal{i}", speed=speed, reference=ct) for i in (1, 2, 3)]
                links = {("device", f"equal{i}"): (args.device_link, 20.0) for i in (1, 2, 3)}
                links.update({(f"equal{i}", f"equal{j}"): (1000.0, 1.0) for i in (1, 2, 3) for j in (1, 2, 3)
                              if i < j})
                net3 = ts.Network(nodes, links)
                config = f"3 equal servers x{speed:g}"
                one = best_single(m, net3, args.device_link)
                # the whole model on one server (the device only sends its input)
                alone = ts.plan_pipeline(m, ts.Network(nodes[:2], {("device", "equal1"): (args.device_link, 20.0)}),
                                         algorithm="dp", pin={a: "equal1" for a in range(m.num_atoms)})
                pipe3 = ts.plan_pipeline(m, net3, algorithm="pso_dp")
                st0 = measure(m, xs, alone, eps, args.frames)
                st1 = measure(m, xs, one, eps, args.frames)
                st3 = measure(m, xs, pipe3, eps, args.frames)
                measured.append(measured_row(name, config, "single_server_alone", alone, st0))
                plans_of.setdefault(name, []).append(alone)
                measured.append(measured_row(name, config, "best_two_party", one, st1))
                measured.append(measured_row(name, config, "pso_dp", pipe3, st3))
                plans_of.setdefault(name, []).extend([one, pipe3])
                # the ceiling: the best any plan can do on this device and links, servers infinitely fast
                fast = ts.Network([nodes[0]] + [ts.Node(n.name, speed=1e6, reference=ct) for n in nodes[1:]], links)
                link_fps = ts.plan_pipeline(m, fast, algorithm="exhaustive").throughput_fps
                measured[-1]["vs_single_alone_accounted"] = f"{st3[0].accounted_fps / st0[0].accounted_fps:.2f}"
                measured[-1]["vs_single_alone_predicted"] = f"{pipe3.throughput_fps / alone.throughput_fps:.2f}"
                measured[-1]["vs_best_single_accounted"] = f"{st3[0].accounted_fps / st1[0].accounted_fps:.2f}"
                measured[-1]["vs_best_single_wall"] = f"{st3[1].wall_fps / st1[1].wall_fps:.2f}"
                measured[-1]["ceiling_vs_best_single"] = f"{link_fps / st1[0].accounted_fps:.2f}"
                print(measured[-2], measured[-1], sep="\n", flush=True)
                # latency: the same servers, one input at a time; splits by rows against no splits
                lat_one = best_single(m, net3, args.device_link, objective="latency")
                lat_plain = ts.plan_pipeline(m, net3, objective="latency", algorithm="pso_dp")
                lat_split = ts.plan_pipeline(m, net3, objective="latency", algorithm="dp", split=3)
                for algo, plan in (("latency best_single_server", lat_one), ("latency pso_dp", lat_plain),
                                   ("latency dp split=3", lat_split)):
                    st = measure(m, xs, plan, eps, args.frames)
                    row = measured_row(name, config, algo, plan, st)
                    row["predicted_latency_ms"] = f"{plan.latency_ms:.1f}"
                    row["accounted_latency_ms"] = f"{accounted_latency(plan, st[0]):.1f}"
                    row["helpers"] = " | ".join(",".join(h) for h in plan.helpers)
                    measured.append(row)
                    plans_of[name].append(plan)
                    print(measured[-1], flush=True)
        if servers is not None:
            servers.close()
            ct2 = ts.profile(m, xs, threads=1, repeats=3, warmup=1)  # the ceiling: the prediction, measured again
            canary1 = ts.canary_ms(9)
            print(f"{name}: the machine's canary {canary0:.3f} ms before, {canary1:.3f} ms after "
                  f"({canary1 / canary0:.2f}x); the model {sum(ct.atom_ms):.1f} ms profiled before, "
                  f"{sum(ct2.atom_ms):.1f} ms after", flush=True)
            for r, plan in zip([r for r in measured if r["model"] == name], plans_of[name]):
                again = reprice(m, plan, ct2)
                r["predicted_again_fps"] = f"{again:.3f}"
                r["again/predicted"] = f"{again / plan.throughput_fps:.3f}"
    gaps = {} if args.only_headline else convex_gap_study(40 if smoke() else 500)
    for obj, g in gaps.items():
        g = sorted(g)
        print(f"dp against every convex partition ({obj}, {len(g)} random branchy DAGs <= 10 atoms, <= 4 nodes): "
              f"equal on {sum(x < 1e-9 for x in g)}, within 2% on {sum(x <= 0.02 for x in g)}, median gap "
              f"{statistics.median(g) * 100:.2f}%, p90 {g[int(0.9 * (len(g) - 1))] * 100:.1f}%, max {g[-1] * 100:.1f}%")
    print(f"\npredicted by the cost model (1 thread profiles here; device 10x slower; servers 1x/2x/4x/1x/2x; device link "
          f"{args.device_link:g} Mbit/s rtt 20 ms, servers 1 Gbit/s rtt 1 ms); planning ms: median of {args.repeats} "
          f"calls from Python")
    if rows:
        print(table(rows, list(rows[0])))
        print("wrote", write_csv("bench_pipeline", rows))
    if measured:
        cols = list(dict.fromkeys(c for r in measured for c in r))
        for r in measured:
            for c in cols:
                r.setdefault(c, "")
        print(f"\nmeasured: {args.frames} frames per plan through `tessera serve` processes on loopback; accounted = "
              f"stage CPU ms x node slowdown and wire bytes over each link (every node on its own machine); wall = "
              f"this machine's 2 cores shared by all")
        print(table(measured, [c for c in cols if c not in ("stage_accounted_ms", "plan_stage_ms")]))
        print("wrote", write_csv("bench_pipeline_headline" if args.only_headline else "bench_pipeline_measured",
                                 measured))
        ratios = [float(r["accounted/predicted"]) for r in measured if r["accounted/predicted"] not in ("-", "")]
        print(f"accounted/predicted over {len(ratios)} plans: median {statistics.median(ratios):.3f}, min "
              f"{min(ratios):.3f}, max {max(ratios):.3f}; within 10%: {sum(abs(x - 1) <= 0.1 for x in ratios)}")
        again = [float(r["again/predicted"]) for r in measured if r.get("again/predicted")]
        if again:
            print(f"ceiling, the prediction from a second profile over the first, same plans: median "
                  f"{statistics.median(again):.3f}, min {min(again):.3f}, max {max(again):.3f}; within 10%: "
                  f"{sum(abs(x - 1) <= 0.1 for x in again)} of {len(again)}")
        if not smoke():
            name = "bench_pipeline_headline.png" if args.only_headline else "bench_pipeline.png"
            print("wrote", plot(measured, RESULTS / name))


if __name__ == "__main__":
    main()
