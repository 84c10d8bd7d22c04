"""``tessera inspect | atomize | zoo``: a model's op graph and atoms, its atom store, the zoo."""
from __future__ import annotations

from pathlib import Path

from .args import add_model_args, open_model


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


def register(sub) -> None:
    sp = sub.add_parser("inspect", help="print the op graph and the atoms of a model")
    add_model_args(sp)
    sp.add_argument("--rows", type=int, default=-1, help="at most this many rows per table")
    sp.set_defaults(func=cmd_inspect)
    sp = sub.add_parser("atomize", help="cut a model into atoms and write the atom store")
    add_model_args(sp)
    sp.add_argument("dir", help="atom store directory to write")
    sp.add_argument("--overwrite", action="store_true", help="replace an existing store")
    sp.set_defaults(func=cmd_atomize)
    sp = sub.add_parser("zoo", help="trace a zoo model to TorchScript (random weights, offline)")
    sp.add_argument("name", help="zoo model name (resnet50, googlenet, mobilenet_v2, transformer, ...)")
    sp.add_argument("dir", nargs="?", default=None, help="directory for NAME.pt (default: the model cache)")
    sp.set_defaults(func=cmd_zoo)
