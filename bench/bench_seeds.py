"""The seeds' experiments: tessera's figures beside each paper's headline, and where a split pays.

One table per seed: the paper's metric and figure, tessera's figure here in the closest setting,
the baselines the paper compares against, and how the setting differs. A capability tessera does
not have yet prints "not built" (it fills in as the issues land).

Setting (unless a row says otherwise): zoo models with random weights standing in for the
papers' models; the server is this machine (its atoms profiled at 1 intra-op thread, settled on
the machine's reference state); the device is the server x RATIO, the device/server speed ratio
(emulated: the device's costs are the server's x RATIO; 10 = a phone CPU against this CPU, 50-100
= against an edge GPU as the papers measured); links are DADS's classes (3G 1.1, 4G 5.85, WiFi
18.88 Mbit/s) with rtt 20 ms. Latencies and throughputs are the planner's predictions from the
profiled costs (accounted, not run), except where a row says "measured".

A heat map per model (bench/results/bench_seeds_heat_<model>.png) shows over device/server ratio x
bandwidth how much the best split beats the better of the two ends (1.0 = an end is optimal).

    .venv/bin/python bench/bench_seeds.py [--models resnet50 googlenet ...] [--ratios 10 50]
    tessera bench seeds [same arguments]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch  # noqa: E402

import tessera as ts  # noqa: E402
from tessera import zoo  # noqa: E402

from common import RESULTS, smoke, table, timed, write_csv  # noqa: E402

LINKS = {"3G": 1.1, "4G": 5.85, "WiFi": 18.88}  # DADS's link classes, Mbit/s
MODELS = ["alexnet", "vgg16", "resnet50", "googlenet", "mobilenet_v2", "densenet121", "squeezenet1_0"]
NOT_BUILT = "not built"


def profile_models(names, repeats):
    """name -> (Model, inputs, server ms per atom): this machine, 1 thread, settled rounds."""
    out = {}
    for name in names:
        path, xs = zoo.torchscript(name)
        m = ts.load(str(path), xs)
        table_ = ts.profile(m, xs, threads=1, repeats=repeats, warmup=2, settle=0.2, progress=False, label=name)
        out[name] = (m, xs, list(table_.atom_ms))
        print(f"profiled {name}: {m.num_atoms} atoms, {table_.sum_atom_ms:.1f} ms on this machine "
              f"({table_.rounds_discarded} rounds re-run for the machine state)", flush=True)
    return out


def costs(server_ms, ratio):
    return {"device": [ratio * c for c in server_ms], "server": list(server_ms)}


def is_split(placement):
    return 0 < sum(placement) < len(placement)


def ends_and_best(m, c, bw, rtt, algorithm="mincut", objective="latency"):
    """(device-only plan, server-only plan, the planner's plan) at one bandwidth."""
    dev = ts.evaluate(m, c, [0] * m.num_atoms, bw, rtt, objective=objective)
    srv = ts.evaluate(m, c, [1] * m.num_atoms, bw, rtt, objective=objective)
    best = ts.plan(m, c, bandwidth_mbps=bw, rtt_ms=rtt, algorithm=algorithm, objective=objective)
    return dev, srv, best


def whole_model_memory(m, c, rtt):
    """Device memory of running the whole model on the device: parameters + activation peak."""
    p = ts.evaluate(m, c, [0] * m.num_atoms, 10.0, rtt)
    return p.device_memory_bytes + p.device_activation_bytes


def fmt_x(x):
    return f"{x:.2f}x" if x is not None and math.isfinite(x) else "-"


def fmt_pct(x):
    return f"{100 * x:.1f}%" if x is not None else "-"


def where(best):
    """'resnet50 @ 4G, 50x (split: 12 of 170 atoms on the device)' of the cell a maximum came from."""
    if not best:
        return "-"
    plan = f" ({best[4]})" if len(best) > 4 else ""
    return f"{best[1]} @ {best[2]}, {best[3]:g}x{plan}"


def larger(cur, val, *cell):
    """The running maximum (val, *cell): ``cur`` unless ``val`` beats it."""
    return (val, *cell) if cur is None or val > cur[0] else cur


def kind(placement):
    """What a plan does: 'device-only', 'server-only' or 'split: k of n atoms on the device'."""
    k = placement.count(0)
    return "device-only" if k == len(placement) else "server-only" if k == 0 else \
        f"split: {k} of {len(placement)} atoms on the device"


# ---- the seeds -------------------------------------------------------------------------------

def adamec(models, ratios, rtt):
    """AdaMEC: latency reduction against running on the device (up to 62.14%), device memory
    saving against loading the whole model (55.21% on average)."""
    best_red, mem_savings, split_cells, cells = None, [], 0, 0
    for name, (m, _, server_ms) in models.items():
        for ratio in ratios:
            c = costs(server_ms, ratio)
            whole = whole_model_memory(m, c, rtt)
            for link, bw in LINKS.items():
                dev, _, best = ends_and_best(m, c, bw, rtt)
                cells += 1
                best_red = larger(best_red, 1 - best.latency_ms / dev.latency_ms, name, link, ratio,
                                  kind(best.placement))
                if is_split(best.placement):
                    split_cells += 1
                    mem = best.device_memory_bytes + best.device_activation_bytes
                    mem_savings.append(1 - mem / whole)
    mem = statistics.mean(mem_savings) if mem_savings else None
    return [
        {"metric": "latency reduction vs device-only (max)", "paper": "62.14%", "tessera": fmt_pct(best_red[0]),
         "where": where(best_red), "baseline": "device-only",
         "setting": "AdaMEC: phone + edge over WiFi/4G, its own models; here zoo models, DADS links, rtt 20 ms"},
        {"metric": "device memory saving vs whole model (mean over split plans)", "paper": "55.21%",
         "tessera": fmt_pct(mem), "where": f"{len(mem_savings)} split plans of {cells} cells",
         "baseline": "whole model on the device (parameters + activation peak)",
         "setting": "predicted: parameters + peak live activations along the schedule (no runtime buffers)"},
    ]


def probe_memory(store, name, placement, endpoint, requests):
    """In a fresh process: open only the device's atoms of ``placement`` from the store, run the
    plan ``requests`` times (the server's blocks on ``endpoint``), and return the growth of its
    RSS high-water mark over the process with tessera and the inputs loaded (bytes)."""
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--probe", str(store), str(Path(store) / "inputs.pt"), json.dumps(placement),
           endpoint or "-", str(requests)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"memory probe of {name} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _vm(field):
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _probe_main(store, inputs, placement_json, endpoint, requests):  # pragma: no cover - a child process
    import json

    import torch

    placement = json.loads(placement_json)
    xs = tuple(torch.load(inputs))  # saved by the parent: building the model here would raise the high-water mark
    # The high-water mark from here on (ru_maxrss would keep the parent's, copied at fork): reset
    # it to the current RSS (Linux >= 4.0: clear_refs 5), then read VmHWM after the runs.
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _vm("VmRSS")
    m = ts.Model.open(store, atoms=[a for a, t in enumerate(placement) if t == 0])
    dep = ts.Deployment(m, placement, server="" if endpoint == "-" else endpoint, timeout_ms=120000)
    for _ in range(int(requests)):
        dep(xs)
    peak = _vm("VmHWM")
    print(json.dumps({"base_rss": base, "peak_rss": peak, "growth": peak - base,
                      "loaded_atoms": len(m.loaded_atoms()), "loaded_param_bytes": m.loaded_param_bytes()}))


def adamec_measured(models, ratios, rtt, requests=3):
    """AdaMEC's memory, measured: per model, the split plan with the most atoms on the server among
    the seed cells (if any cell splits) beside the whole model, each in a fresh device process."""
    import tempfile

    from tessera.runtime import spawn_server, stop_server

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        picks = {}
        for name, (m, _, server_ms) in models.items():
            for ratio in ratios:
                c = costs(server_ms, ratio)
                for link, bw in LINKS.items():
                    p = ts.plan(m, c, bandwidth_mbps=bw, rtt_ms=rtt)
                    if is_split(p.placement) and (name not in picks or
                                                  p.placement.count(1) > picks[name][0].placement.count(1)):
                        picks[name] = (p, link, ratio, whole_model_memory(m, c, rtt))
        if not picks:
            return rows
        import torch

        for name in picks:
            models[name][0].save(Path(tmp) / name)
            torch.save(list(models[name][1]), Path(tmp) / name / "inputs.pt")
        proc, endpoint = spawn_server(tmp)
        try:
            for name, (p, link, ratio, whole_pred) in picks.items():
                n = len(p.placement)
                whole = probe_memory(Path(tmp) / name, name, [0] * n, "", requests)
                split = probe_memory(Path(tmp) / name, name, list(p.placement), endpoint, requests)
                pred = p.device_memory_bytes + p.device_activation_bytes
                rows.append({"model": name, "cell": f"{link}, {ratio:g}x", "device_atoms": p.placement.count(0),
                             "atoms": n, "predicted_whole_mb": whole_pred / 1e6, "predicted_split_mb": pred / 1e6,
                             "predicted_saving": 1 - pred / whole_pred,
                             "measured_whole_mb": whole["growth"] / 1e6, "measured_split_mb": split["growth"] / 1e6,
                             "measured_saving": 1 - split["growth"] / whole["growth"] if whole["growth"] > 0 else None,
                             "split_loaded_atoms": split["loaded_atoms"]})
        finally:
            stop_server(proc)
    return rows


def dads(models, ratios, rtt):
    """DADS: latency speed-up over edge-only and cloud-only (6.45x / 8.08x, light load);
    throughput under heavy load (8.31x / 14.01x)."""
    lat_dev = lat_srv = thr_dev = thr_srv = chain = None
    for name, (m, _, server_ms) in models.items():
        for ratio in ratios:
            c = costs(server_ms, ratio)
            for link, bw in LINKS.items():
                dev, srv, best = ends_and_best(m, c, bw, rtt)
                cell = (name, link, ratio, kind(best.placement))
                lat_dev = larger(lat_dev, dev.latency_ms / best.latency_ms, *cell)
                lat_srv = larger(lat_srv, srv.latency_ms / best.latency_ms, *cell)
                # DADS's own comparison: Neurosurgeon's best single cut of a chain of layers
                ns = ts.plan(m, c, bandwidth_mbps=bw, rtt_ms=rtt, algorithm="chain")
                chain = larger(chain, ns.latency_ms / best.latency_ms, *cell)
                dev_t, srv_t, thr = ends_and_best(m, c, bw, rtt, algorithm="throughput", objective="throughput")
                tcell = (name, link, ratio, kind(thr.placement))
                thr_dev = larger(thr_dev, thr.throughput_fps / dev_t.throughput_fps, *tcell)
                thr_srv = larger(thr_srv, thr.throughput_fps / srv_t.throughput_fps, *tcell)
    setting = "DADS: edge-cloud, 3G/4G/WiFi; here device-server at the same link classes"
    return [
        {"metric": "latency vs Neurosurgeon's chain cut (max)", "paper": "DAG-aware cuts beat it",
         "tessera": fmt_x(chain[0]), "where": where(chain), "baseline": "Neurosurgeon (best cut of the layer chain)",
         "setting": setting + "; min-cut over the DAG vs one cut of a topological order"},
        {"metric": "latency speed-up vs edge-only = device-only (max, light load)", "paper": "6.45x",
         "tessera": fmt_x(lat_dev[0]), "where": where(lat_dev), "baseline": "device-only", "setting": setting},
        {"metric": "latency speed-up vs cloud-only = server-only (max, light load)", "paper": "8.08x",
         "tessera": fmt_x(lat_srv[0]), "where": where(lat_srv), "baseline": "server-only", "setting": setting},
        {"metric": "throughput vs device-only (max, heavy load, predicted pipelined)", "paper": "8.31x",
         "tessera": fmt_x(thr_dev[0]), "where": where(thr_dev), "baseline": "device-only",
         "setting": setting + "; throughput = 1000 / max(device, link, server stage)"},
        {"metric": "throughput vs server-only (max, heavy load, predicted pipelined)", "paper": "14.01x",
         "tessera": fmt_x(thr_srv[0]), "where": where(thr_srv), "baseline": "server-only", "setting": setting},
        {"metric": "throughput measured under a request stream", "paper": "-", "tessera": NOT_BUILT, "where": "",
         "baseline": "", "setting": "issue 21: served frames/s with device and server stages overlapping"},
    ]


def dads_measured(models, ratios, rtt, requests):
    """DADS's heavy load, measured: frames that all arrive at once, served by the throughput plan
    (device and server stages overlapping, ts.StreamDeployment, up to 4 in flight) against the
    device alone and the latency plan one frame at a time, on the cell whose throughput plan splits
    with the highest predicted gain over device-only. The device is emulated (its compute slept
    to ratio x), the link too (a token bucket at the bandwidth, rtt/2 per message); the server is
    `tessera serve` in another process on loopback, 1 worker."""
    import tempfile

    import torch

    from tessera.runtime import spawn_server, stop_server

    best = None
    for name, (m, _, server_ms) in models.items():
        for ratio in ratios:
            c = costs(server_ms, ratio)
            for link, bw in LINKS.items():
                dev, _, thr = ends_and_best(m, c, bw, rtt, algorithm="throughput", objective="throughput")
                gain = thr.throughput_fps / dev.throughput_fps
                if is_split(thr.placement) and (best is None or gain > best[0]):
                    best = (gain, name, link, ratio)
    if best is None:
        return None
    _, name, link, ratio = best
    m, xs, server_ms = models[name]
    c, bw = costs(server_ms, ratio), LINKS[link]
    with tempfile.TemporaryDirectory() as tmp:
        m.save(Path(tmp) / name)
        proc, endpoint = spawn_server(tmp, extra=("--workers", "1"))
        try:
            out = {"model": name, "cell": f"{link}, {ratio:g}x", "frames": requests}
            ref = m.run_flat(xs)[0]
            for pol in ("throughput", "latency"):
                sd = ts.StreamDeployment(m, c, server=endpoint, bandwidth_mbps=bw, rtt_ms=rtt, device_slowdown=ratio,
                                         in_flight=4, policy=pol, timeout_ms=60000)
                sd.serve([xs] * 2, [0.0, 0.0])  # first use loads the atoms on both sides
                ys = sd.serve([xs] * requests, [0.0] * requests)
                y0 = ys[0] if isinstance(ys[0], torch.Tensor) else ys[0][0]
                assert torch.allclose(y0, ref, rtol=1e-4, atol=1e-5), f"{name}: a {pol} output differs"
                st = sd.stats()
                out[f"{pol}_fps"] = st.served_fps
                out[f"{pol}_predicted_fps"] = st.throughput_plan_fps if pol == "throughput" else st.latency_plan_fps
                out[f"{pol}_fallbacks"] = st.fallbacks
            dep = ts.Deployment(m, [0] * m.num_atoms, device_slowdown=ratio)
            dep.run_flat(xs)
            t0 = time.perf_counter()
            for _ in range(max(2, requests // 2)):
                dep.run_flat(xs)
            out["device_only_fps"] = max(2, requests // 2) / (time.perf_counter() - t0)
            out["device_only_predicted_fps"] = 1000.0 / (ratio * sum(server_ms))
        finally:
            stop_server(proc)
    return out


def _time_us(fn, repeats):
    """Median µs of ``repeats`` calls after one warm-up call."""
    fn()
    return statistics.median(timed(fn) for _ in range(repeats)) * 1e3


def cas(models, ratio, rtt, repeats):
    """CAS / GADS: re-tuning under constraints from the current plan vs a search from scratch
    (2.25x to 221.7x faster; re-tuning in ~10 ms)."""
    speedups, retune = [], []
    for name, (m, _, server_ms) in models.items():
        c = costs(server_ms, ratio)
        planner = ts.Planner(m, c, algorithm="gads").core
        total = sum(m.dag().param_bytes)
        cons = ts.make_constraints({"device_memory_bytes": 0.3 * total})
        bws = list(LINKS.values())
        current = list(planner.plan(ts.make_context(bws[0], rtt), cons, []).placement)
        for i, bw in enumerate(bws[1:], 1):
            ctx = ts.make_context(bw, rtt)
            scratch = _time_us(lambda: planner.plan(ctx, cons, []), repeats)
            tuned = _time_us(lambda: planner.plan(ctx, cons, current), repeats)
            speedups.append((scratch / tuned, name))
            retune.append(tuned / 1e3)
            current = list(planner.plan(ctx, cons, current).placement)
    lo, hi = min(speedups), max(speedups)
    return [
        {"metric": "search time: re-tune from the current plan vs from scratch", "paper": "2.25x-221.7x",
         "tessera": f"{lo[0]:.2f}x-{hi[0]:.2f}x", "where": f"{lo[1]} .. {hi[1]}, ratio {ratio:g}x",
         "baseline": "the same GADS search from no plan", "setting": "device memory budget 30% of the parameters"},
        {"metric": "re-tuning time (median over link changes)", "paper": "~10 ms",
         "tessera": f"{statistics.median(retune):.3f} ms", "where": f"{len(retune)} link changes",
         "baseline": "-", "setting": "C++ planner call, 1 thread, this machine"},
    ]


def cic(models, ratio, rtt, repeats):
    """CIC: decision time (up to 100x faster), latency (up to 2.6x) and throughput (up to 3.3x)."""
    dec, lat, thr = [], None, None
    for name, (m, _, server_ms) in models.items():
        c = costs(server_ms, ratio)
        mincut = ts.Planner(m, c, algorithm="mincut").core
        table_ = ts.ParametricPlanner(m, c, rtt_ms=rtt).core
        for link, bw in LINKS.items():
            ctx = ts.make_context(bw, rtt)
            solve = _time_us(lambda: mincut.plan(ctx), repeats)
            look = _time_us(lambda: table_.lookup_index(bw), repeats * 10)
            dec.append((solve / look, name))
            dev, srv, best = ends_and_best(m, c, bw, rtt)
            lat = larger(lat, min(dev.latency_ms, srv.latency_ms) / best.latency_ms, name, link, ratio,
                         kind(best.placement))
            dt, st, tp = ends_and_best(m, c, bw, rtt, algorithm="throughput", objective="throughput")
            thr = larger(thr, tp.throughput_fps / max(dt.throughput_fps, st.throughput_fps), name, link, ratio,
                         kind(tp.placement))
    hi = max(dec)
    return [
        {"metric": "decision time: precomputed table lookup vs solving min-cut (max)", "paper": "up to 100x",
         "tessera": f"{hi[0]:.0f}x", "where": f"{hi[1]}, median over {repeats} calls (Python call overhead included)",
         "baseline": "plain min-cut per decision", "setting": "ParametricPlanner.lookup_index vs Planner('mincut')"},
        {"metric": "latency vs the better end (max)", "paper": "up to 2.6x", "tessera": fmt_x(lat[0]),
         "where": where(lat), "baseline": "min(device-only, server-only)", "setting": "CIC: its own testbed"},
        {"metric": "throughput vs the better end (max, predicted)", "paper": "up to 3.3x", "tessera": fmt_x(thr[0]),
         "where": where(thr), "baseline": "max(device-only, server-only) fps", "setting": "pipelined stages"},
    ]


def pipeline(models, rtt):
    """Multi-device pipeline: throughput of the DP placement over a device and two servers against
    equal-layer placement (a state-of-the-art baseline there)."""
    gains = []
    for name, (m, _, server_ms) in models.items():
        nodes = [ts.Node("device", speed=0.1, reference=server_ms), ts.Node("edge-a", speed=1.0, reference=server_ms),
                 ts.Node("edge-b", speed=0.5, reference=server_ms)]
        net = ts.Network(nodes, {("device", "edge-a"): (18.88, rtt), ("edge-a", "edge-b"): (100.0, 1.0),
                                 ("device", "edge-b"): (5.85, rtt)})
        dp = ts.plan_pipeline(m, net, algorithm="dp")
        eq = ts.plan_pipeline(m, net, algorithm="equal_layers")
        gains.append((dp.throughput_fps / eq.throughput_fps, name))
    hi, lo = max(gains), min(gains)
    return [{"metric": "pipeline throughput vs equal-layer placement", "paper": "over state of the art (several x)",
             "tessera": f"{lo[0]:.2f}x-{hi[0]:.2f}x", "where": f"{lo[1]} .. {hi[1]}",
             "baseline": "equal_layers over device -> edge-a -> edge-b",
             "setting": "device 10x slower, edges 1x and 2x; WiFi to edge-a, 100 Mbit/s between edges (predicted)"}]


def cutedge(models, ratio, rtt):
    """CutEdge: the latency / energy trade-off of splitting (its curves). Per model and link class,
    plans minimising ms + w x mJ over a sweep of w (placement, CPU frequency and transmit power
    chosen together, ts.plan_energy, a phone's power profile): the Pareto points, and what the
    minimum-energy plan saves against the minimum-latency one for how much more latency."""
    power = ts.PowerModel.from_android_profile(ts.sample_profile("phone_lte"))
    weights = [0.0, 0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100]
    curves, best = [], None
    for name, (m, _, server_ms) in models.items():
        c = costs(server_ms, ratio)
        for link, bw in LINKS.items():
            pts = set()
            for w in weights:
                e = ts.plan_energy(m, c, power, bw, rtt, latency_weight=1.0, energy_weight=w)
                pts.add((round(e.parts.latency_ms, 3), round(e.parts.total_mj, 3)))
            e_min = ts.plan_energy(m, c, power, bw, rtt, latency_weight=0.0, energy_weight=1.0)
            pts.add((round(e_min.parts.latency_ms, 3), round(e_min.parts.total_mj, 3)))
            pareto = sorted(p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts))
            curves.append({"model": name, "link": link, "points": pareto})
            fast, frugal = pareto[0], min(pareto, key=lambda p: p[1])
            saving, cost = 1 - frugal[1] / fast[1], frugal[0] / fast[0] - 1
            if best is None or saving > best[0]:
                best = (saving, cost, name, link, len(pareto))
    mean_pts = statistics.mean(len(c["points"]) for c in curves)
    return [{"metric": "latency/energy trade-off: Pareto plans per curve (mean)", "paper": "curves",
             "tessera": f"{mean_pts:.1f}", "where": f"{len(curves)} curves (models x links), ratio {ratio:g}x",
             "baseline": "-", "setting": "phone_lte power profile; frequency and transmit power chosen with the cut"},
            {"metric": "energy saved by the frugal end of a curve (max), for more latency", "paper": "-",
             "tessera": fmt_pct(best[0]), "where": f"{best[2]} @ {best[3]}: +{100 * best[1]:.0f}% latency, "
                                                   f"{best[4]} Pareto points",
             "baseline": "the minimum-latency plan", "setting": "predicted (energy = compute + radio + idle)"}], curves


def adascale(models, ratio, rtt, size, repeats):
    """AdaScale: down-scaled inputs (the model fed size x size): device speed-up and energy saving of
    the best plan against the full-resolution model (accuracy not measured: random weights)."""
    power = ts.PowerModel.from_android_profile(ts.sample_profile("phone_lte"))
    out = []
    for name, (m, xs, server_ms) in models.items():
        if xs[0].dim() != 4 or xs[0].shape[-1] <= size:
            continue
        net, _ = zoo.build(name)
        small = ts.load(ts.variant.Resized(net.eval(), size), xs)
        table_ = ts.profile(small, xs, threads=1, repeats=repeats, warmup=2, settle=0.2, progress=False)
        c_full, c_small = costs(server_ms, ratio), costs(list(table_.atom_ms), ratio)
        full_dev, small_dev = ratio * sum(server_ms), ratio * table_.sum_atom_ms
        bw = LINKS["4G"]
        p_full = ts.plan(m, c_full, bandwidth_mbps=bw, rtt_ms=rtt)
        p_small = ts.plan(small, c_small, bandwidth_mbps=bw, rtt_ms=rtt)
        e_full = ts.plan_energy(m, c_full, power, bw, rtt, latency_weight=0.0, energy_weight=1.0).parts.total_mj
        e_small = ts.plan_energy(small, c_small, power, bw, rtt, latency_weight=0.0, energy_weight=1.0).parts.total_mj
        out.append((name, full_dev / small_dev, p_full.latency_ms / p_small.latency_ms, e_full / e_small))
    if not out:
        return not_built("speed-up and energy of down-scaled models", "1.51-6.2x speed, 4.69x energy",
                         "no image model with inputs above the down-scaled size")
    lo = min(out, key=lambda r: r[2])
    hi = max(out, key=lambda r: r[2])
    return [{"metric": f"speed-up of the best plan, input {size}x{size} vs full (4G)", "paper": "1.51-6.2x",
             "tessera": f"{lo[2]:.2f}x-{hi[2]:.2f}x", "where": f"{lo[0]} .. {hi[0]}; on the device alone "
             f"{min(r[1] for r in out):.2f}x-{max(r[1] for r in out):.2f}x (measured profiles)",
             "baseline": "the full-resolution model, its own best plan",
             "setting": "AdaScale picks the scale per frame for video detection; here one fixed scale, "
                        "accuracy not measured (random weights)"},
            {"metric": "energy saving of the minimum-energy plan (max)", "paper": "4.69x",
             "tessera": f"{max(r[3] for r in out):.2f}x", "where": max(out, key=lambda r: r[3])[0],
             "baseline": "the full-resolution model's minimum-energy plan", "setting": "phone_lte power profile"}]


def training_seed(ratio, rtt):
    """Pipeline-parallel training: the planner's split-training plan (cut, micro-batches, schedule)
    for AlexNet on WiFi against the same step on the device alone, from forward / backward costs
    profiled here (predicted, accounted; bench_training measures split steps for real)."""
    batch = 2 if smoke() else 16
    path, xs = zoo.torchscript("alexnet")
    tm = ts.load(path, xs, trainable=True)
    x = (torch.cat([xs[0]] * batch),)
    prof = ts.profile_training(tm, x, repeats=1 if smoke() else 3)
    dev = ts.training.TrainingProfile([f * ratio for f in prof.forward_ms], [b * ratio for b in prof.backward_ms],
                                      prof.stored_bytes, batch)
    single_ms = dev.step_ms
    plan = ts.plan(tm, {"device": dev, "server": prof}, LINKS["WiFi"], rtt, objective="training",
                   constraints={"micro_batches": [m for m in (1, 2, 4, 8) if m <= batch]})
    one = ts.plan(tm, {"device": dev, "server": prof}, LINKS["WiFi"], rtt, objective="training",
                  constraints={"micro_batches": [1]})
    return [{"metric": "training time vs the AlexNet baseline", "paper": "44.87% less",
             "tessera": f"{100 * (1 - plan.step_ms / single_ms):.2f}% less",
             "where": f"alexnet batch {batch} @ WiFi x{ratio:g}: {plan.placement.count(0)} of {tm.num_atoms} atoms on "
                      f"the device, {plan.micro_batches} micro-batches {plan.schedule}: {plan.step_ms:.0f} ms per step "
                      f"vs {single_ms:.0f} device-only (1 micro-batch at the same planner: {one.step_ms:.0f} ms)",
             "baseline": "the whole step on the device (single process)",
             "setting": "predicted by ts.plan(objective='training') from profiled forward/backward costs; the paper: "
                        "several embedded boards, data + model parallelism; here one device + one server; "
                        "measured split steps: bench_training"}]


def not_built(metric, paper, issue):
    return [{"metric": metric, "paper": paper, "tessera": NOT_BUILT, "where": "", "baseline": "", "setting": issue}]


# ---- where a split pays: heat maps ------------------------------------------------------------

def heat(models, ratios, bandwidths, rtt, plot=True):
    rows = []
    for name, (m, _, server_ms) in models.items():
        grid = []
        for ratio in ratios:
            c = costs(server_ms, ratio)
            line = []
            for bw in bandwidths:
                dev, srv, best = ends_and_best(m, c, bw, rtt)
                gain = min(dev.latency_ms, srv.latency_ms) / best.latency_ms
                line.append(gain)
                rows.append({"model": name, "ratio": ratio, "bandwidth_mbps": round(bw, 3), "gain": round(gain, 4),
                             "split": is_split(best.placement), "device_atoms": best.placement.count(0),
                             "best_ms": round(best.latency_ms, 3), "device_only_ms": round(dev.latency_ms, 3),
                             "server_only_ms": round(srv.latency_ms, 3)})
            grid.append(line)
        splits = sum(r["split"] for r in rows if r["model"] == name)
        top = max(max(line) for line in grid)
        print(f"{name}: a split is optimal in {splits} of {len(ratios) * len(bandwidths)} cells; best gain over "
              f"the better end {top:.2f}x")
        if plot:
            _plot_heat(name, grid, ratios, bandwidths, rtt)
    return rows


def _plot_heat(name, grid, ratios, bandwidths, rtt):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=1.0)
    ax.set_xticks(range(len(bandwidths)), [f"{b:g}" for b in bandwidths], rotation=45)
    ax.set_yticks(range(len(ratios)), [f"{r:g}" for r in ratios])
    ax.set_xlabel("uplink bandwidth (Mbit/s)")
    ax.set_ylabel("device / server speed ratio")
    ax.set_title(f"{name}: best split vs the better end (rtt {rtt:g} ms)")
    for i, line in enumerate(grid):
        for j, g in enumerate(line):
            if g > 1.005:
                ax.text(j, i, f"{g:.2f}", ha="center", va="center", fontsize=7, color="white" if g < 1.5 else "black")
    fig.colorbar(im, ax=ax, label="latency gain (x)")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / (f"bench_seeds_heat_{name}.smoke.png" if smoke() else f"bench_seeds_heat_{name}.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"  heat map: {out}")


def _plot_curves(curves):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    links = list(LINKS)
    fig, axes = plt.subplots(1, len(links), figsize=(4 * len(links), 3.6), sharey=False)
    for ax, link in zip(axes, links):
        for c in curves:
            if c["link"] == link and len(c["points"]) > 1:
                xs, ys = zip(*c["points"])
                ax.plot(xs, ys, "o-", ms=3, label=c["model"])
        ax.set_title(f"{link} ({LINKS[link]:g} Mbit/s)")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("device energy (mJ)")
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes:
        for h, lbl in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lbl, h)
    if handles:  # the models with a curve (more than one Pareto plan) on some link
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="upper right")
    fig.suptitle("CutEdge-style trade-off: Pareto plans (cut, frequency, transmit power)")
    fig.tight_layout()
    out = RESULTS / ("bench_seeds_tradeoff.smoke.png" if smoke() else "bench_seeds_tradeoff.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"trade-off curves: {out}")


def main(argv=None):
    ap = argparse.ArgumentParser(prog="tessera bench seeds", description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS, help=f"zoo models (default {' '.join(MODELS)})")
    ap.add_argument("--ratios", type=float, nargs="+", default=[10.0, 50.0],
                    help="device/server speed ratios of the seed tables (default 10 50)")
    ap.add_argument("--heat-ratios", type=float, nargs="+", default=[2, 5, 10, 20, 50, 100, 200])
    ap.add_argument("--heat-bandwidths", type=float, nargs="+",
                    default=[0.5, 1.1, 2, 5.85, 10, 18.88, 50, 100])
    ap.add_argument("--rtt", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=5, help="profile rounds per model (default 5)")
    ap.add_argument("--timing-repeats", type=int, default=200, help="calls per planner timing (default 200)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--no-measure", action="store_true", help="skip the measured memory (device processes)")
    ap.add_argument("--scale", type=int, default=112, help="AdaScale's down-scaled input size (default 112)")
    ap.add_argument("--stream-frames", type=int, default=24, help="frames of the measured stream (default 24)")
    ap.add_argument("--probe", nargs=5, help=argparse.SUPPRESS)  # a child of the memory measurement
    args = ap.parse_args(argv)
    if args.probe:
        _probe_main(*args.probe)
        return
    if smoke():
        args.models, args.repeats, args.timing_repeats, args.stream_frames = ["squeezenet1_0"], 2, 20, 4
        args.heat_ratios, args.heat_bandwidths = [5, 50], [1.1, 18.88]
    ts.set_threads(1)
    t0 = time.time()
    models = profile_models(args.models, args.repeats)
    memory = [] if args.no_measure else adamec_measured(models, args.ratios, args.rtt)
    mem_row = {"metric": "device memory saving, measured (RSS high-water growth of a device process)",
               "paper": "55.21%", "tessera": NOT_BUILT if args.no_measure else "no split plan", "where": "",
               "baseline": "whole model in a device process",
               "setting": "a fresh process opens only its atoms and runs the plan 3 times (server on loopback)"}
    if memory:
        savings = [r["measured_saving"] for r in memory if r["measured_saving"] is not None]
        mem_row["tessera"] = fmt_pct(statistics.mean(savings)) if savings else "-"
        mem_row["where"] = f"mean of {len(savings)} models (predicted " \
                           f"{fmt_pct(statistics.mean(r['predicted_saving'] for r in memory))} for the same plans)"
    stream = None if args.no_measure else dads_measured(models, args.ratios, args.rtt, args.stream_frames)
    stream_row = {"metric": "throughput vs device-only, measured under a request stream", "paper": "8.31x",
                  "tessera": NOT_BUILT if args.no_measure else "no split throughput plan", "where": "",
                  "baseline": "device-only, measured", "setting": "frames arriving at once; ts.StreamDeployment "
                  "(4 in flight) over a loopback server, device and link emulated"}
    if stream:
        stream_row["tessera"] = fmt_x(stream["throughput_fps"] / stream["device_only_fps"])
        stream_row["where"] = (f"{stream['model']} @ {stream['cell']}: {stream['throughput_fps']:.2f} fps (predicted "
                               f"{stream['throughput_predicted_fps']:.2f}) vs {stream['device_only_fps']:.2f} "
                               f"(predicted {stream['device_only_predicted_fps']:.2f}); latency plan one at a time "
                               f"{stream['latency_fps']:.2f}")
    dads_rows = [r for r in dads(models, args.ratios, args.rtt) if r["tessera"] != NOT_BUILT] + [stream_row]
    cut_rows, curves = cutedge(models, args.ratios[0], args.rtt)
    seeds = {
        "AdaMEC": adamec(models, args.ratios, args.rtt) + [mem_row],
        "DADS": dads_rows,
        "CAS / GADS": cas(models, args.ratios[0], args.rtt, args.timing_repeats),
        "CIC": cic(models, args.ratios[0], args.rtt, args.timing_repeats),
        "CutEdge": cut_rows,
        "Multi-device pipeline": pipeline(models, args.rtt),
        "Pipeline-parallel training": training_seed(args.ratios[0], args.rtt),
        "AdaScale": adascale(models, args.ratios[0], args.rtt, args.scale, args.repeats),
    }
    cols = ["metric", "paper", "tessera", "where", "baseline", "setting"]
    rows = []
    for seed, seed_rows in seeds.items():
        print(f"\n== {seed}")
        print(table(seed_rows, cols))
        rows += [{"seed": seed, **r} for r in seed_rows]
    print(f"\nmodels: {', '.join(models)}; ratios {args.ratios}; rtt {args.rtt} ms; server = this machine, 1 thread; "
          f"device = server x ratio (emulated)")
    print("\n== where a split beats both ends (gain = better end / best plan)")
    heat_rows = heat(models, args.heat_ratios, args.heat_bandwidths, args.rtt, plot=not args.no_plot)
    if memory:
        print("\n== AdaMEC's memory per model: predicted (parameters + activation peak) and measured (RSS growth)")
        cols_m = ["model", "cell", "device_atoms", "atoms", "predicted_whole_mb", "predicted_split_mb",
                  "measured_whole_mb", "measured_split_mb", "predicted_saving", "measured_saving"]
        print(table([{k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in r.items()} for r in memory], cols_m))
    if curves and not args.no_plot:
        _plot_curves(curves)
    if stream:
        print("\n== DADS's heavy load, measured")
        print(table([{k: (f"{v:.3g}" if isinstance(v, float) else v) for k, v in stream.items()}], list(stream)))
    for name, rs in (("bench_seeds", rows), ("bench_seeds_heat", heat_rows), ("bench_seeds_memory", memory),
                     ("bench_seeds_stream", [stream] if stream else [])):
        if not rs:
            continue
        print(f"wrote {write_csv(name, rs)}")
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
