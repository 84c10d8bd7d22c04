"""Latency predictor accuracy on models never seen in training (this machine).

Profiles a training set and a test set of torchvision models under every context
(intra-op threads x background load), trains the analytic and the XGBoost predictors on
the training models only, and scores them on the test models, per context:

  atoms<=10%   share of test atoms (median >= 0.1 ms) predicted within +-10% of measured
  models<=10%  share of test models whose predicted sum of atoms is within +-10% of the
               measured sum of atoms (what planners add up)
  whole<=10%   the same against the whole model measured as one block
  MAPE         mean absolute percentage error over those atoms / models

Two references measured in the same run: `remeasure` scores a second profile of the test
models against the first (the noise floor of the labels: no predictor can beat it), and
`lookup` is the measured table itself. A learning curve reports how many profiling runs
(one model in one context) XGBoost needs to reach its accuracy.

    .venv/bin/python bench/bench_predictor.py [--repeats 15] [--threads 1 2] [--loads 0 0.5]
"""
from __future__ import annotations

import argparse
import collections
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402,F401
from tessera import predict as tp  # noqa: E402

from common import RESULTS, smoke, table, write_csv  # noqa: E402

Prof = collections.namedtuple("Prof", "set label threads load model_ms settled rounds_discarded waited_s")
TRAIN = ["alexnet", "vgg11", "resnet18", "resnet50", "googlenet", "densenet121", "mobilenet_v2", "squeezenet1_0"]
TEST = ["vgg16", "resnet152", "inception_v3", "mobilenet_v3_small", "efficientnet_b0"]


