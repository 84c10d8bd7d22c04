"""``tessera plan-pipeline MODEL --nodes nodes.json``: every pipeline planner side by side; and
``tessera run MODEL --pipeline nodes.json``: stream inputs through the nodes' servers.

nodes.json names the machines (the first is the device: it holds the inputs, the results return to
it) and the links between them; pairs without a link are unreachable:

    {"nodes": [{"name": "phone", "slowdown": 10, "memory_mb": 300},
               {"name": "edge-a", "speed": 1.0, "endpoint": "tcp://10.0.0.2:5555"},
               {"name": "edge-b", "speed": 0.5, "endpoint": "tcp://10.0.0.3:5555"},
               {"name": "cloud", "costs": "cloud.json", "endpoint": "tcp://..."}],
     "links": [{"from": "phone", "to": "edge-a", "bandwidth_mbps": 20, "rtt_ms": 10},
               {"from": "edge-a", "to": "edge-b", "bandwidth_mbps": 1000, "rtt_ms": 1}],
     "symmetric": true}

A node's costs: ``speed`` (or ``slowdown`` = 1 / speed) over a profile of this machine taken at start
(1 thread), or ``costs``: a cost table JSON (``tessera profile --json``) of that machine.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ALGORITHMS = ("dp", "pso_dp", "exhaustive", "equal_layers")


def read_network(path, model, reference):
    """A ts.Network from nodes.json; `reference` is this machine's CostTable (for speed/slowdown)."""
    import tessera as ts

    p = Path(path)
    try:
        spec = json.loads(p.read_text())
    except FileNotFoundError:
        raise SystemExit(f"tessera: {path}: no such nodes file") from None
    except json.JSONDecodeError as e:
        raise ts.InvalidArgumentError(f"{path}: not JSON: {e}") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("nodes"), list) or not spec["nodes"]:
        raise ts.InvalidArgumentError(f"{path}: needs a non-empty \"nodes\" list (the first is the device)")
    nodes = []
    for i, n in enumerate(spec["nodes"]):
        if not isinstance(n, dict) or not n.get("name"):
            raise ts.InvalidArgumentError(f"{path}: node {i} needs a \"name\"")
        name = str(n["name"])
        known = {"name", "speed", "slowdown", "costs", "memory_mb", "endpoint"}
        extra = sorted(set(n) - known)
        if extra:
            raise ts.InvalidArgumentError(f"{path}: node '{name}' has unknown field(s) {extra} "
                                          f"(known: {', '.join(sorted(known))})")
        given = [k for k in ("speed", "slowdown", "costs") if k in n]
        if len(given) > 1:
            raise ts.InvalidArgumentError(f"{path}: node '{name}' gives {' and '.join(given)}: give one")
        kw = {"memory_mb": n.get("memory_mb"), "endpoint": n.get("endpoint", "")}
        if "costs" in n:
            ct = ts.CostTable.read(p.parent / n["costs"] if not Path(n["costs"]).is_absolute() else n["costs"])
            if ct.model_hash and ct.model_hash != model.hash:
                raise ts.InvalidArgumentError(f"{path}: node '{name}': {n['costs']} was profiled on model "
                                              f"{ct.model_hash[:16]}, not this one ({model.hash[:16]})")
            nodes.append(ts.Node(name, costs=list(ct.atom_ms), **kw))
        else:
            speed = float(n["speed"]) if "speed" in n else 1.0 / float(n.get("slowdown", 1.0))
            if not speed > 0:
                raise ts.InvalidArgumentError(f"{path}: node '{name}': speed must be > 0")
            nodes.append(ts.Node(name, speed=speed, reference=reference, **kw))
    links = {}
    for i, link in enumerate(spec.get("links", [])):
        try:
            links[(link["from"], link["to"])] = (float(link["bandwidth_mbps"]), float(link.get("rtt_ms", 0.0)))
        except (KeyError, TypeError, ValueError):
            raise ts.InvalidArgumentError(f"{path}: link {i} needs \"from\", \"to\" and a number "
                                          f"\"bandwidth_mbps\" (and \"rtt_ms\")") from None
    return ts.Network(nodes, links, symmetric=bool(spec.get("symmetric", True)))


def _stages(plan) -> str:
    return " | ".join(f"{n}:{len(a)}" for n, a in plan.stages)


