"""Latency predictor judged against a second measurement and by the plans it makes (issue 20).

One run, on this machine:

1. **Labels that drift alike.** Every zoo model is profiled twice per context (threads x
   background load), round-robin (``tp.collect_interleaved``: per context model 1, model 2, ...,
   model n, then the second pass the same way), so training atoms, test atoms and the second
   measurement share the machine's time windows. The canary (``settle``) is kept; the report
   says how much the machine moved (canary min / median / max per context).
2. **Unseen models: leave-one-family-out** (``tp.leave_one_family_out`` over ``tp.FAMILIES``):
   every predictor (lookup, analytic, xgboost) trained on all families but one, scored on that one,
   for each family, on the first pass. ``remeasure`` scores the second pass against the first:
   the ceiling no predictor can beat. Per context:

     atoms<=10%   share of atoms (median >= 0.1 ms) within +-10% of measured
     atom MAPE    mean absolute percentage error over those atoms
     rho          Spearman rank correlation of predicted and measured ms over those atoms
     models<=10%  models whose predicted sum of atoms is within +-10% of the measured sum
     whole<=10%   the same against the whole model measured as one block

   Also: "xgboost per class" (one model per op class instead of one model with class features),
   and rows "(settled)" on the models whose two profiles both reached the reference state.

3. **Plan regret** (``tp.plan_regret``): plans made from predicted costs (server = predicted ms,
   device = factor x), priced with measured costs, against plans made from measured costs, over
   device factors x bandwidths x rtt, per model; mean / worst regret and the count of cases whose
   measured optimum is a split.
4. **Few-shot transfer** (``tp.adapt``): an XGBoost predictor trained on the first context only
   (1 thread, no load) meets a new target - each other context measured in the run (two threads;
   background load 0.5) - with 10, 20, 30 atoms measured there (drawn at random, 5 draws), adapted
   by continuing its trees or by a per-op-class scale; scored on the target's other atoms beside
   that target's remeasure share on the same atoms.

    .venv/bin/python bench/bench_predictor.py [--repeats 10] [--contexts 1:0 2:0 1:0.5]
    .venv/bin/python bench/bench_predictor.py --rescore bench/results   # score saved samples again
"""
from __future__ import annotations

import argparse
import collections
import csv
import math
import random
import statistics
import sys
import time
from pathlib import Path

import torch  # noqa: F401  (before the engine)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402,F401
from tessera import predict as tp  # noqa: E402
from tessera import zoo  # noqa: E402

from common import RESULTS, smoke, table, write_csv  # noqa: E402

KINDS = ("lookup", "analytic", "xgboost")
MIN_MS, TOL = 0.1, 0.10
TARGETS = {"atoms": 0.85, "models": 0.9, "regret_mean": 0.01, "regret_worst": 0.05, "split_cases": 50, "fewshot": 0.8}


def spearman(a, b):
    """Spearman's rank correlation (scipy's when present)."""
    if len(a) < 3:
        return float("nan")
    try:
        from scipy.stats import spearmanr
        return float(spearmanr(a, b).correlation)
    except ImportError:  # average ranks, Pearson on ranks
        def ranks(x):
            order = sorted(range(len(x)), key=x.__getitem__)
            r = [0.0] * len(x)
            i = 0
            while i < len(order):
                j = i
                while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                    j += 1
                for k in range(i, j + 1):
                    r[order[k]] = (i + j) / 2
                i = j + 1
            return r
        ra, rb = ranks(a), ranks(b)
        ma, mb = statistics.fmean(ra), statistics.fmean(rb)
        cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb))
        return cov / math.sqrt(sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb))


def key(s):
    return (s.label, s.f.atom, s.ctx.threads, s.ctx.background_load)


def ctx_of(s):
    return (s.ctx.threads, s.ctx.background_load)


