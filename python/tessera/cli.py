"""The ``tessera`` command line.

    tessera inspect MODEL [--input-shape 1x3x224x224]     op / atom table with shapes and bytes
    tessera atomize MODEL DIR [--input-shape ...]          write an atom store
    tessera zoo NAME [DIR]                                 trace a torchvision/zoo model to TorchScript
    tessera profile MODEL [--threads N --repeats R]        measure every atom here (median, spread)
    tessera machine [--seconds 10 --sibling]               is this machine steady enough to profile on?
    tessera predictor collect|train|eval ...               latency predictors (samples CSV, train, accuracy)
    tessera plan MODEL --bandwidth MBPS [--rtt MS]         every planner side by side (profiled costs)
    tessera serve REPOSITORY [--bind ENDPOINT]             edge server for a repository of atom stores
    tessera run MODEL --server ENDPOINT [--plan mincut]     a split with a server, every output checked
        [--adaptive --trace FILE]                           ... re-planning over a replayed bandwidth trace
    tessera keygen [--out PREFIX]                          CURVE key pair
    tessera variants MODEL --make wire_int8 int8 res160    variants: fidelity/accuracy, size, cost, cut bytes

MODEL is a TorchScript file (give --input-shape, repeatable, for each input;
--dtype for non-float inputs), an atom store directory, or ``zoo:NAME`` for a
model of :mod:`tessera.zoo` (resnet50, googlenet, transformer, ...).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _shape(text: str):
    try:
        dims = [int(d) for d in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad shape '{text}': expected sizes joined by 'x', e.g. 1x3x224x224")
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"bad shape '{text}': sizes must be positive")
    return dims


def open_model(spec: str, shapes=None, dtype: str = "float32"):
    """Open MODEL as the CLI understands it; returns (tessera.Model, example inputs)."""
    import torch

    import tessera as ts
    from tessera import zoo

    if spec.startswith("zoo:") or Path(spec).is_dir():
        if shapes or dtype != "float32":  # their inputs are known: say so rather than ignore the flags
            print(f"tessera: {spec}: --input-shape/--dtype ignored (the model's own example inputs are used)",
                  file=sys.stderr)
    if spec.startswith("zoo:"):
        path, xs = zoo.torchscript(spec[4:])
        return ts.load(str(path), xs), xs
    p = Path(spec)
    if p.is_dir():
        m = ts.Model.open(p)
        xs = tuple(torch.zeros(m.graph.values[v].shape, dtype=getattr(torch, m.graph.values[v].dtype))
                   for v in m.graph.inputs)
        return m, xs
    if not shapes:
        raise SystemExit(f"tessera: {spec}: give the example input shape with --input-shape, e.g. 1x3x224x224")
    xs = tuple(torch.randn(s).to(getattr(torch, dtype)) for s in shapes)
    return ts.load(str(p), xs), xs


def _int_at_least(text: str, lowest: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer")
    if v < lowest:
        raise argparse.ArgumentTypeError(f"{v} must be >= {lowest}")
    return v


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number")
    if not (v > 0 and v != float("inf")):
        raise argparse.ArgumentTypeError(f"{text} must be a finite number > 0")
    return v


def _dtype(text: str) -> str:
    import torch

    if not isinstance(getattr(torch, text, None), torch.dtype):
        raise argparse.ArgumentTypeError(f"'{text}' is not a torch dtype (float32, float16, int64, ...)")
    return text


def _add_model_args(sp):
    sp.add_argument("model", help="TorchScript file, atom store directory, or zoo:NAME")
    sp.add_argument("--input-shape", type=_shape, action="append", dest="shapes",
                    help="example input shape, e.g. 1x3x224x224 (repeat for several inputs)")
    sp.add_argument("--dtype", default="float32", type=_dtype,
                    help="dtype of the example inputs of a TorchScript file (default float32)")


def cmd_inspect(args):
    m, _ = open_model(args.model, args.shapes, args.dtype)
    print(m.summary(max_rows=args.rows))


def cmd_atomize(args):
    import time
    t0 = time.perf_counter()
    m, _ = open_model(args.model, args.shapes, args.dtype)
    m.save(args.dir, overwrite=args.overwrite)
    total = sum(f.stat().st_size for f in Path(args.dir).iterdir())
    print(f"wrote {m.num_atoms} atoms ({total / 1e6:.1f} MB) to {args.dir} in {time.perf_counter() - t0:.2f} s; "
          f"model hash {m.hash[:16]}")


def cmd_zoo(args):
    from tessera import zoo
    path, xs = zoo.torchscript(args.name, args.dir)
    shapes = " ".join("--input-shape " + "x".join(map(str, x.shape)) for x in xs)
    print(f"{path}  ({shapes})")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tessera", description="adaptive split inference of DNNs")
    sub = parser.add_subparsers(dest="command", required=True)
    sp = sub.add_parser("inspect", help="print the op graph and the atoms of a model")
    _add_model_args(sp)
    sp.add_argument("--rows", type=int, default=-1, help="at most this many rows per table")
    sp.set_defaults(func=cmd_inspect)
    sp = sub.add_parser("atomize", help="cut a model into atoms and write the atom store")
    _add_model_args(sp)
    sp.add_argument("dir", help="atom store directory to write")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing store")
    sp.set_defaults(func=cmd_atomize)
    sp = sub.add_parser("zoo", help="trace a zoo model to TorchScript (random weights, offline)")
    sp.add_argument("name", help="zoo model name (resnet50, googlenet, mobilenet_v2, transformer, ...)")
    sp.add_argument("dir", nargs="?", default=None, help="directory for NAME.pt (default: the model cache)")
    sp.set_defaults(func=cmd_zoo)
    for extra in _EXTRA_COMMANDS:
        extra(sub)
    args = parser.parse_args(argv)
    import tessera as ts
    try:
        args.func(args)
    except (ts.TesseraError, OSError, ValueError, KeyError) as e:
        # One line that names what was wrong, never a traceback, for every error a
        # user's input can cause (a missing file, an unknown name, a bad value).
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        if isinstance(e, OSError) and e.filename and str(e.filename) not in str(e):
            msg = f"{e.filename}: {e}"
        print(f"tessera {args.command}: error: {msg}", file=sys.stderr)
        return 1
    return 0


# Later layers register their sub-commands here (profile, plan, serve, run, ...).
_EXTRA_COMMANDS = []


def _profile_commands(sub):  # tessera profile (profile layer)
    from .profile import add_cli
    add_cli(sub)


def _predictor_commands(sub):  # tessera predictor collect|train|eval (predict layer)
    from .predict import add_cli
    add_cli(sub)


_EXTRA_COMMANDS += [_profile_commands, _predictor_commands]


def _register_runtime(sub):
    from .runtime_cli import register
    register(sub)


_EXTRA_COMMANDS.append(_register_runtime)


def _register_plan(sub):  # tessera plan (plan layer)
    from .plan_cli import register
    register(sub)


_EXTRA_COMMANDS.append(_register_plan)


def _register_pipeline(sub):  # tessera plan-pipeline (N nodes)
    from .pipeline_cli import register
    register(sub)


_EXTRA_COMMANDS.append(_register_pipeline)


def _register_variants(sub):  # tessera variants (accuracy-aware variants)
    from .variant_cli import register
    register(sub)


_EXTRA_COMMANDS.append(_register_variants)

if __name__ == "__main__":
    sys.exit(main())
