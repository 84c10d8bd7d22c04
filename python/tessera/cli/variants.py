"""``tessera variants MODEL --make ...``: each variant's fidelity (or accuracy on digits), size,
cost and bytes at the cut, side by side.

    tessera variants zoo:mobilenet_v2 --make wire_int8 int8 res160
    tessera variants digits --make wire_int8 int8 int8_static prune30     # accuracy, labelled data

MODEL: ``zoo:NAME`` (random weights: fidelity against fp32 on --inputs random inputs), ``digits``
(a small CNN trained here on scikit-learn's digits: top-1 accuracy on the validation split), or a
TorchScript file / atom store (wire_* variants only: the others need the eager module).
"""
from __future__ import annotations

import sys


def cmd_variants(args):
    import torch

    import tessera as ts
    from tessera import datasets, zoo
    from .args import open_model

    ts.set_threads(args.threads)
    train = None
    if args.model == "digits":
        data = datasets.digits(size=args.digits_size)
        module, xs = datasets.digits_cnn(data), (data.val.x[:1],)
        train = data.train
    elif args.model.startswith("zoo:"):
        module, xs = zoo.build(args.model[4:])
    else:
        module, xs = open_model(args.model, args.input_shape)
    vs = ts.variants(module, xs, make=args.make, train=train)
    vs.profile(device_slowdown=args.device_slowdown, repeats=args.repeats)
    if args.model == "digits":
        ts.accuracy(vs, data.val)
        metric = "top1"
    else:
        g = torch.Generator().manual_seed(0)
        inputs = [tuple(torch.randn(x.shape, generator=g) for x in xs) for _ in range(args.inputs)]
        ts.fidelity(vs, inputs)
        metric = "agreement"
    ctx = ts._core.Context(bandwidth_mbps=args.bandwidth, rtt_ms=args.rtt)
    rows = []
    for v in vs:
        cm = vs.cost_model(v)
        plan = ts._core.make_plan("mincut", cm, ctx)
        placement = list(plan.placement)
        loss = vs.measure(v, placement)
        crossing = [t for t in plan.transfers if t.from_target == 0]
        rows.append({
            "variant": v.name, metric: v.score, "loss_%": 100 * loss, "params_MB": v.param_bytes / 1e6,
            "device_ms": sum(cm.compute_ms[0]), "server_ms": sum(cm.compute_ms[1]),
            "split": f"{sum(1 for p in placement if p == 0)}/{len(placement)} on device",
            "cut_bytes": int(sum(t.bytes for t in crossing)), "codec": v.codec or "raw",
            "latency_ms": plan.latency_ms})
    cols = list(rows[0])
    print(f"{args.model}: {len(vs)} variants; device {args.device_slowdown:g}x this machine (1 thread), server = "
          f"this machine; link {args.bandwidth:g} Mbit/s, rtt {args.rtt:g} ms; {metric} "
          f"{'on the validation split' if metric == 'top1' else f'against fp32 on {args.inputs} random inputs'}")
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in cols]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(_fmt(r[c]).rjust(w) for c, w in zip(cols, widths)))


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def register(sub) -> None:
    sp = sub.add_parser("variants", help="accuracy-aware variants: fidelity / accuracy, size, cost, bytes at the cut")
    sp.add_argument("model", help="zoo:NAME, digits, a TorchScript file or an atom store")
    sp.add_argument("--make", nargs="+", required=True,
                    help="variants: wire_<fp16|bf16|int8|int8_channel|zstd>, int8, int8_static, prune<pct>, "
                         "res<pixels>, A+wire_<codec>")
    sp.add_argument("--input-shape", action="append", default=None, help="for a TorchScript file: 1x3x224x224")
    sp.add_argument("--inputs", type=int, default=8, help="random inputs for fidelity (zoo models)")
    sp.add_argument("--digits-size", type=int, default=8, help="digits: image side (8 = the data set's own)")
    sp.add_argument("--bandwidth", type=float, default=5.0, help="Mbit/s for the split shown")
    sp.add_argument("--rtt", type=float, default=20.0, help="round trip ms for the split shown")
    sp.add_argument("--device-slowdown", type=float, default=10.0, help="the device is this many times slower")
    sp.add_argument("--repeats", type=int, default=3, help="profiling rounds")
    sp.add_argument("--threads", type=int, default=1)
    sp.set_defaults(func=cmd_variants)


if __name__ == "__main__":  # pragma: no cover
    from tessera.cli import main
    sys.exit(main(["variants", *sys.argv[1:]]))
