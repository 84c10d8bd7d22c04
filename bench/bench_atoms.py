"""Split overhead: the whole TorchScript model vs one combined block vs one block per atom.

In one process, same threads, interleaved rounds (whole, block, per-atom, whole, ...).
Reports per-round ratios (median [q1-q3]) so machine drift cancels, plus atomize time,
atom-store size and the weights a device holding half the atoms loads.

    .venv/bin/python bench/bench_atoms.py [--models resnet50 googlenet ...] [--repeats 40] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import zoo  # noqa: E402

from common import interleave, quantiles, smoke, table, write_csv  # noqa: E402


def bench_model(name: str, repeats: int):
    path, xs = zoo.torchscript(name)
    whole = torch.jit.load(str(path)).eval()
    t0 = time.perf_counter()
    m = ts.load(str(path), xs)
    t_atomize = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        m.save(Path(tmp) / "s")
        t_save = time.perf_counter() - t0
        store_mb = sum(f.stat().st_size for f in (Path(tmp) / "s").iterdir()) / 1e6
        half = ts.Model.open(Path(tmp) / "s", atoms=range(m.num_atoms // 2))
        half_mb = half.loaded_param_bytes() / 1e6
    total_mb = sum(a.param_bytes for a in m.atoms) / 1e6
    block = m.combine(range(m.num_atoms))
    per_atom = [[i] for i in range(m.num_atoms)]
    with torch.no_grad():
        ref = whole(*xs)
        assert torch.allclose(block(*xs)[0], ref if isinstance(ref, torch.Tensor) else ref[0], rtol=1e-4, atol=1e-5)
        times = interleave({
            "whole": lambda: whole(*xs),
            "block": lambda: block(*xs),
            "per_atom": lambda: m.run_blocks(xs, per_atom),
        }, repeats=repeats)
    rb = [b / w for b, w in zip(times["block"], times["whole"])]
    rp = [p / w for p, w in zip(times["per_atom"], times["whole"])]
    mb, b1, b3 = quantiles(rb)
    mp, p1, p3 = quantiles(rp)
    return {
        "model": name, "atoms": m.num_atoms, "whole_ms": f"{quantiles(times['whole'])[0]:.1f}",
        "block/whole": f"{mb:.3f} [{b1:.3f}-{b3:.3f}]", "per_atom/whole": f"{mp:.3f} [{p1:.3f}-{p3:.3f}]",
        "atomize_s": f"{t_atomize:.2f}", "save_s": f"{t_save:.2f}", "store_MB": f"{store_mb:.1f}",
        "half_device_weights_MB": f"{half_mb:.1f} of {total_mb:.1f}",
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet50", "googlenet", "mobilenet_v2", "densenet121"])
    ap.add_argument("--repeats", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if smoke():
        args.models, args.repeats = ["squeezenet1_0"], 3
    ts.set_threads(args.threads)  # OpenMP and OpenBLAS
    print(f"threads {args.threads}, input batch 1 (224x224), {args.repeats} interleaved rounds after 3 warm-up; "
          f"ratios are per round, median [q1-q3]")
    rows = [bench_model(n, args.repeats) for n in args.models]
    cols = list(rows[0])
    print(table(rows, cols))
    print("wrote", write_csv("bench_atoms", rows))


if __name__ == "__main__":
    main()
