"""Energy-aware splitting: CutEdge's Lyapunov controller against static policies and an offline oracle.

For each model (profiled here, 1 thread; the device = --device-slowdown x this machine at its highest
frequency, the server = this machine), each sample power profile (tessera/data/*.xml: a big.LITTLE
phone on Wi-Fi, an LTE phone with five transmit levels), each trace (--per-set of the norway-hsdpa and
FCC sets in ../shared/traces, scaled so their median is DADS's 3G / 4G / WiFi uplink) and one request per
--period trace seconds for --requests requests:

- device-only at each frequency, server-only at max transmit power, the min-latency min-cut plan and the
  min-energy static plan (both planned at the trace's mean bandwidth, priced at each request's);
- the controller at V in --V (per request the split, frequency and transmit power minimising
  V x latency + Q x energy; Q the virtual energy queue) under a budget halfway between the mean energy of
  the per-request least-energy and fastest plans (which every case can meet: the least-energy plans do);
- the offline oracle that knows the whole trace, at each controller point's realised mean energy (the
  Lagrangian relaxation over each request's (energy, latency) hull): the best mean latency any policy
  could have had with that energy.

Everything is the cost and power model (no execution): the frequencies and transmit powers are emulated
by the model, nothing changes this machine's clock. Reports the controller's energy against the budget
(horizon = --requests requests), its latency against the oracle's per V, the decision time per request on
each model, table + CSV + trade-off plot (energy against latency and throughput, one point per V) + queue plot.

    .venv/bin/python bench/bench_energy.py [--models resnet50 googlenet mobilenet_v2] [--per-set 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402

from common import RESULTS, quantiles, smoke, table, trace_files, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCALES = {"3G": 1.1, "4G": 5.85, "WiFi": 18.88}


def static_row(m, cm, power, placement, frequency_mhz, tx_power_mw, bws, rtt):
    es = [ts.energy(m, placement, power, costs=cm, frequency_mhz=frequency_mhz, tx_power_mw=tx_power_mw,
                    bandwidth_mbps=b, rtt_ms=rtt) for b in bws]
    return (statistics.fmean(e["total_mj"] for e in es), statistics.fmean(e["latency_ms"] for e in es),
            len(es) / sum(1.0 / e["throughput_fps"] for e in es))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "mobilenet_v2"])
    ap.add_argument("--profiles", nargs="+", default=list(ts.power.SAMPLE_PROFILES))
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--per-set", type=int, default=5)
    ap.add_argument("--scales", nargs="+", default=list(SCALES), choices=list(SCALES))
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--period", type=float, default=1.0)
    ap.add_argument("--V", nargs="+", type=float, default=[1, 10, 100, 1000])
    ap.add_argument("--device-slowdown", type=float, default=10.0)
    ap.add_argument("--rtt", type=float, default=20.0)
    args = ap.parse_args(argv)
    if smoke():
        args.models, args.per_set, args.scales, args.requests = ["squeezenet1_0"], 1, ["4G"], 20
    tdir = Path(args.traces_dir)
    if not tdir.is_dir():
        raise SystemExit(f"no trace directory {tdir}: pass --traces-dir")
    from tessera import zoo
    ts.set_threads(1)
    traces = trace_files(tdir, args.per_set)
    rows, curves, queues, decide_us, showcase = [], {}, {}, {}, {}
    t_start = time.perf_counter()
    for name in args.models:
        path, xs = zoo.torchscript(name)
        m = ts.load(str(path), xs)
        ct = ts.profile(m, xs, threads=1, repeats=5, warmup=2)
        costs = {"device": [args.device_slowdown * c for c in ct.atom_ms], "server": list(ct.atom_ms)}
        cm = ts.make_cost_model(m, costs)
        n = m.num_atoms
        for prof in args.profiles:
            power = ts.PowerModel.from_android_profile(ts.sample_profile(prof))
            ctl0 = ts.EnergyController(m, cm, power, budget_mj=1e9, V=10)
            samples = []
            for bw in (1.1, 5.85, 18.88) * 10:
                t0 = time.perf_counter()
                ctl0.decide(bw, args.rtt)
                samples.append((time.perf_counter() - t0) * 1e6)
            decide_us[(name, prof)] = quantiles(samples)
            for sub, f in traces:
                samples_tr = ts.read_trace(f)
                window = [b for t, b in samples_tr if t < args.requests * args.period] or [samples_tr[0][1]]
                med = statistics.median(window)
                for sc in args.scales:
                    link = ts.Link(trace=samples_tr, scale=SCALES[sc] / max(med, 1e-3))
                    bws = [link.bandwidth_at(i * args.period) for i in range(args.requests)]
                    mean_bw = statistics.fmean(bws)
                    hulls = [ts.power.energy_hull(m, cm, power, b, args.rtt) for b in bws]
                    fast_e = statistics.fmean(h[0].parts.total_mj for h in hulls)
                    frugal_e = statistics.fmean(h[-1].parts.total_mj for h in hulls)
                    budget = (fast_e + frugal_e) / 2
                    case = {"model": name, "profile": prof, "trace": f"{sub}/{f.name[:24]}", "scale": sc,
                            "budget_mj": f"{budget:.1f}"}
                    pts = []
                    for fq in power.freqs_mhz:
                        e, lat, fps = static_row(m, cm, power, [0] * n, fq, 0, bws, args.rtt)
                        rows.append({**case, "policy": f"device@{fq:g}", "energy_mj": f"{e:.1f}",
                                     "latency_ms": f"{lat:.1f}", "fps": f"{fps:.2f}"})
                        pts.append(("device", fq, e, lat))
                    e, lat, fps = static_row(m, cm, power, [1] * n, 0, 0, bws, args.rtt)
                    rows.append({**case, "policy": "server", "energy_mj": f"{e:.1f}", "latency_ms": f"{lat:.1f}",
                                 "fps": f"{fps:.2f}"})
                    for label, (lw, ew) in (("min_latency", (1, 0)), ("min_energy", (1e-9, 1))):
                        d = ts.plan_energy(m, cm, power, mean_bw, args.rtt, latency_weight=lw, energy_weight=ew)
                        e, lat, fps = static_row(m, cm, power, list(d.placement), d.op.frequency_mhz,
                                                 d.op.tx_power_mw, bws, args.rtt)
                        rows.append({**case, "policy": label, "energy_mj": f"{e:.1f}", "latency_ms": f"{lat:.1f}",
                                     "fps": f"{fps:.2f}"})
                    for v in args.V:
                        recs = ts.EnergyController(m, cm, power, budget_mj=budget, V=v).run(bws, args.rtt)
                        e = statistics.fmean(r["total_mj"] for r in recs)
                        lat = statistics.fmean(r["latency_ms"] for r in recs)
                        fps = len(recs) / sum(1.0 / r["throughput_fps"] for r in recs)
                        ods, _ = ts.power.energy_oracle_from_hulls(hulls, e * (1 + 1e-9))
                        o_lat = statistics.fmean(d.parts.latency_ms for d in ods)
                        rows.append({**case, "policy": f"controller V={v:g}", "energy_mj": f"{e:.1f}",
                                     "latency_ms": f"{lat:.1f}", "fps": f"{fps:.2f}",
                                     "energy/budget": f"{e / budget:.3f}", "latency/oracle": f"{lat / o_lat:.3f}",
                                     "queue_max": f"{max(r['queue'] for r in recs):.0f}"})
                        curves.setdefault((name, prof), []).append((v, e / budget, lat / o_lat, e, lat, fps))
                        if sc == "4G" and sub == "norway-hsdpa" and (name, prof, v) not in queues:
                            queues[(name, prof, v)] = [r["queue"] for r in recs]
                    key = (name, prof)
                    if sc == "4G" and sub == "norway-hsdpa" and key not in showcase:
                        # one case per model and profile for the trade-off figure: the controller at
                        # every V under budgets from the least energy to the fastest, and the oracle
                        pts = []
                        for frac in (0.1, 0.3, 0.5, 0.7, 0.9):
                            b = frugal_e + frac * (fast_e - frugal_e)
                            for v in args.V:
                                recs = ts.EnergyController(m, cm, power, budget_mj=b, V=v).run(bws, args.rtt)
                                pts.append((v, statistics.fmean(r["total_mj"] for r in recs),
                                            statistics.fmean(r["latency_ms"] for r in recs),
                                            len(recs) / sum(1.0 / r["throughput_fps"] for r in recs)))
                        oracle = []
                        for frac in [i / 20 for i in range(21)]:
                            ods, _ = ts.power.energy_oracle_from_hulls(hulls, frugal_e + frac * (fast_e - frugal_e))
                            oracle.append((statistics.fmean(d.parts.total_mj for d in ods),
                                           statistics.fmean(d.parts.latency_ms for d in ods),
                                           len(ods) / sum(1.0 / d.parts.throughput_fps for d in ods)))
                        showcase[key] = (f"{sub}/{f.name[:24]}", pts, oracle)
                print(f"{name} {prof} {sub}/{f.name[:24]}: {len(args.scales)} scalings done "
                      f"({time.perf_counter() - t_start:.0f} s)", flush=True)
    elapsed = time.perf_counter() - t_start
    print(f"\n{len(rows)} rows in {elapsed:.0f} s; cost and power model only (no execution); device "
          f"{args.device_slowdown:g}x this machine at its top frequency, server = this machine (1 thread); rtt "
          f"{args.rtt:g} ms; {args.requests} requests per trace, 1 per {args.period:g} trace s; budget halfway "
          f"between the per-request least-energy and fastest plans' mean energy")
    ctl_rows = [r for r in rows if r["policy"].startswith("controller")]
    summary = []
    for v in args.V:
        sel = [r for r in ctl_rows if r["policy"] == f"controller V={v:g}"]
        eb = [float(r["energy/budget"]) for r in sel]
        lo = [float(r["latency/oracle"]) for r in sel]
        q = quantiles(lo)
        summary.append({"V": f"{v:g}", "cases": len(sel), "energy<=1.02xbudget": f"{sum(x <= 1.02 for x in eb)}",
                        "energy/budget max": f"{max(eb):.3f}", "energy/budget median": f"{statistics.median(eb):.3f}",
                        "latency/oracle median [q1,q3]": f"{q[0]:.3f} [{q[1]:.3f}, {q[2]:.3f}]",
                        "latency/oracle mean": f"{statistics.fmean(lo):.3f}",
                        "<=1.05 of oracle": f"{sum(x <= 1.05 for x in lo)}"})
    print(table(summary, list(summary[0])))
    # every policy beside the budget and the fastest controller, case by case
    by_case = {}
    for r in rows:
        by_case.setdefault((r["model"], r["profile"], r["trace"], r["scale"]), {})[r["policy"]] = r
    top = f"controller V={args.V[-1]:g}"
    pol_rows = []
    for pol in dict.fromkeys(r["policy"] for r in rows):
        eb, lr = [], []
        for case in by_case.values():
            if pol in case and top in case:
                eb.append(float(case[pol]["energy_mj"]) / float(case[pol]["budget_mj"]))
                lr.append(float(case[pol]["latency_ms"]) / float(case[top]["latency_ms"]))
        if not eb:
            continue
        pol_rows.append({"policy": pol, "cases": len(eb), "within budget (<=1.02)": sum(x <= 1.02 for x in eb),
                         "energy/budget median": f"{statistics.median(eb):.3f}",
                         f"latency / {top} median": f"{statistics.median(lr):.3f}"})
    print("every policy (device@f: all on the device at that clock; server: all on the server at full power; "
          "min_latency / min_energy: static plans made at the trace's mean bandwidth):")
    print(table(pol_rows, list(pol_rows[0])))
    print("decision time per request (us, median [q1, q3]; 1 thread, every frequency x transmit level):")
    for (name, prof), (med, q1, q3) in decide_us.items():
        print(f"  {name} {prof}: {med:.0f} [{q1:.0f}, {q3:.0f}]")
    keys = list(dict.fromkeys(k for r in rows for k in r))
    print("wrote", write_csv("bench_energy", [{k: r.get(k, "") for k in keys} for r in rows]))
    if not smoke():
        plot(showcase, queues, args)


def plot(showcase, queues, args):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    keys = sorted(showcase)
    fig, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys), 6.4), squeeze=False)
    for j, key in enumerate(keys):
        trace, pts, oracle = showcase[key]
        for row, (idx, label) in enumerate(((2, "mean latency (ms)"), (3, "throughput (requests/s)"))):
            ax = axes[row][j]
            ax.plot([o[0] for o in oracle], [o[idx - 1] for o in oracle], "k--", lw=1, label="oracle")
            for v in args.V:
                sel = sorted((p for p in pts if p[0] == v), key=lambda p: p[1])
                ax.plot([p[1] for p in sel], [p[idx] for p in sel], marker="o", ms=3, lw=1, label=f"V={v:g}")
            ax.set_xlabel("mean energy per request (mJ)")
            ax.set_ylabel(label)
            if row == 0:
                ax.set_title(f"{key[0]}, {key[1]}\n{trace} at 4G", fontsize=8)
            ax.legend(fontsize=6)
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / "bench_energy_tradeoff.png", dpi=100)
    print("wrote", RESULTS / "bench_energy_tradeoff.png")
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for (name, prof, v), q in sorted(queues.items()):
        if name == args.models[0] and prof == args.profiles[-1]:
            ax.plot(q, label=f"V={v:g}")
    ax.set_xlabel("request")
    ax.set_ylabel("virtual energy queue Q (mJ)")
    ax.set_title(f"{args.models[0]}, {args.profiles[-1]}, a 4G-scaled 3G trace")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "bench_energy_queue.png", dpi=100)
    print("wrote", RESULTS / "bench_energy_queue.png")


if __name__ == "__main__":
    main()
