"""``tessera predictor collect | train | eval``: latency predictors from profiled samples."""
from __future__ import annotations

import time

from .. import _core
from ..predict import collect, evaluate, kinds, load, read_samples, train
from .args import positive_int


def _add_sample_args(sp, need_models: bool):
    if not need_models:  # collect always profiles; train and eval can read an earlier collection
        sp.add_argument("--samples", help="samples CSV (from `tessera predictor collect`)")
    sp.add_argument("--models", nargs="+", default=[], help="zoo model names to profile now")
    sp.add_argument("--threads", nargs="+", type=positive_int, default=[1], help="thread counts (default 1)")
    sp.add_argument("--background-loads", "--loads", dest="background_loads", nargs="+", type=float, default=[0.0],
                    help="background load levels: CPU cores kept busy by other work (default 0)")
    sp.add_argument("--repeats", type=positive_int, default=20, help="timed rounds per profile (default 20)")
    sp.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    sp.add_argument("--settle", type=float, default=0.2,
                    help="profile in the machine's reference state: canary tolerance (default 0.2; 0 = off)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")


def _cli_samples(args):
    if getattr(args, "samples", None):
        return read_samples(args.samples)
    if not args.models:
        raise _core.InvalidArgumentError("give --samples CSV or --models NAME ... (the model list is empty)")
    return collect(args.models, threads=args.threads, background_loads=args.background_loads, repeats=args.repeats,
                   warmup=args.warmup, progress=not args.quiet, settle=args.settle)


def cmd_collect(args):
    if not args.models:
        raise _core.InvalidArgumentError("give --models NAME ... (the model list is empty)")
    s = collect(args.models, threads=args.threads, background_loads=args.background_loads, repeats=args.repeats, warmup=args.warmup,
                csv=args.out, progress=not args.quiet, settle=args.settle)
    print(f"wrote {len(s)} samples to {args.out}")


def cmd_train(args):
    samples = _cli_samples(args)
    t0 = time.perf_counter()
    p = train(samples, kind=args.kind)
    p.save(args.out)
    acc = evaluate(p, samples)
    print(f"trained {args.kind} on {len(samples)} samples in {time.perf_counter() - t0:.1f} s; "
          f"on its training set: {acc.atoms_within:.1%} of atoms within +-10%, MAPE {acc.mape:.1f}%; wrote {args.out}")


def cmd_eval(args):
    p = load(args.predictor)
    samples = _cli_samples(args)
    acc = evaluate(p, samples, min_ms=args.min_ms)
    print(f"predictor {p.kind()} ({args.predictor}) on {len(samples)} samples:")
    print(f"  atoms >= {args.min_ms} ms: {acc.atoms}, within +-10%: {acc.atoms_within:.1%}, MAPE {acc.mape:.1f}%")
    print(f"  models (sum of atoms): {acc.models}, within +-10%: {acc.models_within:.1%}, "
          f"MAPE {acc.model_mape:.1f}%")
    print(f"  analytic fallbacks (op kinds never seen): {acc.fallbacks}")


def register(sub) -> None:
    sp = sub.add_parser("predictor", help="collect samples, train and evaluate latency predictors")
    ps = sp.add_subparsers(dest="predictor_command", required=True)
    c = ps.add_parser("collect", help="profile models under several contexts and write a samples CSV")
    _add_sample_args(c, True)
    c.add_argument("--out", required=True, help="samples CSV to write")
    c.set_defaults(func=cmd_collect)
    t = ps.add_parser("train", help="train a predictor on samples and save it")
    _add_sample_args(t, False)
    t.add_argument("--kind", default="xgboost", choices=kinds())
    t.add_argument("--out", required=True, help="predictor file to write (JSON)")
    t.set_defaults(func=cmd_train)
    e = ps.add_parser("eval", help="accuracy of a saved predictor on samples")
    e.add_argument("predictor", help="predictor file (from `tessera predictor train`)")
    _add_sample_args(e, False)
    e.add_argument("--min-ms", type=float, default=0.1, help="atoms shorter than this are not scored (default 0.1)")
    e.set_defaults(func=cmd_eval)
