"""How well can the next request's bandwidth be predicted from the past ones? (issue 15)

Every shared trace (norway-hsdpa, fcc) sampled every --period trace seconds over its first
--horizon seconds; each sample predicted from the --history samples before it by simple
predictors, errors in log-bandwidth (0.18 = 20%). A policy that plans on past measurements
can capture the oracle's gain only as far as such a prediction is right; the simulator's
oracle_prev (the oracle told the previous request's bandwidth) is the "last" row in action.

    .venv/bin/python bench/bench_bandwidth_prediction.py [--traces-dir ../shared/traces] [--period 2]
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402

from common import smoke, table, write_csv  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

PREDICTORS = {
    "last": lambda h: h[-1],
    "mean": statistics.fmean,
    "median": statistics.median,
    "harmonic": lambda h: -math.log(statistics.fmean(math.exp(-v) for v in h)),
    "ewma 0.5": lambda h: _ewma(h, 0.5),
    "linear trend": lambda h: h[-1] + (h[-1] - h[0]) / max(1, len(h) - 1),
}


def _ewma(h, a):
    e = h[0]
    for v in h[1:]:
        e = (1 - a) * e + a * v
    return e


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces-dir", default=str(ROOT.parent / "shared" / "traces"))
    ap.add_argument("--period", type=float, default=2.0, help="trace seconds between requests")
    ap.add_argument("--history", type=int, default=3, help="past samples a predictor sees")
    ap.add_argument("--horizon", type=float, default=60.0, help="trace seconds used from each trace")
    args = ap.parse_args(argv)
    files = sorted(Path(args.traces_dir).glob("*/*.txt"))
    if not files:
        raise SystemExit(f"no traces under {args.traces_dir}: pass --traces-dir")
    if smoke():
        files = files[:4]
    err = {k: [] for k in PREDICTORS}
    for f in files:
        link = ts.Link(trace=f)
        n = int(min(link.duration_s or args.horizon, args.horizon) / args.period)
        xs = [math.log(max(link.bandwidth_at(i * args.period), 1e-2)) for i in range(n)]
        for i in range(args.history, len(xs)):
            for k, fn in PREDICTORS.items():
                err[k].append(abs(fn(xs[i - args.history:i]) - xs[i]))
    rows = [{"predictor": k, "median_log_error": f"{statistics.median(v):.3f}", "mean_log_error": f"{statistics.fmean(v):.3f}",
             "within_20%": f"{sum(e < math.log(1.2) for e in v) / len(v):.2f}",
             "within_2x": f"{sum(e < math.log(2) for e in v) / len(v):.2f}"} for k, v in err.items()]
    print(f"{len(files)} traces, one sample per {args.period:g} s over {args.horizon:g} s, {args.history} past samples, "
          f"{len(err['last'])} predictions")
    print(table(rows, list(rows[0])))
    print("wrote", write_csv("bench_bandwidth_prediction", rows))


if __name__ == "__main__":
    main()