def score(pred_ms, samples, tables, min_ms=0.1, tol=0.10):
    """Per context (threads, load): tessera's accuracy (tp.evaluate's C++ scorer) of the atoms and
    of each model's predicted sum of atoms, plus what it does not report: that predicted sum
    against the whole model measured as one block (the tables' model_ms)."""
    by_ctx = collections.defaultdict(lambda: ([], []))
    for s, p in zip(samples, pred_ms):
        ss, ps = by_ctx[(s.ctx.threads, s.ctx.background_load)]
        ss.append(s)
        ps.append(p)
    whole = {(lbl, t.threads, t.load): t.model_ms for lbl, t in tables}
    rows = {}
    for ctx, (ss, ps) in sorted(by_ctx.items()):
        acc = tp.evaluate(ps, ss, min_ms, tol)  # the predictions already made: scored in C++
        summed = collections.defaultdict(float)  # label -> predicted sum of atoms
        for s, p in zip(ss, ps):
            summed[s.label] += p
        w = [abs(p - whole[(lbl, *ctx)]) / whole[(lbl, *ctx)] for lbl, p in summed.items()]
        rows[ctx] = {
            "atoms": acc.atoms,
            "atoms<=10%": f"{100 * acc.atoms_within:.1f}%",
            "atom MAPE": f"{acc.mape:.1f}%",
            "models<=10%": f"{round(acc.models_within * acc.models)}/{acc.models}",
            "model MAPE": f"{acc.model_mape:.1f}%",
            "whole<=10%": f"{sum(e <= tol for e in w)}/{len(w)}",
        }
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", nargs="+", default=TRAIN)
    ap.add_argument("--test", nargs="+", default=TEST)
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--loads", nargs="+", type=float, default=[0.0, 0.5])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--settle", type=float, default=0.2,
                    help="labels from the machine's reference state (canary tolerance; 0 = off)")
    ap.add_argument("--max-wait", type=float, default=20.0,
                    help="per profile, the longest wait (s) for the reference state (default 20)")
    ap.add_argument("--rescore", metavar="DIR", help="score the samples an earlier run saved in DIR "
                    "(bench/results) again, without profiling")
    ap.add_argument("--csv", default=None, help="also write the training samples here")
    args = ap.parse_args(argv)
    if smoke():
        args.train, args.test, args.threads, args.loads, args.repeats, args.warmup = (
            ["squeezenet1_0"], ["resnet18"], [1], [0.0], 2, 1)
    ts.set_threads(1)  # OpenMP and OpenBLAS
    print(f"train: {' '.join(args.train)}\ntest:  {' '.join(args.test)}\n"
          f"threads {args.threads}, background load {args.loads} cores (one busy-loop process per core, "
          f"5 ms duty cycle), {args.repeats} timed rounds after {args.warmup} warm-up per profile, batch 1")
    t0 = time.perf_counter()
    if args.rescore:  # the samples and machine states of an earlier run: score again, no profiling
        d = Path(args.rescore)
        train, test, again = (tp.read_samples(d / f"predictor_samples_{n}.csv") for n in ("train", "test", "again"))
        with open(d / "predictor_whole.csv") as f:
            profs = [Prof(r["set"], r["label"], int(r["threads"]), float(r["load"]), float(r["model_ms"]),
                          r["settled"] == "True", int(r["rounds_discarded"]), float(r.get("waited_s") or 0))
                     for r in csv.DictReader(f)]
    else:
        tabs = {"train": [], "test": [], "again": []}
        kw = dict(threads=args.threads, background_loads=args.loads, repeats=args.repeats, warmup=args.warmup, progress=True,
                  settle=args.settle, max_wait_s=args.max_wait)
        train = tp.collect(args.train, tables=tabs["train"], csv=args.csv, **kw)
        test = tp.collect(args.test, tables=tabs["test"], **kw)
        again = tp.collect(args.test, tables=tabs["again"], **kw)
        profs = [Prof(name, lbl, t.threads, t.background_load, t.model_ms, t.settled, t.rounds_discarded, t.waited_ms / 1e3)
                 for name, ts_ in tabs.items() for lbl, t in ts_]
        if not smoke():  # the raw samples and machine states, to score again offline (--rescore)
            RESULTS.mkdir(exist_ok=True)
            for name, ss in (("train", train), ("test", test), ("again", again)):
                tp.write_samples(RESULTS / f"predictor_samples_{name}.csv", ss)
            write_csv("predictor_whole", [{"set": name, "label": lbl, "threads": t.threads, "background_load": t.background_load,
                                           "model_ms": t.model_ms, "sum_atom_ms": t.sum_atom_ms,
                                           "canary_ms": t.canary_ms, "canary_reference_ms": t.canary_reference_ms,
                                           "rounds_discarded": t.rounds_discarded, "settled": t.settled,
                                           "waited_s": round(t.waited_ms / 1e3, 2)}
                                          for name, ts_ in tabs.items() for lbl, t in ts_])
    t_collect = time.perf_counter() - t0
    disc = sum(p.rounds_discarded for p in profs)
    print(f"machine state: {disc} rounds re-run outside the reference state over {len(profs)} profiles, "
          f"{sum(p.waited_s for p in profs):.0f} s waited for it; "
          f"{sum(not p.settled for p in profs)} profiles did not reach it (settle {args.settle:g})")
    tables = {name: [(p.label, p) for p in profs if p.set == name] for name in ("train", "test", "again")}
    settled = {name: {(p.label, p.threads, p.load) for p in profs if p.set == name and p.settled}
               for name in ("train", "test", "again")}

    def only_settled(samples, *names):
        return [s for s in samples if all((s.label, s.ctx.threads, s.ctx.background_load) in settled[n] for n in names)]

    rows = []
    results = {}
    key = lambda s: (s.label, s.f.atom, s.ctx.threads, s.ctx.background_load)  # noqa: E731
    ref = {key(s): s.ms for s in again}
    t0 = time.perf_counter()
    predictors = {kind: tp.train(train, kind=kind) for kind in ("analytic", "xgboost")}
    t_train = time.perf_counter() - t0
    results["remeasure"] = score([ref[key(s)] for s in test], test, tables["test"])
    for name, p in predictors.items():
        results[name] = score(list(p.predict(test).ms), test, tables["test"])
    results["xgboost (train set)"] = score(list(predictors["xgboost"].predict(train).ms), train, tables["train"])
    # the same on profiles taken in the reference machine state only (train, test and remeasure settled)
    s_train, s_test = only_settled(train, "train"), only_settled(test, "test")
    s_both = only_settled(test, "test", "again")
    if s_both:
        results["remeasure (settled)"] = score([ref[key(s)] for s in s_both], s_both, tables["test"])
    if s_train and s_test:
        for kind in ("analytic", "xgboost"):
            p = tp.train(s_train, kind=kind)
            results[f"{kind} (settled)"] = score(list(p.predict(s_test).ms), s_test, tables["test"])
    for name, per_ctx in results.items():
        for (t, load), r in per_ctx.items():
            rows.append({"predictor": name, "threads": t, "load": load, **r})
    cols = ["predictor", "threads", "load", "atoms", "atoms<=10%", "atom MAPE", "models<=10%", "model MAPE",
            "whole<=10%"]
    print()
    print(table(rows, cols))
    fb = sum(predictors["xgboost"].predict(test).fallback)
    print(f"xgboost analytic fallbacks on the test set (op kinds never trained on): {fb} of {len(test)} atoms")

    # learning curve: profiling runs (one model in one context) vs accuracy on the test set
    curve = []
    ctxs = len(args.threads) * len(args.loads)
    for k in sorted({1, 2, 4, len(args.train)}):
        if k > len(args.train):
            continue
        names = set(args.train[:k])
        sub = [s for s in train if s.label in names]
        p = tp.train(sub, kind="xgboost")
        acc = tp.evaluate(p, test)
        curve.append({"train models": k, "profiling runs": k * ctxs, "samples": len(sub),
                      "atoms<=10%": f"{100 * acc.atoms_within:.1f}%", "atom MAPE": f"{acc.mape:.1f}%",
                      "models<=10%": f"{100 * acc.models_within:.1f}%", "model MAPE": f"{acc.model_mape:.1f}%"})
    print("\nlearning curve (XGBoost, scored on all test contexts):")
    print(table(curve, list(curve[0])))
    print(f"\nprofiling {t_collect:.0f} s, training {t_train:.1f} s")
    print("wrote", write_csv("predictor", rows), write_csv("predictor_curve", curve))  # smoke: *.smoke.csv


if __name__ == "__main__":
    main()