def cmd_plan_pipeline(args):
    import tessera as ts
    from .args import open_model

    m, xs = open_model(args.model, args.shapes, args.dtype)
    t0 = time.perf_counter()
    ct = ts.profile(m, xs, threads=1, repeats=args.repeats, warmup=2)
    prof_s = time.perf_counter() - t0
    net = read_network(args.nodes, m, ct)
    rows = []
    for algo in args.algorithms:
        t0 = time.perf_counter()
        p = ts.plan_pipeline(m, net, objective=args.objective, algorithm=algo)
        ms = (time.perf_counter() - t0) * 1e3
        rows.append((algo, p, ms))
    print(f"{args.model}: {m.num_atoms} atoms over {len(net.nodes)} nodes ({', '.join(net.names)}); this machine "
          f"profiled in {prof_s:.1f} s (1 thread), objective {args.objective}")
    cols = ["algorithm", "status", "fps", "latency ms", "bottleneck", "plan ms", "stages (node:atoms)"]
    body = [[a, p.status, f"{p.throughput_fps:.2f}", f"{p.latency_ms:.1f}", p.bottleneck or p.reason, f"{ms:.2f}",
             _stages(p) if p.ok() else "-"] for a, p, ms in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in body:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    ok = [(a, p) for a, p, _ in rows if p.ok()]
    if not ok:
        raise SystemExit(f"tessera plan-pipeline: no feasible plan: {rows[0][1].reason}")
    best = max(ok, key=lambda ap: ap[1].throughput_fps if args.objective == "throughput" else -ap[1].latency_ms)
    print(f"\nbest: {best[0]}\n{best[1].explain()}")


def run_pipeline(args, m, xs, ct):
    """`tessera run MODEL --pipeline nodes.json`: plan with pso_dp, stream --requests inputs, check each."""
    import torch

    import tessera as ts

    net = read_network(args.pipeline, m, ct)
    plan = ts.plan_pipeline(m, net, algorithm=args.plan or "pso_dp")
    if not plan.ok():
        raise SystemExit(f"tessera run: no pipeline plan: {plan.status}: {plan.reason}")
    print(plan.explain())
    pipe = ts.Pipeline(m, plan, in_flight=args.in_flight, emulation=args.emulation, timeout_ms=args.timeout_ms)
    ref = m.run_flat(xs)
    frames = [xs] * args.requests
    wrong = 0
    for y in pipe._core.map([list(f) for f in frames]):
        wrong += not all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(y, ref))
    st = pipe.stats()
    print(f"{'stage':<6} {'node':<12} {'frames':>6} {'compute ms':>10} {'accounted':>9} {'queue ms':>8} "
          f"{'link in':>8} {'link back':>9}")
    for i, s in enumerate(st.stages):
        print(f"{i:<6} {s.node:<12} {s.frames:>6} {s.compute_ms:>10.1f} {s.accounted_ms:>9.1f} {s.queue_ms:>8.2f} "
              f"{s.link_in_ms:>8.1f} {s.link_back_ms:>9.1f}")
    print(f"{st.frames} requests, {args.in_flight} in flight: {st.wall_fps:.2f} fps wall-clock on this machine, "
          f"{st.accounted_fps:.2f} fps accounted (every node on its own machine; planned {plan.throughput_fps:.2f}), "
          f"bottleneck {st.bottleneck}; {st.fallbacks} with fallback, {wrong} wrong outputs (each checked against "
          f"the unsplit model)")
    if wrong:
        raise SystemExit(1)


def register(sub):
    from .args import add_model_args, positive_int
    sp = sub.add_parser("plan-pipeline", help="place a model over a device and several servers (every algorithm)")
    add_model_args(sp)
    sp.add_argument("--nodes", required=True, help="nodes.json: the nodes and links (see tessera.pipeline_cli)")
    sp.add_argument("--objective", choices=["throughput", "latency"], default="throughput")
    sp.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    sp.add_argument("--repeats", type=positive_int, default=3, help="profiling repeats (default 3)")
    sp.set_defaults(func=cmd_plan_pipeline)


if __name__ == "__main__":  # pragma: no cover
    from tessera.cli import main
    sys.exit(main(["plan-pipeline", *sys.argv[1:]]))
