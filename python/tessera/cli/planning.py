"""``tessera plan MODEL``: every planner side by side for one context.

    tessera plan zoo:resnet50 --bandwidth 5.85 --rtt 20 [--device-slowdown 10] [--memory-mb 64]
    tessera plan model.pt --input-shape 1x3x224x224 --costs-device dev.json --costs-server srv.json

Costs come from profiling this machine (``ts.profile``, 1 thread, 5 repeats):
server = the measured medians, device = server x --device-slowdown; or from two
cost-table JSON files (``ts.CostTable.save`` / ``tessera profile --json FILE``).
gads plans under --memory-mb (device parameter budget); the other planners
ignore it and report ``infeasible`` when they break it.
"""
from __future__ import annotations

import math
import sys
import time


def _ranges(atoms, limit=4):
    """[0,1,2,5,6] -> '0-2,5-6' (at most `limit` ranges)."""
    out, i = [], 0
    while i < len(atoms):
        j = i
        while j + 1 < len(atoms) and atoms[j + 1] == atoms[j] + 1:
            j += 1
        if len(out) == limit:
            out.append("...")
            break
        out.append(str(atoms[i]) if i == j else f"{atoms[i]}-{atoms[j]}")
        i = j + 1
    return ",".join(out) or "-"


def cut_summary(plan) -> str:
    """Where the cut falls: device atom ranges, or the baseline's name."""
    placement = plan.placement
    dev = [a for a, t in enumerate(placement) if t == 0]
    if len(dev) == len(placement):
        return "all on device"
    if not dev:
        return "all on server"
    sent = [t for t in plan.transfers if t.from_target == 0]
    return f"device atoms {_ranges(dev)}; {len(sent)} value(s) up"


def table(plans, times_ms=None) -> str:
    cols = ["planner", "status", "device", "server", "latency ms", "fps", "sent MB", "dev mem MB", "plan ms", "cut"]
    rows = []
    for name, p in plans.items():
        n_srv = sum(1 for t in p.placement if t != 0)
        rows.append([name, p.status, str(len(p.placement) - n_srv), str(n_srv), f"{p.latency_ms:.2f}",
                     f"{p.throughput_fps:.2f}", f"{p.transfer_bytes / 1e6:.3f}", f"{p.device_memory_bytes / 1e6:.2f}",
                     f"{times_ms[name]:.2f}" if times_ms else "", cut_summary(p)])
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 9) else c.rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
    for r in rows:
        lines.append("  ".join(v.ljust(w) if i in (0, 1, 9) else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def cmd_plan(args):

    import tessera as ts
    from .args import open_model
    from .. import planning as tplan

    if (args.costs_device is None) != (args.costs_server is None):
        raise SystemExit("tessera plan: give both --costs-device and --costs-server, or neither (profile here)")
    if args.explain is not None and args.explain not in tplan.planner_names():
        raise SystemExit(f"tessera plan: --explain {args.explain}: not a planner; "
                         f"one of {', '.join(tplan.planner_names())}")
    m, xs = open_model(args.model, args.shapes, args.dtype)
    if args.costs_device:
        tables = {}
        for role, path in (("device", args.costs_device), ("server", args.costs_server)):
            t = tables[role] = ts.CostTable.read(path)
            if t.model_hash and t.model_hash != m.hash:  # a table of another model: refuse, name both
                raise ts.InvalidArgumentError(f"{path} ({role} costs) was profiled on model {t.model_hash[:16]}, "
                                              f"not on {args.model} ({m.hash[:16]})")
        dev, srv = tables["device"].atom_ms, tables["server"].atom_ms
        origin = f"cost tables {args.costs_device} (device), {args.costs_server} (server)"
    else:
        t0 = time.perf_counter()
        ct = ts.profile(m, xs, threads=args.threads, repeats=args.repeats, warmup=2)
        srv = ct.atom_ms
        dev = [args.device_slowdown * c for c in srv]
        origin = (f"profiled here in {time.perf_counter() - t0:.1f} s ({args.threads} thread(s), {args.repeats} repeats); "
                  f"device = server x {args.device_slowdown:g}")
    costs = {"device": dev, "server": srv}
    budget = math.inf if args.memory_mb is None else args.memory_mb * 1e6
    constraints = {"device_memory_bytes": budget}
    plans, times = {}, {}
    for name in tplan.planner_names():
        t0 = time.perf_counter()
        plans[name] = tplan.plan(m, costs, bandwidth_mbps=args.bandwidth, rtt_ms=args.rtt, algorithm=name,
                                 constraints=constraints, server_load=args.server_load)
        times[name] = (time.perf_counter() - t0) * 1e3
    print(f"{args.model}: {m.num_atoms} atoms, {sum(m.dag().param_bytes) / 1e6:.1f} MB of parameters; "
          f"bandwidth {args.bandwidth:g} Mbit/s, rtt {args.rtt:g} ms, server load {args.server_load:g}"
          + (f", device memory budget {args.memory_mb:g} MB" if args.memory_mb is not None else ""))
    print(f"costs: {origin}; device {sum(dev):.1f} ms, server {sum(srv):.1f} ms in total")
    print(table(plans, times))
    best = min(plans, key=lambda k: (round(plans[k].latency_ms, 6) if plans[k].ok else math.inf,
                                      plans[k].status != "optimal"))
    print(f"\nlowest predicted latency: {best}")
    if args.explain:
        print(plans[args.explain].explain())


def register(sub):
    from .args import add_model_args, positive_float, positive_int
    sp = sub.add_parser("plan", help="every planner's placement, latency, throughput side by side")
    add_model_args(sp)
    sp.add_argument("--bandwidth", type=positive_float, required=True, help="uplink bandwidth, Mbit/s")
    sp.add_argument("--rtt", type=float, default=0.0, help="round-trip time, ms (default 0)")
    sp.add_argument("--server-load", type=positive_float, default=1.0, help="server slowdown factor (default 1)")
    sp.add_argument("--device-slowdown", type=positive_float, default=10.0,
                    help="device ms = profiled ms x this (default 10: a phone-class device)")
    sp.add_argument("--memory-mb", type=float, default=None, help="device memory budget for parameters, MB (gads)")
    sp.add_argument("--costs-device", default=None, help="cost table JSON of the device (instead of profiling)")
    sp.add_argument("--costs-server", default=None, help="cost table JSON of the server (instead of profiling)")
    sp.add_argument("--threads", type=positive_int, default=1, help="profiling threads (default 1)")
    sp.add_argument("--repeats", type=positive_int, default=5, help="profiling repeats (default 5)")
    sp.add_argument("--explain", default=None, metavar="PLANNER", help="also print this planner's explanation")
    sp.set_defaults(func=cmd_plan)


if __name__ == "__main__":  # pragma: no cover
    from tessera.cli import main
    sys.exit(main(["plan", *sys.argv[1:]]))
