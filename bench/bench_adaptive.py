"""The headline benchmark: adaptive deployment over real bandwidth traces vs static plans and the oracle.

For each model and trace (norway-hsdpa 3G traces and FCC broadband traces from
../shared/traces, --per-set of each spread evenly over the sorted file list, each unscaled and scaled so its median is DADS's 3G / 4G / WiFi
uplink: 1.1 / 5.85 / 18.88 Mbit/s), one request every --period trace seconds for
--requests requests, every policy of tessera.experiment on the same requests, interleaved: device_only,
server_only, static (min cut at the trace's mean bandwidth), chain (Neurosurgeon,
re-planned every request from the monitor's estimate), adaptive (tessera), oracle
(optimal plan for the true bandwidth of each request).

Real: the server is `tessera serve` in another process on loopback; every block
runs (device blocks here, 1 thread; server blocks there, 1 thread); every
transfer crosses ZeroMQ; every output is checked. Emulated: the device is
--device-slowdown times slower than this machine (its compute is accounted x
slowdown); the link is the transport's emulator (token bucket over the trace +
rtt/2 per message) in account mode (its time is added, not slept).

    .venv/bin/python bench/bench_adaptive.py [--traces-dir ../shared/traces] [--per-set 5] [--requests 30]

Simulated (--simulate): the same policy objects over the cost model instead of real
execution (tessera.experiment.simulate): every trace of both sets (--per-set 0), each
scaled so its median sits at each of the model's two main breakpoints (the bandwidths
where the most atoms change side), deterministic, no server. Reports the oracle's gain
(best static mean - oracle mean) and how much of it the adaptive policy captures.

    .venv/bin/python bench/bench_adaptive.py --simulate [--models resnet50 googlenet mobilenet_v2 densenet121]

Heavy load (--heavy-load, DADS's light/heavy load): requests arrive as a Poisson process at
--rates times what the latency-optimal plan serves one at a time; ts.StreamDeployment serves them
with the switch ("auto"), beside staying on the latency plan and staying on the throughput plan,
interleaved, --repeats times. Everything waits for real (Sleep emulation): the device's compute x
--device-slowdown, the link (constant --bandwidth, rtt/2 per message), the server in another
process at this machine's speed. Reports the measured served throughput (steady: the completions
after the first quarter over their span), the throughput plan's prediction for the same requests
(min(their arrival rate, the plan's predicted fps)), the ratio per run, and the ratio to staying on
the latency plan; a plot of served vs offered load per model.

    .venv/bin/python bench/bench_adaptive.py --heavy-load [--models resnet18 googlenet mobilenet_v2]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import experiment  # noqa: E402
from tessera.runtime import spawn_server, stop_server  # noqa: E402

from common import RESULTS, smoke, table, trace_files, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCALES = {"unscaled": None, "3G": 1.1, "4G": 5.85, "WiFi": 18.88, "breakpoint": "breakpoint"}
DEFAULT_SCALES = ["unscaled", "3G", "4G", "WiFi"]


def breakpoint_mbps(m, costs, rtt_ms):
    """The bandwidth where the model's optimal plan changes most (the largest change in the
    number of atoms on the device), from the parametric table of its cost model."""
    from tessera.plan import ParametricPlanner
    table = ParametricPlanner(m, costs, rtt_ms=rtt_ms)
    best, where = -1, None
    for b in table.breakpoints():
        if not 0.05 < b < 200:
            continue
        moved = abs(table.lookup_placement(b / 1.01).count(0) - table.lookup_placement(b * 1.01).count(0))
        if moved > best:
            best, where = moved, b
    return where


def main_breakpoints(m, costs, rtt_ms, k=2):
    """The k bandwidths (0.05-200 Mbit/s) where the model's optimal plan moves the most atoms."""
    from tessera.plan import ParametricPlanner
    table = ParametricPlanner(m, costs, rtt_ms=rtt_ms)
    moves = []
    for b in table.breakpoints():
        if 0.05 < b < 200:
            moved = abs(table.lookup_placement(b / 1.01).count(0) - table.lookup_placement(b * 1.01).count(0))
            moves.append((moved, b))
    return sorted(b for _, b in sorted(moves, reverse=True)[:k])


