"""``tessera bench NAME [ARGS]``: a benchmark of the source tree's bench/ (``bench_NAME.py``)."""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import tessera as ts


def bench_dir() -> Path:
    """bench/ of the source tree this package runs from (an editable install or a checkout)."""
    return Path(__file__).resolve().parents[3] / "bench"


def cmd_bench(args):
    d = bench_dir()
    script = d / f"bench_{args.name}.py"
    if not script.is_file():
        have = sorted(p.stem[len("bench_"):] for p in d.glob("bench_*.py")) if d.is_dir() else []
        if not have:
            raise ts.NotFoundError(f"no benchmarks at {d}: they ship with the source tree, not the package "
                                   "(run tessera bench from a checkout's editable install)")
        raise ts.InvalidArgumentError(f"no benchmark '{args.name}' in {d} (have: {', '.join(have)})")
    sys.argv = [str(script), *args.rest]
    sys.path.insert(0, str(d))
    runpy.run_path(str(script), run_name="__main__")


def register(sub):
    sp = sub.add_parser("bench", help="run a benchmark of bench/ (e.g. tessera bench seeds --models resnet50)")
    sp.add_argument("name", help="the benchmark: seeds, e2e, planners, server, ... (bench/bench_NAME.py)")
    sp.add_argument("rest", nargs="...", help="its own arguments (tessera bench NAME --help)")
    sp.set_defaults(func=cmd_bench)