def score(pred, samples, whole):
    """Accuracy of predictions (one per sample) within one context: C++ scorer + rank + whole model."""
    acc = tp.evaluate(list(pred), samples, MIN_MS, TOL)
    big = [(p, s.ms) for p, s in zip(pred, samples) if s.ms >= MIN_MS]
    summed = collections.defaultdict(float)
    for s, p in zip(samples, pred):
        summed[s.label] += p
    ctx = ctx_of(samples[0])
    w = [abs(p - whole[(lbl, *ctx)]) / whole[(lbl, *ctx)] for lbl, p in summed.items()]
    return {"atoms": acc.atoms, "atom_share": acc.atoms_within, "atom_mape": acc.mape,
            "rho": spearman([p for p, _ in big], [m for _, m in big]),
            "models": acc.models, "model_share": acc.models_within, "model_mape": acc.model_mape,
            "whole_share": sum(e <= TOL for e in w) / max(1, len(w))}


def per_class_lofo(samples, min_samples=50):
    """Leave-one-family-out with one XGBoost model per op class (trained on that class's samples of
    the other families; a class with fewer than min_samples there falls back to one model of all
    classes): the per-class alternative to one model with class features (issue 20)."""
    fam = [tp.family_of(s.label) for s in samples]
    out = [0.0] * len(samples)
    for held in sorted(set(fam)):
        train = [s for s, f in zip(samples, fam) if f != held]
        idx = [i for i, f in enumerate(fam) if f == held]
        allp = tp.train(train, kind="xgboost")
        for cls in sorted({samples[i].f.op_class for i in idx}):
            ci = [i for i in idx if samples[i].f.op_class == cls]
            tc = [s for s in train if s.f.op_class == cls]
            p = tp.train(tc, kind="xgboost") if len(tc) >= min_samples else allp
            for i, v in zip(ci, p.predict([samples[i] for i in ci]).ms):
                out[i] = float(v)
    return out


def by_ctx(samples):
    out = collections.defaultdict(list)
    for i, s in enumerate(samples):
        out[ctx_of(s)].append(i)
    return dict(sorted(out.items()))


