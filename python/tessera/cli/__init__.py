"""The ``tessera`` command line.

    tessera inspect MODEL [--input-shape 1x3x224x224]     op / atom table with shapes and bytes
    tessera atomize MODEL DIR [--input-shape ...]          write an atom store
    tessera zoo NAME [DIR]                                 trace a torchvision/zoo model to TorchScript
    tessera profile MODEL [--threads N --repeats R]        measure every atom here (median, spread)
    tessera machine [--seconds 10 --sibling]               is this machine steady enough to profile on?
    tessera predictor collect|train|eval ...               latency predictors (samples CSV, train, accuracy)
    tessera plan MODEL --bandwidth MBPS [--rtt MS]         every planner side by side (profiled costs)
    tessera serve REPOSITORY [--bind ENDPOINT]             edge server for a repository of atom stores
    tessera train-serve STORE [--bind ENDPOINT]            split-training server of a trainable atom store
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
import sys

# Shared argument types (``tessera.cli.positive_int`` and friends stay importable from here).
from .args import add_model_args, non_negative_int, open_model, positive_float, positive_int  # noqa: F401

__all__ = ["main", "COMMANDS"]

# The command table: (module of tessera.cli, what it adds). Each module's register(sub)
# adds its sub-commands; nothing outside this package holds argparse code.
COMMANDS = (
    ("model", "inspect, atomize, zoo"),
    ("profiling", "profile, machine"),
    ("predictor", "predictor collect | train | eval"),
    ("runtime", "run, serve, train-serve, keygen"),
    ("planning", "plan"),
    ("pipeline", "plan-pipeline"),
    ("variants", "variants"),
    ("bench", "bench NAME: the source tree's benchmarks"),
)


def main(argv=None) -> int:
    """Run ``tessera ARGS``; returns the exit status (a user's error: one line on stderr, status 1)."""
    import importlib

    from .. import version_info
    v = version_info()
    parser = argparse.ArgumentParser(prog="tessera", description="adaptive split inference of DNNs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {v['version']} (wire protocol v"
                        f"{v['wire_protocol']}, atom store format {v['atom_store_format']})")
    sub = parser.add_subparsers(dest="command", required=True)
    for module, _ in COMMANDS:
        importlib.import_module(f"{__name__}.{module}").register(sub)
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


if __name__ == "__main__":
    sys.exit(main())
