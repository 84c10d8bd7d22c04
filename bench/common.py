"""Helpers shared by the benchmarks: interleaved timing, medians with spread, tables, CSV."""
from __future__ import annotations

import csv
import os
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def quantiles(xs):
    """(median, q1, q3) of a list of numbers."""
    xs = sorted(xs)
    if len(xs) < 4:
        m = statistics.median(xs)
        return m, xs[0], xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[1], q[0], q[2]


def timed(fn, *args):
    t0 = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - t0) * 1e3


def interleave(variants: dict, repeats: int, warmup: int = 3):
    """Run each variant once per round, in turn (A B C A B C ...). Returns name -> list of ms."""
    for _ in range(warmup):
        for fn in variants.values():
            fn()
    out = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            out[k].append(timed(fn))
    return out


def table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "(no rows)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.rjust(widths[c]) for c in columns)]
    for r in rows:
        lines.append("  ".join(str(r.get(c, "")).rjust(widths[c]) for c in columns))
    return "\n".join(lines)


def write_csv(name: str, rows: list[dict]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / (f"{name}.smoke.csv" if smoke() else f"{name}.csv")  # smoke runs never overwrite results
    if not rows:
        raise ValueError(f"{name}: no rows to write (every configuration was skipped?)")
    tmp = path.with_suffix(f".tmp{os.getpid()}")  # a failed write never leaves half a results file
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)
    return path


def trace_files(tdir, per_set):
    """(set, file) of both shared trace sets; per_set > 0 picks that many spread over each sorted list."""
    out = []
    for sub in ("norway-hsdpa", "fcc"):
        files = sorted((tdir / sub).glob("*.txt"))
        if per_set <= 0:
            out += [(sub, f) for f in files]
            continue
        # evenly spread over the sorted list: norway-hsdpa is named by route (bus, car, ferry,
        # metro, train, tram), so the first few files would all be one bus route
        pick = sorted({int(i * len(files) / per_set) for i in range(per_set)})
        out += [(sub, files[i]) for i in pick if i < len(files)]
    return out


def built_binary(target: str, bench: str) -> str:
    """A benchmark's C++ program (bench/cpp/), built beside the library in build/ (or
    $TESSERA_BUILD_DIR); a clear error naming the target when it is not there."""
    build = Path(os.environ.get("TESSERA_BUILD_DIR", Path(__file__).resolve().parents[1] / "build"))
    exe = build / target
    if not exe.exists():
        raise SystemExit(f"{bench}: {exe} not found; build it with `cmake --build {build} --target {target}` "
                         "(make build does)")
    return str(exe)


def smoke() -> bool:
    """True when run by the test suite (tiny sizes, no claims)."""
    return os.environ.get("TESSERA_BENCH_SMOKE") == "1"
