"""make demo: the main job of tessera on an embedded default.

Traces a torchvision ResNet-18 (random weights, offline) to TorchScript, loads
it through the C++ core, cuts it into atoms once, writes the atom store, runs
the model whole and split between two targets, and prints what it found.
"""
import tempfile
import time
from pathlib import Path

import torch

import tessera as ts
from tessera import zoo


def main():
    torch.set_num_threads(1)
    path, xs = zoo.torchscript("resnet18")
    t0 = time.perf_counter()
    m = ts.load(str(path), xs)
    t_load = time.perf_counter() - t0
    print(f"model     {path.name}: {m.graph.num_compute_nodes()} operators -> {m.num_atoms} atoms "
          f"(freeze + shapes + atomize: {t_load:.2f} s)")
    y = m.run(xs)
    print(f"output    shape {list(y.shape)}, dtype {y.dtype}")
    ref = torch.jit.load(str(path))(*xs)
    print(f"check     unsplit run == TorchScript model: {torch.allclose(y, ref, rtol=1e-4, atol=1e-5)}")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "resnet18"
        m.save(store)
        size = sum(f.stat().st_size for f in store.iterdir())
        half = m.num_atoms // 2
        d = ts.Model.open(store, atoms=range(half))
        print(f"store     {m.num_atoms} atom files, {size / 1e6:.1f} MB; a device opening atoms 0..{half - 1} "
              f"holds {d.loaded_param_bytes() / 1e6:.1f} of {sum(a.param_bytes for a in m.atoms) / 1e6:.1f} MB "
              f"of weights")
        placement = [0] * half + [1] * (m.num_atoms - half)
        ys = d.run(xs, placement=placement)
        print(f"split     atoms 0..{half - 1} on target 0, the rest on target 1: "
              f"bitwise equal to the unsplit run: {torch.equal(ys, y)}")
    print()
    print(m.summary(max_rows=12))


if __name__ == "__main__":
    main()