def pct(x):
    return f"{100 * x:.1f}%"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(zoo.NAMES))
    ap.add_argument("--contexts", nargs="+", default=["1:0", "2:0", "1:0.5"],
                    help="threads:background_load; the first is the few-shot source, the others its targets")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--settle", type=float, default=0.2, help="canary tolerance (0 = off)")
    ap.add_argument("--max-wait", type=float, default=5.0, help="per profile, the longest wait (s) for the reference state")
    ap.add_argument("--draws", type=int, default=5, help="few-shot: random draws of the k atoms")
    ap.add_argument("--rescore", metavar="DIR", help="score the samples an earlier run saved in DIR again, without profiling")
    args = ap.parse_args(argv)
    if smoke():
        args.models, args.contexts, args.repeats, args.warmup, args.draws, args.max_wait = (
            ["squeezenet1_0", "lstm", "transformer"], ["1:0", "1:0.5"], 2, 1, 2, 1.0)
    ctxs = [(int(c.split(":")[0]), float(c.split(":")[1])) for c in args.contexts]
    ts.set_threads(1)
    print(f"models: {' '.join(args.models)}\ncontexts (threads, background load): {ctxs}; "
          f"{args.repeats} timed rounds after {args.warmup} warm-up per profile, batch 1, settle {args.settle:g}")
    t0 = time.perf_counter()
    if args.rescore:
        d = Path(args.rescore)
        passes = [tp.read_samples(d / f"predictor_samples_pass{k}.csv") for k in (1, 2)]
        with open(d / "predictor_profiles.csv") as f:
            profs = list(csv.DictReader(f))
    else:
        tabs, passes = [], [[], []]
        for t, x in ctxs:  # one context at a time: both passes of all models in its time window
            got = tp.collect_interleaved(args.models, threads=[t], background_loads=[x], passes=2,
                                         repeats=args.repeats, warmup=args.warmup, progress=True, tables=tabs,
                                         settle=args.settle, max_wait_s=args.max_wait)
            for k in range(2):
                passes[k] += got[k]
        profs = [{"order": i, "pass": k + 1, "label": lbl, "threads": t.threads, "background_load": t.background_load,
                  "model_ms": t.model_ms, "sum_atom_ms": t.sum_atom_ms, "canary_ms": t.canary_ms,
                  "canary_reference_ms": t.canary_reference_ms, "rounds_discarded": t.rounds_discarded,
                  "settled": t.settled, "waited_s": round(t.waited_ms / 1e3, 2)} for i, (k, lbl, t) in enumerate(tabs)]
        write_csv("predictor_profiles", profs)
        if not smoke():
            for k, ss in enumerate(passes, 1):
                tp.write_samples(RESULTS / f"predictor_samples_pass{k}.csv", ss)
    t_collect = time.perf_counter() - t0
    # only the requested contexts (a --rescore directory may hold more)
    passes = [[s for s in ss if ctx_of(s) in ctxs] for ss in passes]
    profs = [p for p in profs if (int(p["threads"]), float(p["background_load"])) in ctxs]
    whole = {(p["label"], int(p["threads"]), float(p["background_load"])): float(p["model_ms"])
             for p in profs if int(p["pass"]) == 1}
    first, again = passes
    ref = {key(s): s.ms for s in again}
    first = [s for s in first if key(s) in ref]

    # ---- how much the machine moved -----------------------------------------------------------
    print(f"\nprofiling {t_collect:.0f} s; {len(profs)} profiles")
    moved = []
    for c in ctxs:
        ps = [p for p in profs if (int(p["threads"]), float(p["background_load"])) == c]
        can = [float(p["canary_ms"]) for p in ps if float(p["canary_ms"]) > 0]
        moved.append({"threads": c[0], "load": c[1], "profiles": len(ps),
                      "canary min": f"{min(can):.3f}" if can else "-",
                      "canary median": f"{statistics.median(can):.3f}" if can else "-",
                      "canary max": f"{max(can):.3f}" if can else "-",
                      "max/min": f"{max(can) / min(can):.2f}" if can else "-",
                      "rounds re-run": sum(int(p["rounds_discarded"]) for p in ps),
                      "unsettled": sum(str(p["settled"]) != "True" for p in ps),
                      "waited s": round(sum(float(p["waited_s"]) for p in ps))})
    print("how much the machine moved (canary ms per profile, 1 thread, beside the context's load):")
    print(table(moved, list(moved[0])))

    # ---- leave-one-family-out -------------------------------------------------------------------
    t1 = time.perf_counter()
    preds = {"remeasure": [ref[key(s)] for s in first]}
    for kind in KINDS:
        preds[kind] = list(tp.leave_one_family_out(first, kind=kind).ms)
    preds["xgboost per class"] = per_class_lofo(first)
    t_lofo = time.perf_counter() - t1
    groups = by_ctx(first)
    results, rows = {}, []
    for name, pr in preds.items():
        for c, idx in groups.items():
            r = score([pr[i] for i in idx], [first[i] for i in idx], whole)
            results[(name, c)] = r
    # the same on the models whose two profiles in a context both reached the machine's reference state
    ok = collections.Counter((p["label"], int(p["threads"]), float(p["background_load"]))
                             for p in profs if str(p["settled"]) == "True")
    settled = [s for s in first if ok[(s.label, *ctx_of(s))] == 2]
    if settled and len({tp.family_of(s.label) for s in settled}) >= 2:
        sp = {"remeasure (settled)": [ref[key(s)] for s in settled]}
        for kind in ("analytic", "xgboost"):
            sp[f"{kind} (settled)"] = list(tp.leave_one_family_out(settled, kind=kind).ms)
        for name, pr in sp.items():
            for c, idx in by_ctx(settled).items():
                results[(name, c)] = score([pr[i] for i in idx], [settled[i] for i in idx], whole)
    for (name, c), r in results.items():
        ceil = results[("remeasure (settled)" if "settled" in name else "remeasure", c)]
        rows.append({"predictor": name, "threads": c[0], "load": c[1], "atoms": r["atoms"],
                     "atoms<=10%": pct(r["atom_share"]),
                     "x ceiling": "" if name.startswith("remeasure") else f"{r['atom_share'] / max(ceil['atom_share'], 1e-9):.2f}",
                     "atom MAPE": f"{r['atom_mape']:.1f}%", "rho": f"{r['rho']:.3f}",
                     "models<=10%": f"{round(r['model_share'] * r['models'])}/{r['models']}",
                     "x ceiling ": "" if name.startswith("remeasure") else f"{r['model_share'] / max(ceil['model_share'], 1e-9):.2f}",
                     "model MAPE": f"{r['model_mape']:.1f}%", "whole<=10%": pct(r["whole_share"])})
    print(f"\nunseen model families (leave-one-family-out over {len(set(tp.family_of(s.label) for s in first))} "
          f"families; targets: atoms >= {TARGETS['atoms']} x ceiling, models >= {TARGETS['models']} x ceiling):")
    print(table(rows, list(rows[0])))
    write_csv("predictor", rows)
    fam_rows = []
    c0 = ctxs[0]
    for fam in sorted({tp.family_of(s.label) for s in first}):
        idx = [i for i in groups[c0] if tp.family_of(first[i].label) == fam]
        if not idx:
            continue
        ss = [first[i] for i in idx]
        row = {"family": fam, "models": len({s.label for s in ss})}
        for name in ("remeasure", "analytic", "xgboost"):
            acc = tp.evaluate([preds[name][i] for i in idx], ss, MIN_MS, TOL)
            row[f"{name} atoms<=10%"] = f"{pct(acc.atoms_within)} of {acc.atoms}"
            row[f"{name} model MAPE"] = f"{acc.model_mape:.1f}%"
        fam_rows.append(row)
    print(f"\nper held-out family at threads={c0[0]} load={c0[1]}:")
    print(table(fam_rows, list(fam_rows[0])))
    write_csv("predictor_families", fam_rows)

    # ---- plan regret ------------------------------------------------------------------------------
    opened = {}
    for lbl in sorted({s.label for s in first}):
        path, xs = zoo.torchscript(lbl)
        opened[lbl] = ts.load(str(path), xs)
    grid = dict(device_factors=(2, 5, 10, 20, 50, 100), bandwidths_mbps=(0.5, 1, 2, 5, 10, 20, 50, 100),
                rtts_ms=(5, 20, 50))
    if smoke():
        grid = dict(device_factors=(2, 20), bandwidths_mbps=(1, 10), rtts_ms=(5,))
    reg_rows, reg_cases, where = [], [], {}
    for c, idx in groups.items():
        per_model = collections.defaultdict(list)
        for i in idx:
            per_model[first[i].label].append(i)
        for name in ("remeasure", "analytic", "xgboost"):
            cases = []
            for lbl, ii in per_model.items():
                m = opened[lbl]
                meas, pr = [0.0] * m.num_atoms, [0.0] * m.num_atoms
                for i in ii:
                    meas[first[i].f.atom], pr[first[i].f.atom] = first[i].ms, preds[name][i]
                for rc in tp.plan_regret(m, pr, meas, **grid):
                    cases.append(rc)
                    where[id(rc)] = lbl
                    reg_cases.append({"predictor": name, "threads": c[0], "load": c[1], "model": lbl, **rc._asdict()})
            sp = [rc for rc in cases if rc.split]
            w = max(cases, key=lambda rc: rc.regret)
            reg_rows.append({"predictor": name, "threads": c[0], "load": c[1], "cases": len(cases),
                             "mean regret": pct(statistics.fmean(rc.regret for rc in cases)),
                             "worst": pct(max(rc.regret for rc in cases)),
                             "split cases": len(sp),
                             "split mean": pct(statistics.fmean(rc.regret for rc in sp)) if sp else "-",
                             "split worst": pct(max(rc.regret for rc in sp)) if sp else "-",
                             "cases > 1%": sum(rc.regret > 0.01 for rc in cases),
                             "worst at": f"{where[id(w)]} x{w.device_factor:g} {w.bandwidth_mbps:g}Mb/s {w.rtt_ms:g}ms"})
    print(f"\nplan regret (plan from predicted costs, priced with measured; device factors {grid['device_factors']}, "
          f"bandwidths {grid['bandwidths_mbps']} Mbit/s, rtt {grid['rtts_ms']} ms; targets: mean <= 1%, worst <= 5%, "
          f">= 50 split cases):")
    print(table(reg_rows, list(reg_rows[0])))
    write_csv("predictor_regret", reg_rows)
    split_models = collections.Counter(r["model"] for r in reg_cases
                                       if r["split"] and r["predictor"] == "xgboost" and (r["threads"], r["load"]) == c0)
    print("split-optimal cases per model (xgboost rows, first context):", dict(split_models))

    # ---- few-shot transfer ------------------------------------------------------------------------------
    src = [s for s in first if ctx_of(s) == c0]
    base = tp.train(src, kind="xgboost")
    fs_rows = []
    for tgt in ctxs[1:]:
        pool = [s for s in first if ctx_of(s) == tgt]
        big = [s for s in pool if s.ms >= MIN_MS]
        for k in (10, 20, 30):
            if k >= len(big):
                continue
            res = collections.defaultdict(list)
            for draw in range(args.draws):
                rng = random.Random(1000 * k + draw)
                shots = rng.sample(big, k)
                chosen = {key(s) for s in shots}
                rest = [s for s in pool if key(s) not in chosen]
                res["remeasure"].append(tp.evaluate([ref[key(s)] for s in rest], rest, MIN_MS, TOL).atoms_within)
                res["no adaptation"].append(tp.evaluate(base, rest, MIN_MS, TOL).atoms_within)
                for how in ("trees", "scale"):
                    q = tp.adapt(base, shots, kind=how)
                    res[how].append(tp.evaluate(q, rest, MIN_MS, TOL).atoms_within)
                res["xgboost on the k atoms only"].append(tp.evaluate(tp.train(shots, kind="xgboost"), rest,
                                                                      MIN_MS, TOL).atoms_within)
            ceil = statistics.median(res["remeasure"])
            for how, v in res.items():
                fs_rows.append({"target": f"threads={tgt[0]} load={tgt[1]}", "k atoms": k, "method": how,
                                "atoms<=10% (median of draws)": pct(statistics.median(v)),
                                "min-max": f"{pct(min(v))}-{pct(max(v))}",
                                "x ceiling": "" if how == "remeasure" else f"{statistics.median(v) / max(ceil, 1e-9):.2f}"})
    print(f"\nfew-shot learning curve (XGBoost trained on threads={c0[0]} load={c0[1]} only, all models; "
          f"k atoms >= {MIN_MS} ms measured on the target, {args.draws} random draws; scored on the target's other atoms; "
          f"target after 20 atoms: >= {TARGETS['fewshot']} x ceiling):")
    if fs_rows:
        print(table(fs_rows, list(fs_rows[0])))
        write_csv("predictor_fewshot", fs_rows)
    else:
        print("(no target context: give two contexts or more)")
    print(f"\nprofiling {t_collect:.0f} s, leave-one-family-out training {t_lofo:.1f} s")
    print("wrote", ", ".join(str(RESULTS / (f"predictor{n}.smoke.csv" if smoke() else f"predictor{n}.csv"))
                             for n in ("", "_families", "_regret", "_fewshot", "_profiles")))


if __name__ == "__main__":
    main()