def simulated(args, tdir):
    """--simulate: every policy on every trace x breakpoint scaling, on the cost model alone."""
    from tessera import zoo
    from tessera import profile
    ts.set_threads(1)  # OpenMP and OpenBLAS
    traces = trace_files(tdir, args.per_set)
    rows, cases, live_cases = [], [], []
    t_start = time.perf_counter()
    for name in args.models:
        path, xs = zoo.torchscript(name)
        m = ts.load(str(path), xs)
        ct = profile(m, xs, threads=1, repeats=5, warmup=2, settle=0.2)
        costs = experiment.costs_from_profile(ct, args.device_slowdown)
        bps = main_breakpoints(m, costs, args.rtt)
        for sub, f in traces:
            samples = ts.read_trace(f)
            window = [bw for t, bw in samples if t < args.requests * args.period] or [samples[0][1]]
            med = statistics.median(window)
            for i, bp in enumerate(bps):
                link = {"trace": samples, "scale": bp / max(med, 1e-3), "rtt_ms": args.rtt}
                cases.append((m, costs, link))
                live_cases.append((name, m, xs, costs, link, f"{sub}/{f.name[:28]}", bp))
                runs = experiment.simulate(m, costs, link, requests=args.requests, period_s=args.period,
                                           rtt_ms=args.rtt, seed=args.seed,
                                           policies=experiment.POLICIES + ("oracle_prev",))
                best_static = min(runs[k].mean for k in ("device_only", "server_only", "static"))
                a, o = runs["adaptive"], runs["oracle"]
                gain = best_static - o.mean
                rows.append({"model": name, "trace": f"{sub}/{f.name[:28]}", "breakpoint": f"{bp:.2f}",
                             **{k: f"{r.mean:.1f}" for k, r in runs.items()},
                             "oracle_gain": f"{gain / best_static:.3f}",
                             "captured": f"{(best_static - a.mean) / gain:.2f}" if gain > 0 else "-",
                             "oracle_prev_captured": (f"{(best_static - runs['oracle_prev'].mean) / gain:.2f}"
                                                      if gain > 0 else "-"),
                             "adaptive/best_static": f"{a.mean / best_static:.3f}",
                             "adaptive/oracle": f"{a.mean / o.mean:.3f}",
                             "chain/best_static": f"{runs['chain'].mean / best_static:.3f}"})
    elapsed = time.perf_counter() - t_start
    print(f"simulated: {len(rows)} trace runs ({len(traces)} traces x models x 2 breakpoints), {args.requests} "
          f"requests each, 1 per {args.period:g} trace s, device {args.device_slowdown:g}x, rtt {args.rtt:g} ms, "
          f"{elapsed:.0f} s including profiling")
    print(table(rows, list(rows[0])))
    big = [r for r in rows if float(r["oracle_gain"]) >= 0.05]
    s_ratio = [float(r["adaptive/best_static"]) for r in rows]
    if big:
        cap = [float(r["captured"]) for r in big]
        prev = [float(r["oracle_prev_captured"]) for r in big]
        print(f"traces with an oracle gain >= 5% of the best static mean: {len(big)}/{len(rows)}; adaptive captures "
              f"{statistics.fmean(cap):.2f} of the gain on average (median {statistics.median(cap):.2f}); the oracle "
              f"told the previous request's bandwidth (the ceiling of planning on past measurements) "
              f"{statistics.fmean(prev):.2f} (median {statistics.median(prev):.2f})")
    print(f"adaptive <= 1.02 x best static on {sum(x <= 1.02 for x in s_ratio)}/{len(rows)} traces, <= 1.05 on "
          f"{sum(x <= 1.05 for x in s_ratio)}/{len(rows)}; worst {max(s_ratio):.3f}")
    print("wrote", write_csv("bench_adaptive_simulated", rows))
    if not smoke():
        plot_simulated(rows)
    if args.sweep:
        sweep(args, cases)
    if args.live > 0:
        live_check(args, live_cases, rows)


