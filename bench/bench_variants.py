"""Accuracy-aware variants (issue 17): codecs, the measured accuracy-latency frontier, the
selector against it, accuracy kept within the budget, and the gain over the exact adaptive
deployment on the shared traces at DADS's 3G / 4G scalings.

Models: the digits CNN (trained here on scikit-learn's digits: accuracy, selection on the
validation split, checked on the test split), mobilenet_v2 and resnet50 (random weights, batch
norm statistics re-estimated on smooth random images: fidelity = top-1 agreement with fp32,
selection on 48 images, checked on 48 others).

Emulation: the device is --device-slowdown times slower than this machine (its compute
accounted x slowdown, the same for every policy); device load is a further factor on it; the
server is a `tessera serve` process on loopback (1 thread); the link is the transport's emulator,
its time accounted (not slept) from the trace at the request's trace time. Everything runs with
one intra-op thread.

Parts, in one run:
  codecs    median encode / decode of a 1 MB float tensor (21 runs, 5 rounds: median, min-max of
            the rounds), wire bytes / raw; zstd and int8 on the models' real cut tensors
  frontier  per model and context (bandwidth x device load): every candidate (variant, split,
            codec) run live (median of 5 runs in a row, digits 15), in two rounds; per budget,
            the selector's choice (predicted) against the best measured point within the budget:
            ratio <= 1.05 is the target; the ceiling is the first round's best measured again
  accuracy  every candidate the selector picks, its loss re-measured on held-out data: loss <=
            budget + the 95 % binomial half-width is the target
  replay    per model, trace and scaling: the exact adaptive deployment (fp32, parametric min
            cut) and the variant deployment at every budget, --requests requests 1 per trace s,
            interleaved: mean latency and bytes per request; gain = adaptive / variants

Writes bench/results/bench_variants_{codecs,frontier,replay}.csv and bench_variants_frontier.png.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import smoke, table, trace_files, write_csv  # noqa: E402

import tessera as ts  # noqa: E402
from tessera import datasets, zoo  # noqa: E402
from tessera.runtime import spawn_server, stop_server  # noqa: E402
from tessera.variant import calibrate_batchnorm, cut_tensors  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SCALES = {"3G": 1.1, "4G": 5.85}  # DADS's median bandwidths (Mbit/s)
MAKE = {
    "digits": ["wire_fp16", "wire_int8", "wire_zstd", "int8", "int8_static", "prune30", "prune50", "res6",
               "prune30+wire_int8"],
    "mobilenet_v2": ["wire_fp16", "wire_bf16", "wire_int8", "wire_int8_channel", "wire_zstd", "int8", "int8_static",
                     "prune30", "res160", "res160+wire_int8"],
    "resnet50": ["wire_fp16", "wire_bf16", "wire_int8", "wire_int8_channel", "wire_zstd", "int8", "prune30",
                 "res160", "res160+wire_int8"],
}


def smooth_images(n: int, seed: int, size: int = 224) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 7, 7, generator=g)
    return 1.5 * torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


# ---- codecs ------------------------------------------------------------------------------------

def codec_part(models: dict) -> list[dict]:
    rows = []
    x = torch.randn(262144)  # 1 MB of float32
    for c in ts.variant.WIRE_CODECS:
        probe = x.view(1, 1, -1) if c == "int8_channel" else x
        rounds = [ts.variant.codec_timing(probe, c, 21) for _ in range(5)]
        enc = [r[0] for r in rounds]
        dec = [r[1] for r in rounds]
        tot = [a + b for a, b in zip(enc, dec)]
        rows.append({"tensor": "randn 1 MB", "codec": c, "wire/raw": f"{rounds[0][2] / (4 * x.numel()):.3f}",
                     "encode_ms": f"{statistics.median(enc):.3f}", "decode_ms": f"{statistics.median(dec):.3f}",
                     "enc+dec_ms": f"{statistics.median(tot):.3f}", "enc+dec_range": f"{min(tot):.3f}-{max(tot):.3f}",
                     "MB/s_enc": f"{1 / statistics.median(enc) * 1e3:.0f}" if statistics.median(enc) > 0 else "-"})
    for name, (m, xs) in models.items():
        cuts = [t for t in cut_tensors(m, xs) if t.numel() >= 1024]
        raw = sum(4 * t.numel() for t in cuts)
        for c in ("int8", "zstd"):
            wire, enc, dec = 0, 0.0, 0.0
            for t in cuts:
                e, d, b = ts.variant.codec_timing(t, c, 5)
                wire, enc, dec = wire + b, enc + e, dec + d
            rows.append({"tensor": f"{name}: {len(cuts)} cut tensors, {raw / 1e6:.2f} MB", "codec": c,
                         "wire/raw": f"{wire / raw:.3f}", "encode_ms": f"{enc:.3f}", "decode_ms": f"{dec:.3f}",
                         "enc+dec_ms": f"{enc + dec:.3f}", "enc+dec_range": "-",
                         "MB/s_enc": f"{raw / 1e3 / enc:.0f}" if enc > 0 else "-"})
    return rows


# ---- models and their variants ------------------------------------------------------------------

def build(name: str, args):
    """(variant set with costs and selection losses, verification function loss(fn) -> loss, n)."""
    if name == "digits":
        data = datasets.digits()
        net = datasets.digits_cnn(data)
        xs = (data.val.x[:1],)
        vs = ts.variants(net, xs, make=MAKE[name], train=data.train, progress=False)
        # a ~50 us model at 50x: 5 profiling rounds left predictions that flipped variants' order run to
        # run (int8_static predicted faster, then slower, than fp32); 50 rounds cost 40 ms here
        vs.profile(device_slowdown=args.digits_slowdown, repeats=max(args.repeats, 50))
        ts.accuracy(vs, data.val)
        base_test = datasets.top1(vs.runner(vs.base), data.test)

        def verify(fn):
            return base_test - datasets.top1(fn, data.test)
        return vs, verify, len(data.test), args.digits_slowdown
    net, _ = zoo.build(name)
    calibrate_batchnorm(net, [smooth_images(8, 100 + i) for i in range(3)])
    xs = (smooth_images(1, 7),)
    vs = ts.variants(net, xs, make=MAKE[name], progress=False)
    vs.profile(device_slowdown=args.device_slowdown, repeats=args.repeats)
    sel = smooth_images(args.fidelity_inputs, 1)
    ts.fidelity(vs, sel)
    check = smooth_images(args.fidelity_inputs, 2)
    ref = [vs.base.model.run_flat([check[i:i + 1]])[0].argmax(-1) for i in range(check.shape[0])]

    def verify(fn):
        agree = sum(int(torch.equal(fn(check[i:i + 1])[0].argmax(-1), r)) for i, r in enumerate(ref))
        return 1 - agree / len(ref)
    return vs, verify, len(ref), args.device_slowdown


# ---- frontier: every candidate measured live per context ------------------------------------------

def deployment(vs, c, endpoint, bw, rtt, slowdown):
    v = vs[c.variant]
    return ts.Deployment(v.model, list(c.placement), server=endpoint, timeout_ms=60000, codec=v.codec,
                         device_slowdown=slowdown, emulation="account", link=ts.Link(bandwidth_mbps=bw, rtt_ms=rtt))


def measure_round(deps, x, reps):
    """Every candidate `reps` times in a row (as a deployment runs the variant it chose), after two
    untimed runs (TorchScript profiles then optimises a graph on its first two calls). Returns per
    candidate (median accounted ms, bytes of one request). Interleaving candidates run by run was
    tried: it measured the digits CNN's static int8 variant 2.4-3x slower than in a row (a direct
    test outside the benchmark: +15%), a cost of switching every request that deployments do not pay."""
    out = []
    for i, d in enumerate(deps):
        ms, nbytes = [], 0
        for r in range(reps + 2):
            d.run_flat([x])
            tl = d.last_timeline
            if tl.fallback:
                raise RuntimeError(f"candidate {i} fell back: {[b.error for b in tl.blocks]}")
            if r >= 2:
                ms.append(tl.total_ms)
            nbytes = sum(b.bytes_up + b.bytes_down for b in tl.blocks)
        out.append((statistics.median(ms), nbytes))
    return out


def frontier_part(name, vs, endpoint, args, slowdown, x):
    sel = vs.selector(args.rtt)
    cands = list(sel.candidates)
    rows, picks, plot = [], set(), []
    for bw in args.frontier_bw:
        for load in args.loads:
            ctx = ts.make_context(bw, args.rtt, device_load=load)
            # Two independent rounds: A finds the best measured point, B (a second measurement)
            # judges the choice and A's best alike: B(A's best) / B's best is the ceiling noise allows.
            reps = args.reps * (3 if name == "digits" else 1)  # a tiny model: noise x slowdown is large
            deps = [deployment(vs, c, endpoint, bw, args.rtt, slowdown * load) for c in cands]
            measured = measure_round(deps, x, reps)
            second = measure_round(deps, x, reps)
            if bw == args.frontier_bw[0] and load == args.loads[0]:
                plot.append((bw, load, [(c.loss, m[0], c.name) for c, m in zip(cands, measured)]))
            for b in args.budgets:
                ok = [i for i, c in enumerate(cands) if c.loss <= b / 100 + 1e-12]
                if not ok:
                    continue
                best = min(ok, key=lambda i: measured[i][0])
                best_b = min(ok, key=lambda i: second[i][0])
                ch = sel.select(ctx, b / 100)
                picks.add((ch.index, b))
                rows.append({"model": name, "Mbit/s": bw, "device_load": load, "budget_%": b,
                             "choice": cands[ch.index].name,
                             "choice_split": f"{sum(1 for p in cands[ch.index].placement if p == 0)}/"
                                             f"{len(cands[ch.index].placement)}",
                             "predicted_ms": f"{ch.latency_ms:.2f}", "choice_ms": f"{measured[ch.index][0]:.2f}",
                             "best_ms": f"{measured[best][0]:.2f}", "best": cands[best].name,
                             "choice/best": f"{measured[ch.index][0] / measured[best][0]:.3f}",
                             "choice/best_2nd": f"{second[ch.index][0] / second[best_b][0]:.3f}",
                             "ceiling_2nd": f"{second[best][0] / second[best_b][0]:.3f}",
                             "fp32_best_ms": f"{min(measured[i][0] for i, c in enumerate(cands) if c.variant == 0):.2f}",
                             "choice_bytes": measured[ch.index][1]})
    return rows, picks, plot, cands


def accuracy_part(name, vs, cands, picks, verify, n):
    rows = []
    for idx, b in sorted(picks, key=lambda p: (p[1], p[0])):
        c = cands[idx]
        v = vs[c.variant]
        loss = verify(vs.runner(v, list(c.placement)))
        # the 95 % half-width of an accuracy measured on n held-out samples, at the measured value
        acc = (vs.base_score - loss) if name == "digits" else 1 - loss
        half = datasets.binomial_halfwidth(min(max(acc, 0.0), 1.0), n)
        rows.append({"model": name, "budget_%": b, "candidate": c.name,
                     "split": f"{sum(1 for p in c.placement if p == 0)}/{len(c.placement)}",
                     "selection_loss_%": f"{100 * c.loss:.2f}", "heldout_loss_%": f"{100 * loss:.2f}",
                     "95%_halfwidth_%": f"{100 * half:.2f}",
                     "within": loss <= b / 100 + half})
    return rows


def replay_accuracy(name, vs, picks, verify, n):
    """Every (variant, split) a replay request ran, its loss re-measured on held-out data."""
    rows, seen = [], {}
    for b, vname, placement in sorted(picks):
        key = (vname, placement)
        if key not in seen:
            seen[key] = verify(vs.runner(vs[vname], list(placement)))
        loss = seen[key]
        acc = (vs.base_score - loss) if name == "digits" else 1 - loss
        half = datasets.binomial_halfwidth(min(max(acc, 0.0), 1.0), n)
        rows.append({"model": name, "budget_%": b, "candidate": f"{vname} (replay)",
                     "split": f"{sum(1 for p in placement if p == 0)}/{len(placement)}",
                     "selection_loss_%": f"{100 * vs.measure(vs[vname], list(placement)):.2f}",
                     "heldout_loss_%": f"{100 * loss:.2f}", "95%_halfwidth_%": f"{100 * half:.2f}",
                     "within": loss <= b / 100 + half})
    return rows


# ---- trace replay ---------------------------------------------------------------------------------

def replay_part(name, vs, endpoint, args, slowdown, x, picks):
    """picks: filled with (budget, variant, placement) of every request the variant deployments ran."""
    rows = []
    cm0 = vs.base.costs
    for sub, f in trace_files(Path(args.traces), args.per_set):
        samples = ts.read_trace(f)
        window = [bw for t, bw in samples if t < args.requests] or [samples[0][1]]
        med = statistics.median(window)
        for scale_name in args.scales:
            scale = SCALES[scale_name] / max(med, 1e-3)
            spec = {"trace": samples, "scale": scale, "rtt_ms": args.rtt}
            policies = {}
            links = {}
            links["adaptive"] = ts.Link(**spec)
            policies["adaptive"] = ts.AdaptiveDeployment(vs.base.model, cm0, endpoint, link=links["adaptive"],
                                                         rtt_ms=args.rtt, device_slowdown=slowdown,
                                                         emulation="account", timeout_ms=60000)
            for b in args.budgets:
                links[b] = ts.Link(**spec)
                policies[b] = ts.AdaptiveDeployment(vs.base.model, None, server=endpoint, link=links[b], variants=vs,
                                                    accuracy_budget=b / 100, rtt_ms=args.rtt, device_slowdown=slowdown,
                                                    emulation="account", timeout_ms=60000)
            lat = {k: [] for k in policies}
            byt = {k: [] for k in policies}
            used = {b: {} for b in args.budgets}
            keys = list(policies)
            for i in range(args.requests):
                # rotated every request: on one core, a model run right after another model pays for the
                # switch (caches; measured up to 1.5x on the digits CNN), so no policy always goes first
                for k in keys[i % len(keys):] + keys[:i % len(keys)]:
                    p = policies[k]
                    links[k].set_time(float(i))
                    p(x)
                    if k == "adaptive":
                        lat[k].append(p.last_record.total_ms)
                        byt[k].append(sum(b.bytes_up + b.bytes_down for b in p.last_blocks))
                    else:
                        r = p.timeline[-1]
                        lat[k].append(r["latency_ms"])
                        byt[k].append(r["bytes_up"] + r["bytes_down"])
                        used[k][r["variant"]] = used[k].get(r["variant"], 0) + 1
                        picks.add((k, r["variant"], tuple(r["placement"])))
            base = statistics.fmean(lat["adaptive"])
            row = {"model": name, "trace": f"{sub}/{f.name[:24]}", "scale": scale_name,
                   "median_Mbit/s": f"{med * scale:.2f}", "adaptive_ms": f"{base:.1f}",
                   "adaptive_kB": f"{statistics.fmean(byt['adaptive']) / 1e3:.1f}"}
            for b in args.budgets:
                m = statistics.fmean(lat[b])
                row[f"b{b:g}%_ms"] = f"{m:.1f}"
                row[f"b{b:g}%_kB"] = f"{statistics.fmean(byt[b]) / 1e3:.1f}"
                row[f"b{b:g}%_gain"] = f"{base / m:.2f}"
                row[f"b{b:g}%_variants"] = " ".join(f"{k}:{n}" for k, n in sorted(used[b].items(), key=lambda t: -t[1]))
            rows.append(row)
            print(" ", {k: row[k] for k in list(row)[:6]}, {k: v for k, v in row.items() if k.endswith("gain")},
                  flush=True)
    return rows


def plot_frontier(plots: dict, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plots), figsize=(5.2 * len(plots), 4.2), squeeze=False)
    for ax, (name, (bw, load, pts)) in zip(axes[0], plots.items()):
        for loss, ms, label in pts:
            ax.scatter(100 * loss, ms, s=14, alpha=0.6, color="C0" if "wire" not in label else "C1")
        pts_sorted = sorted(pts, key=lambda p: (p[0], p[1]))
        front, best = [], math.inf
        for loss, ms, label in pts_sorted:
            if ms < best:
                best = ms
                front.append((100 * loss, ms, label))
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="k", lw=1.2, label="frontier")
        for lx, ly, lab in front:
            ax.annotate(lab, (lx, ly), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("symlog", linthresh=0.5)
        ax.set_xlabel("measured loss (% top-1; zoo: 1 - agreement)")
        ax.set_ylabel("measured latency (ms, accounted)")
        ax.set_title(f"{name} @ {bw:g} Mbit/s, device load {load:g}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["digits", "mobilenet_v2", "resnet50"])
    ap.add_argument("--budgets", nargs="+", type=float, default=[0, 0.5, 1, 2], help="loss budgets, %% top-1")
    ap.add_argument("--device-slowdown", type=float, default=10.0, help="zoo models: device x slower")
    ap.add_argument("--digits-slowdown", type=float, default=50.0, help="digits: an MCU-class device")
    ap.add_argument("--rtt", type=float, default=20.0)
    ap.add_argument("--frontier-bw", nargs="+", type=float, default=[1.1, 5.85, 18.88])
    ap.add_argument("--loads", nargs="+", type=float, default=[1.0, 3.0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5, help="profiling rounds")
    ap.add_argument("--fidelity-inputs", type=int, default=48)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--per-set", type=int, default=1)
    ap.add_argument("--scales", nargs="+", default=["3G", "4G"], choices=list(SCALES))
    ap.add_argument("--traces", default=str(Path(__file__).resolve().parents[2] / "shared" / "traces"))
    ap.add_argument("--smoke", action="store_true", help="digits only, a few requests (CI)")
    args = ap.parse_args(argv)
    if args.smoke or smoke():
        args.models, args.requests, args.frontier_bw, args.loads, args.reps = ["digits"], 4, [1.1], [1.0], 1
        args.budgets, args.scales = [0, 1], ["3G"]
    ts.set_threads(1)
    t0 = time.perf_counter()
    built = {}
    for name in args.models:
        tb = time.perf_counter()
        built[name] = build(name, args)
        print(f"{name}: {len(built[name][0])} variants built, profiled and measured in {time.perf_counter() - tb:.0f} s; "
              + ", ".join(f"{v.name} {100 * v.loss:.2f}%" for v in built[name][0]), flush=True)
    crows = codec_part({n: (b[0].base.model, b[0].example_inputs) for n, b in built.items()})
    print("\ncodecs (1 thread; median of 5 rounds of 21 runs):")
    print(table(crows, list(crows[0])))
    frows, arows, rrows, plots = [], [], [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (vs, *_rest) in built.items():
            vs.save(tmp, prefix=f"{name}_")
        proc, endpoint = spawn_server(tmp)
        try:
            for name, (vs, verify, n, slowdown) in built.items():
                x = vs.example_inputs[0]
                fr, picks, plot, cands = frontier_part(name, vs, endpoint, args, slowdown, x)
                frows += fr
                plots[name] = plot[0]
                arows += accuracy_part(name, vs, cands, picks, verify, n)
                print(f"{name}: frontier measured ({len(cands)} candidates x {len(args.frontier_bw) * len(args.loads)} "
                      f"contexts)", flush=True)
                replay_picks = set()
                rrows += replay_part(name, vs, endpoint, args, slowdown, x, replay_picks)
                arows += replay_accuracy(name, vs, replay_picks, verify, n)
        finally:
            stop_server(proc)
    print("\nfrontier: the selector's choice against the best measured point within the budget")
    print(table(frows, list(frows[0])))
    for key, what in (("choice/best", "first measurement"), ("choice/best_2nd", "second measurement"),
                      ("ceiling_2nd", "ceiling: the first measurement's best, measured again")):
        ratios = [float(r[key]) for r in frows]
        print(f"{what}: within 5% of the best measured point on {sum(r <= 1.05 for r in ratios)}/{len(ratios)} "
              f"contexts x budgets; median {statistics.median(ratios):.3f}, worst {max(ratios):.3f}")
    print("\naccuracy of every pick (frontier contexts and every replay request), re-measured on held-out data")
    print(table(arows, list(arows[0])))
    print(f"within budget + 95% half-width: {sum(bool(r['within']) for r in arows)}/{len(arows)}")
    print("\nreplay: mean latency / bytes per request, exact adaptive (fp32) vs variants per budget")
    print(table(rrows, list(rrows[0])))
    for scale in args.scales:
        for b in args.budgets:
            g = [float(r[f"b{b:g}%_gain"]) for r in rrows if r["scale"] == scale]
            if g:
                print(f"  {scale} budget {b:g}%: gain over exact adaptive: mean {statistics.fmean(g):.2f}x, "
                      f"range {min(g):.2f}-{max(g):.2f}x over {len(g)} model x trace runs")
    print("wrote", write_csv("bench_variants_codecs", crows))
    print("wrote", write_csv("bench_variants_frontier", frows))
    print("wrote", write_csv("bench_variants_accuracy", arows))
    print("wrote", write_csv("bench_variants_replay", rrows))
    RESULTS.mkdir(exist_ok=True)
    print("wrote", plot_frontier(plots, RESULTS / "bench_variants_frontier.png"))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
