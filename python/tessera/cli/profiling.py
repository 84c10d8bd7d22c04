"""``tessera profile | machine``: every atom measured here; is this machine steady enough to profile on?"""
from __future__ import annotations

import os

from ..profiling import canary_ms, machine_check, profile
from .args import add_model_args, open_model


def cmd_profile(args):
    m, xs = open_model(args.model, args.shapes, args.dtype)
    before = canary_ms(5)
    t = profile(m, xs, threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                progress=not args.quiet, label=os.path.basename(args.model), settle=args.settle)
    after = canary_ms(5)
    print(t.summary(top=args.top))
    change = max(before, after) / min(before, after)
    print(f"machine state: canary {before:.3f} ms before, {after:.3f} ms after the profile" +
          (f" - CHANGED x{change:.2f}: the machine changed speed during the profile; check it with "
           "`tessera machine`, profile with --settle 0.2" if change > 1.25 else " (steady)"))
    if args.json:
        t.save(args.json)
        print(f"wrote {args.json}")


def cmd_machine(args):
    r = machine_check(args.seconds, args.window, sibling=args.sibling, progress=not args.quiet)
    print(r.report())


def register(sub) -> None:
    sp = sub.add_parser("profile", help="measure every atom of a model here (median ms, spread, bytes)")
    add_model_args(sp)
    sp.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    sp.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    sp.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    sp.add_argument("--settle", type=float, default=0.0,
                    help="count only rounds taken in the machine's reference state (canary within this "
                         "tolerance, e.g. 0.1; default 0 = off)")
    sp.add_argument("--top", type=int, default=20, help="show the N slowest atoms (-1: all, in order)")
    sp.add_argument("--json", help="write the cost table to this JSON file")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_profile)
    mp_ = sub.add_parser("machine", help="is this machine steady enough to profile on? (the canary over time)")
    mp_.add_argument("--seconds", type=float, default=10.0, help="how long to watch (default 10)")
    mp_.add_argument("--window", type=float, default=1.0, help="seconds per window (default 1)")
    mp_.add_argument("--sibling", action="store_true",
                     help="also watch with the other CPU busy (do the CPUs share a core?)")
    mp_.add_argument("--quiet", action="store_true", help="no progress bar")
    mp_.set_defaults(func=cmd_machine)