def plot_simulated(rows):
    """The distribution over traces of each policy's mean latency over the best static plan's."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 3.8))
    for k in ("oracle", "adaptive", "oracle_prev", "chain"):
        v = sorted(float(r[k]) / min(float(r[x]) for x in ("device_only", "server_only", "static")) for r in rows)
        ax.plot(v, [(i + 1) / len(v) for i in range(len(v))], label=k)
    ax.axvline(1.02, color="grey", ls=":", lw=1)
    ax.set_xlim(0.6, 1.3)
    ax.set_xlabel("mean latency / best static plan's")
    ax.set_ylabel("share of trace runs")
    ax.set_title(f"simulated, {len(rows)} trace runs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "bench_adaptive_simulated.png", dpi=110)
    print("wrote", RESULTS / "bench_adaptive_simulated.png")


def live_check(args, live_cases, rows):
    """--live N: the N simulated trace runs with the largest oracle gain replayed for real (server
    in another process, real compute and transfers, link accounted), adaptive/oracle side by side."""
    order = sorted(range(len(rows)), key=lambda i: -float(rows[i]["oracle_gain"]))[:args.live]
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in {live_cases[i][0] for i in order}:
            m = next(c[1] for c in live_cases if c[0] == name)
            m.save(Path(tmp) / name)
        proc, endpoint = spawn_server(tmp)
        try:
            for i in order:
                name, m, xs, costs, link, trace, bp = live_cases[i]
                live = experiment.replay(m, xs, costs, endpoint, link, requests=args.requests, period_s=args.period,
                                         device_slowdown=args.device_slowdown)
                sim = rows[i]
                s_ratio = float(sim["adaptive/oracle"])
                l_ratio = live["adaptive"].mean / live["oracle"].mean
                out.append({"model": name, "trace": trace, "breakpoint": f"{bp:.2f}",
                            "oracle_gain_sim": sim["oracle_gain"], "adaptive/oracle_sim": f"{s_ratio:.3f}",
                            "adaptive/oracle_live": f"{l_ratio:.3f}", "live/sim": f"{l_ratio / s_ratio:.3f}",
                            "oracle_live_ms": f"{live['oracle'].mean:.1f}", "oracle_sim_ms": sim["oracle"]})
                print(json.dumps(out[-1]), flush=True)
        finally:
            stop_server(proc)
    print(f"\nlive check: {len(out)} of the simulated runs with the largest oracle gain replayed for real "
          f"(loopback server, device {args.device_slowdown:g}x accounted, link accounted)")
    print(table(out, list(out[0])))
    agree = [abs(float(r["live/sim"]) - 1) <= 0.05 for r in out]
    live_r = [float(r["adaptive/oracle_live"]) for r in out]
    print(f"adaptive/oracle live vs simulated within 5% on {sum(agree)}/{len(out)}; live adaptive/oracle mean "
          f"{statistics.fmean(live_r):.3f}")
    print("wrote", write_csv("bench_adaptive_live_check", out))


def sweep(args, cases):
    """--sweep: the adaptive policy with every estimator x hysteresis on the same simulated cases,
    beside the oracle and oracle_prev (the ceiling of planning on past measurements)."""
    base = []
    for m, costs, link in cases:
        runs = experiment.simulate(m, costs, link, requests=args.requests, period_s=args.period, rtt_ms=args.rtt,
                                   seed=args.seed, policies=("device_only", "server_only", "static", "oracle",
                                                             "oracle_prev"))
        base.append((min(runs[k].mean for k in ("device_only", "server_only", "static")), runs["oracle"].mean,
                     runs["oracle_prev"].mean))
    rows = []

    def row(label, means):
        cap, ratio = [], []
        for (bs, o, _), a in zip(base, means):
            ratio.append(a / bs)
            if bs - o >= 0.05 * bs:
                cap.append((bs - a) / (bs - o))
        rows.append({"policy": label, "captured_median": f"{statistics.median(cap):.2f}" if cap else "-",
                     "traces_with_gain": len(cap),
                     "geomean_x_best_static": f"{math.exp(statistics.fmean(math.log(r) for r in ratio)):.3f}",
                     "<=1.02": f"{sum(r <= 1.02 for r in ratio)}/{len(ratio)}",
                     "<=1.05": f"{sum(r <= 1.05 for r in ratio)}/{len(ratio)}", "worst": f"{max(ratio):.2f}"})

    row("oracle", [b[1] for b in base])
    row("oracle_prev", [b[2] for b in base])
    # each estimator x hysteresis on clean samples and with outliers (a share of samples that look
    # 50x faster, as loopback-fast exchanges do live): the default must hold up under both
    for outliers in (0.0, args.outliers):
        for est in ("median", "harmonic", "ewma", "kalman"):
            for h in (0.1, 0.2, 0.4):
                means = [experiment.simulate(m, costs, link, requests=args.requests, period_s=args.period,
                                             rtt_ms=args.rtt, seed=args.seed, policies=("adaptive",), estimator=est,
                                             hysteresis=h, outlier_rate=outliers)["adaptive"].mean
                         for m, costs, link in cases]
                row(f"adaptive {est} h={h}" + (f" outliers {outliers:g}" if outliers else ""), means)
        if not args.outliers:
            break
    print(f"\nestimators x hysteresis, simulated on the same {len(cases)} trace runs (clean, then with "
          f"{args.outliers:g} of the samples 50x too fast):")
    print(table(rows, list(rows[0])))
    print("wrote", write_csv("bench_adaptive_sweep", rows))


def reaction_requests(adaptive, oracle):
    """Requests from each change of the oracle's plan to the first request where adaptive matches it."""
    out = []
    o, a = oracle.device_atoms, adaptive.device_atoms
    for i in range(1, len(o)):
        if o[i] != o[i - 1]:
            for j in range(i, len(o)):
                if a[j] == o[i]:
                    out.append(j - i)
                    break
                if o[j] != o[i]:
                    break
    return out


