"""Argument types and helpers every ``tessera`` command shares (one place for them)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["open_model", "add_model_args", "positive_int", "non_negative_int", "positive_float", "shape", "dtype"]


def shape(text: str):
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


def dtype(text: str) -> str:
    import torch

    if not isinstance(getattr(torch, text, None), torch.dtype):
        raise argparse.ArgumentTypeError(f"'{text}' is not a torch dtype (float32, float16, int64, ...)")
    return text


def add_model_args(sp):
    """MODEL plus --input-shape (repeatable) and --dtype: what every command that opens a model takes."""
    sp.add_argument("model", help="TorchScript file, atom store directory, or zoo:NAME")
    sp.add_argument("--input-shape", type=shape, action="append", dest="shapes",
                    help="example input shape, e.g. 1x3x224x224 (repeat for several inputs)")
    sp.add_argument("--dtype", default="float32", type=dtype,
                    help="dtype of the example inputs of a TorchScript file (default float32)")