def heavy_load(args):
    """--heavy-load: measured served throughput with the light/heavy-load switch at arrival rates
    above what the latency plan serves, beside the two fixed plans (all waits real: Sleep)."""
    from tessera import zoo
    from tessera import profile
    from common import quantiles
    ts.set_threads(1)
    rows, curves = [], {}
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        loaded = {}
        for name in args.models:
            path, xs = zoo.torchscript(name)
            m = ts.load(str(path), xs)
            m.save(Path(tmp) / name)
            ct = profile(m, xs, threads=1, repeats=5, warmup=2, settle=0.2)
            loaded[name] = (m, xs, experiment.costs_from_profile(ct, args.device_slowdown))
        proc, endpoint = spawn_server(tmp, extra=("--workers", "1"))
        try:
            for name, (m, xs, costs) in loaded.items():
                deps = {pol: ts.StreamDeployment(m, costs, server=endpoint, bandwidth_mbps=args.bandwidth,
                                                 rtt_ms=args.rtt, device_slowdown=args.device_slowdown,
                                                 in_flight=args.in_flight, policy=pol, timeout_ms=60000)
                        for pol in ("latency", "throughput", "auto")}
                st0 = deps["auto"].stats()
                thr_plan = deps["auto"].throughput_plan
                lat_fps, thr_fps = st0.latency_plan_fps, st0.throughput_plan_fps
                for d in deps.values():  # first use loads the atoms on both sides
                    d.serve([xs] * 2, [0.0, 0.0])
                for mult in args.rates:
                    rate = mult * lat_fps
                    got = {pol: {k: [] for k in ("steady", "served", "p50", "switches", "arrival", "predicted", "ratio")}
                           for pol in deps}
                    for rep in range(args.repeats):
                        arrivals = ts.poisson_arrivals(rate, args.requests, seed=1000 * rep + 7)
                        for pol, d in deps.items():  # interleaved: the machine's drift touches all three alike
                            ys = d.serve([xs] * args.requests, arrivals)
                            ref = m.run_flat(xs)[0]
                            y0 = ys[0] if isinstance(ys[0], torch.Tensor) else ys[0][0]
                            if not torch.allclose(y0, ref, rtol=1e-4, atol=1e-5):
                                raise SystemExit(f"{name}: a {pol} output differs from the whole model's")
                            s = d.stats()
                            if s.fallbacks:
                                print(f"warning: {name} {pol}: {s.fallbacks} fallbacks", flush=True)
                            # the prediction over the same requests as the steady figure: the arrival rate of
                            # the requests after the first quarter, capped by the throughput plan's rate
                            arr = sorted(r["arrival_s"] for r in d.records)
                            q = len(arr) // 4
                            window = (len(arr) - 1 - q) / (arr[-1] - arr[q]) if arr[-1] > arr[q] else float("inf")
                            for k, v in (("steady", s.steady_fps), ("served", s.served_fps), ("p50", s.latency_ms_p50),
                                         ("switches", s.switches), ("arrival", s.arrival_fps),
                                         ("predicted", min(window, thr_fps)),
                                         ("ratio", s.steady_fps / min(window, thr_fps))):
                                got[pol][k].append(v)
                    arrival = statistics.median(got["auto"]["arrival"])
                    predicted = statistics.median(got["auto"]["predicted"])
                    med = {pol: quantiles(g["steady"]) for pol, g in got.items()}
                    row = {"model": name, "offered_x": f"{mult:g}", "arrival_fps": f"{arrival:.2f}",
                           "latency_plan_fps": f"{lat_fps:.2f}", "throughput_plan_fps": f"{thr_fps:.2f}",
                           "predicted_fps": f"{predicted:.2f}"}
                    for pol in deps:
                        m_, q1, q3 = med[pol]
                        row[f"{pol}_fps"] = f"{m_:.2f} [{q1:.2f}, {q3:.2f}]"
                        row[f"{pol}_p50_ms"] = f"{statistics.median(got[pol]['p50']):.0f}"
                    r_med, r_q1, r_q3 = quantiles(got["auto"]["ratio"])
                    row["auto/predicted"] = f"{r_med:.3f} [{r_q1:.3f}, {r_q3:.3f}]"
                    row["auto/throughput_only"] = f"{med['auto'][0] / med['throughput'][0]:.3f}"  # the ceiling: no switch
                    row["auto/latency_plan"] = f"{med['auto'][0] / med['latency'][0]:.2f}"
                    row["switches"] = f"{statistics.median(got['auto']['switches']):.0f}"
                    rows.append(row)
                    curves.setdefault(name, []).append((arrival, {p: med[p][0] for p in deps}, predicted))
                    print(json.dumps(row), flush=True)
                print(f"{name}: throughput plan {[(('device', 'server')[s.node], len(s.atoms)) for s in thr_plan.stages]}, bottleneck "
                      f"{thr_plan.bottleneck}", flush=True)
        finally:
            stop_server(proc)
    print(f"\nheavy load: {len(rows)} rows in {time.perf_counter() - t_start:.0f} s; Poisson arrivals at the offered "
          f"multiple of the latency plan's predicted rate, {args.requests} requests x {args.repeats} repeats per "
          f"policy, interleaved; device {args.device_slowdown:g}x slower (slept), link {args.bandwidth:g} Mbit/s + "
          f"rtt {args.rtt:g} ms (slept), server in another process (1 worker, 1 thread), in_flight {args.in_flight}; "
          f"fps = steady served throughput, median [q1, q3]")
    print(table(rows, list(rows[0])))
    ok = [abs(float(r["auto/predicted"].split()[0]) - 1) <= 0.10 for r in rows]
    above = [float(r["auto/latency_plan"]) > 1 for r in rows]
    ceil = [abs(float(r["auto/throughput_only"]) - 1) <= 0.10 for r in rows]
    print(f"served with the switch within 10% of the throughput plan's prediction on {sum(ok)}/{len(rows)}, within 10% "
          f"of the throughput plan run alone (the ceiling: measured, no switching) on {sum(ceil)}/{len(rows)}; above "
          f"staying on the latency plan on {sum(above)}/{len(rows)}")
    print("wrote", write_csv("bench_adaptive_heavy_load", rows))
    if not smoke():
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.6), squeeze=False)
            for ax, (name, pts) in zip(axes[0], curves.items()):
                xs_ = [p[0] for p in pts]
                for pol, mk in (("latency", "o"), ("throughput", "s"), ("auto", "^")):
                    ax.plot(xs_, [p[1][pol] for p in pts], marker=mk, label=pol)
                ax.plot(xs_, [p[2] for p in pts], "k--", label="predicted (switch)")
                ax.set_title(name)
                ax.set_xlabel("offered load (requests/s)")
                ax.set_ylabel("served (requests/s)")
                ax.legend(fontsize=8)
            fig.tight_layout()
            RESULTS.mkdir(exist_ok=True)
            fig.savefig(RESULTS / "bench_adaptive_heavy_load.png", dpi=110)
            print("wrote", RESULTS / "bench_adaptive_heavy_load.png")
        except ImportError:
            pass


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--models", nargs="+", default=["resnet50", "googlenet"])
    ap.add_argument("--per-set", type=int, default=5, help="traces per set (norway-hsdpa, fcc)")
    ap.add_argument("--requests", type=int, default=20)
    ap.add_argument("--period", type=float, default=3.0, help="trace seconds between requests")
    ap.add_argument("--scales", nargs="+", default=DEFAULT_SCALES, choices=list(SCALES),
                    help="trace scalings: unscaled, DADS's 3G / 4G / WiFi medians, and breakpoint (median at the "
                         "bandwidth where the model's optimal plan changes most: where adaptation matters)")
    ap.add_argument("--device-slowdown", type=float, default=10.0)
    ap.add_argument("--rtt", type=float, default=20.0)
    ap.add_argument("--simulate", action="store_true", help="policies over the cost model, no execution (see above)")
    ap.add_argument("--seed", type=int, default=1, help="--simulate: seed of the injected noise (none by default)")
    ap.add_argument("--sweep", action="store_true", help="--simulate: also every estimator x hysteresis")
    ap.add_argument("--outliers", type=float, default=0.02,
                    help="--sweep: also with this share of bandwidth samples 50x too fast (0: clean only)")
    ap.add_argument("--live", type=int, default=0, metavar="N",
                    help="--simulate: replay the N runs with the largest oracle gain for real, beside the simulation")
    ap.add_argument("--heavy-load", action="store_true", help="served throughput under arrival rates above what "
                    "the latency plan serves, with the light/heavy-load switch (see above)")
    ap.add_argument("--rates", nargs="+", type=float, default=[1.5, 3.0],
                    help="--heavy-load: arrival rates as multiples of the latency plan's rate")
    ap.add_argument("--bandwidth", type=float, default=18.88, help="--heavy-load: constant link, Mbit/s")
    ap.add_argument("--in-flight", type=int, default=4, help="--heavy-load: requests in flight on the pipeline")
    ap.add_argument("--repeats", type=int, default=3, help="--heavy-load: repeats of each policy x rate")
    args = ap.parse_args(argv)
    if smoke():
        args.models, args.per_set, args.requests, args.scales = ["squeezenet1_0"], 1, 6, ["4G"]
        args.repeats, args.rates = 1, [3.0]
    if args.heavy_load:
        if argv is None and "--models" not in sys.argv and not smoke():
            args.models = ["resnet18", "googlenet", "mobilenet_v2"]
        if "--requests" not in (argv or sys.argv[1:]) and not smoke():
            args.requests = 40
        return heavy_load(args)
    tdir = Path(args.traces_dir)
    if not tdir.is_dir():
        raise SystemExit(f"no trace directory {tdir}: pass --traces-dir")
    if args.simulate:
        return simulated(args, tdir)
    traces = trace_files(tdir, args.per_set)
    ts.set_threads(1)  # OpenMP and OpenBLAS
    rows, detail = [], []
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        loaded = experiment.prepare(args.models, tmp, args.device_slowdown)
        proc, endpoint = spawn_server(tmp)
        try:
            for name, (m, xs, costs) in loaded.items():
                for sub, f in traces:
                    samples = ts.read_trace(f)
                    window = [bw for t, bw in samples if t < args.requests * args.period] or [samples[0][1]]
                    med = statistics.median(window)
                    for scale_name in args.scales:
                        target = SCALES[scale_name]
                        if target == "breakpoint":
                            target = breakpoint_mbps(m, costs, args.rtt)
                            if target is None:
                                continue
                        scale = 1.0 if target is None else target / max(med, 1e-3)
                        link = {"trace": samples, "scale": scale, "rtt_ms": args.rtt}
                        runs = experiment.replay(m, xs, costs, endpoint, link, requests=args.requests,
                                                 period_s=args.period, device_slowdown=args.device_slowdown)
                        best_static = min(runs[k].mean for k in ("device_only", "server_only", "static"))
                        a, o = runs["adaptive"], runs["oracle"]
                        react = reaction_requests(a, o)
                        row = {"model": name, "trace": f"{sub}/{f.name[:28]}", "scale": scale_name,
                               "median_Mbit/s": f"{med * scale:.2f}"}
                        for k, r in runs.items():
                            row[k] = f"{r.mean:.0f}"
                        row["adaptive_p95"] = f"{a.p95:.0f}"
                        row["oracle_p95"] = f"{o.p95:.0f}"
                        row["adaptive/oracle"] = f"{a.mean / o.mean:.3f}"
                        row["adaptive/best_static"] = f"{a.mean / best_static:.3f}"
                        row["react_req"] = f"{statistics.median(react):.0f}" if react else "-"
                        rows.append(row)
                        detail.append({"model": name, "trace": str(f), "scale": scale, **{
                            k: {"latency_ms": r.latency_ms, "device_atoms": r.device_atoms,
                                "est_bandwidth": r.est_bandwidth, "true_bandwidth": r.true_bandwidth,
                                "decide_us": r.decide_us} for k, r in runs.items()}})
                        print(json.dumps(row), flush=True)
        finally:
            stop_server(proc)
    print(f"\n{len(rows)} trace runs in {time.perf_counter() - t_start:.0f} s; mean latency in ms per policy; "
          f"device {args.device_slowdown:g}x slower than this machine (accounted), link emulated in the transport "
          f"(account mode), rtt {args.rtt:g} ms, 1 request per {args.period:g} trace seconds, {args.requests} requests per "
          f"trace, policies interleaved request by request")
    print(table(rows, list(rows[0])))
    ratios_o = [float(r["adaptive/oracle"]) for r in rows]
    ratios_s = [float(r["adaptive/best_static"]) for r in rows]
    print(f"adaptive/oracle: worst {max(ratios_o):.3f}, mean {statistics.fmean(ratios_o):.3f}; "
          f"within 10% on {sum(x <= 1.10 for x in ratios_o)}/{len(rows)}")
    print(f"adaptive/best static: worst {max(ratios_s):.3f}, mean {statistics.fmean(ratios_s):.3f}; "
          f"<= 1.02 on {sum(x <= 1.02 for x in ratios_s)}/{len(rows)}")
    print("wrote", write_csv("bench_adaptive", rows))
    RESULTS.mkdir(exist_ok=True)
    if not smoke():
        (RESULTS / "bench_adaptive_detail.json").write_text(json.dumps(detail))


if __name__ == "__main__":
    main()
