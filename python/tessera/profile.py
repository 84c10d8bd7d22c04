"""Profiling: what every atom of a model costs on this machine.

    import tessera as ts
    t = ts.profile(m, xs, threads=2, repeats=30)
    t.atom_ms              # median ms per atom (what planners read)
    t.model_ms, t.sum_atom_ms
    print(t.summary(top=10))
    ts.plan(m, {"device": t, "server": t_server}, bandwidth_mbps=5.85)

Method (C++, ``cpp/include/tessera/profile/profile.h``): every round runs the
model once as a chain of one-atom blocks, each timed on the tensors the previous
blocks just produced, and once as a single block of all atoms (interleaved);
warm-up rounds are dropped; per atom the median and the interquartile range.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import torch

from . import _core

__all__ = ["CostTable", "canary_ms", "profile", "progress_bar"]


class CostTable:
    """Measured costs of one model on one machine (threads, load).

    Per atom: ``atom_ms`` (median), ``atom_q1_ms`` / ``atom_q3_ms`` (spread),
    ``param_bytes``; per value id: ``value_bytes``; the whole model: ``model_ms``
    beside ``sum_atom_ms``.
    """

    def __init__(self, core: "_core.CostTable", atoms=None):
        self._core = core
        self._atoms = atoms

    atom_ms = property(lambda self: list(self._core.atom_ms), doc="median ms per atom")
    atom_q1_ms = property(lambda self: list(self._core.atom_q1_ms))
    atom_q3_ms = property(lambda self: list(self._core.atom_q3_ms))
    param_bytes = property(lambda self: list(self._core.param_bytes))
    value_bytes = property(lambda self: list(self._core.value_bytes))
    model_ms = property(lambda self: self._core.model_ms, doc="median ms of the whole model (one block)")
    model_q1_ms = property(lambda self: self._core.model_q1_ms)
    model_q3_ms = property(lambda self: self._core.model_q3_ms)
    canary_reference_ms = property(lambda self: self._core.canary_reference_ms,
                                   doc="machine-state canary reference (settle > 0; else 0)")
    canary_ms = property(lambda self: self._core.canary_ms, doc="median canary over the counted rounds")
    rounds_discarded = property(lambda self: self._core.rounds_discarded,
                                doc="rounds run again because the machine was not in its reference state")
    settled = property(lambda self: self._core.settled, doc="False if the reference state was not reached")
    waited_ms = property(lambda self: self._core.waited_ms, doc="time spent waiting for the reference state")
    threads = property(lambda self: self._core.threads)
    load = property(lambda self: self._core.load)
    repeats = property(lambda self: self._core.repeats)
    warmup = property(lambda self: self._core.warmup)
    model_hash = property(lambda self: self._core.model_hash)
    num_atoms = property(lambda self: self._core.num_atoms)

    @property
    def label(self) -> str:
        return self._core.label

    @property
    def sum_atom_ms(self) -> float:
        return self._core.sum_atom_ms()

    def summary(self, top: int = -1) -> str:
        """One line per atom (the ``top`` slowest when top > 0), then the totals."""
        return self._core.summary(self._atoms or [], top)

    def save(self, path) -> None:
        """Write the table as JSON ("tessera-cost-table/1")."""
        self._core.write(os.fspath(path))

    @classmethod
    def read(cls, path) -> "CostTable":
        """Read a table written by :meth:`save`."""
        return cls(_core.CostTable.read(os.fspath(path)))

    def to_json(self) -> str:
        return self._core.to_json()

    def __repr__(self) -> str:
        return (f"CostTable({self.num_atoms} atoms, threads {self.threads}, load {self.load}: "
                f"model {self.model_ms:.3f} ms, sum of atoms {self.sum_atom_ms:.3f} ms)")


def progress_bar(total: int, desc: str, enable: Optional[bool] = None):
    """A tqdm bar (or None when disabled / tqdm missing). enable=None: only on a terminal."""
    if enable is None:
        enable = sys.stderr.isatty()
    if not enable:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a Debian package here
        return None
    return tqdm(total=total, desc=desc, leave=False)


def canary_ms(runs: int = 5) -> float:
    """Median ms of ``runs`` runs of the machine-state canary (a fixed small CNN of depthwise and
    pointwise convolutions, ~1 ms) at one intra-op thread: how fast this machine is now."""
    return _core.canary_ms(int(runs))


def profile(model, inputs, threads: Optional[int] = None, repeats: int = 20, warmup: int = 3, load: float = 0.0,
            progress: Optional[bool] = None, label: str = "", settle: float = 0.0, reference_ms: float = 0.0,
            max_discarded: int = -1, max_wait_s: float = 30.0) -> CostTable:
    """Measure every atom of ``model`` (a :class:`tessera.Model`) on ``inputs``.

    threads: intra-op threads for the run (None: torch's current setting); restored after.
    repeats: timed rounds (>= 1); warmup: untimed rounds before them (>= 0).
    load: a label recorded in the table: the background load the caller keeps up
        during the run (cores busy elsewhere; see :class:`tessera.predict.BackgroundLoad`).
    progress: a progress bar (None: only when stderr is a terminal).
    settle: > 0 counts only rounds taken while the machine is in its reference state: the
        canary (:func:`canary_ms`) on both sides of a round within (1 + settle) x
        ``reference_ms`` (0: the fastest of 5 canaries measured first); other rounds run
        again once the canary is back (polled every 100 ms, at most ``max_wait_s`` of waiting
        in all), at most ``max_discarded`` (-1: 4 x repeats) times. For shared / virtual
        machines whose speed flips for seconds to minutes (see docs/ARCHITECTURE.md).
    Errors (``InvalidArgumentError``): repeats < 1, warmup < 0, threads < 1 or more
    than the machine has, inputs that do not match the model.
    """
    from .atoms import Model, _as_tuple

    if not isinstance(model, Model):
        raise _core.InvalidArgumentError(f"profile() takes a tessera.Model, got {type(model).__name__}")
    if threads is not None and int(threads) < 1:
        raise _core.InvalidArgumentError(f"threads = {threads}: at least 1")
    opts = _core.ProfileOptions(threads=0 if threads is None else int(threads), repeats=int(repeats),
                                warmup=int(warmup), load=float(load), settle=float(settle),
                                reference_ms=float(reference_ms), max_discarded=int(max_discarded),
                                max_wait_ms=1e3 * float(max_wait_s))
    bar = progress_bar(int(repeats) + int(warmup), label or "profile", progress) if repeats >= 1 else None
    cb = None
    if bar is not None:
        def cb(done, total):
            bar.n = done
            bar.refresh()
    try:
        core = _core.profile(model._core, list(_as_tuple(inputs)), opts, cb)
    finally:
        if bar is not None:
            bar.close()
    core.label = label
    return CostTable(core, model.atoms)


# ---- command line: tessera profile MODEL ---------------------------------------------------
def cmd_profile(args):
    from .cli import open_model

    m, xs = open_model(args.model, args.shapes, args.dtype)
    t = profile(m, xs, threads=args.threads, repeats=args.repeats, warmup=args.warmup,
                progress=not args.quiet, label=os.path.basename(args.model), settle=args.settle)
    print(t.summary(top=args.top))
    if args.json:
        t.save(args.json)
        print(f"wrote {args.json}")


def add_cli(sub) -> None:
    from .cli import _add_model_args

    sp = sub.add_parser("profile", help="measure every atom of a model here (median ms, spread, bytes)")
    _add_model_args(sp)
    sp.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    sp.add_argument("--repeats", type=int, default=20, help="timed rounds (default 20)")
    sp.add_argument("--warmup", type=int, default=3, help="untimed rounds first (default 3)")
    sp.add_argument("--settle", type=float, default=0.0,
                    help="count only rounds taken in the machine's reference state (canary within this "
                         "tolerance, e.g. 0.1; default 0 = off)")
    sp.add_argument("--top", type=int, default=20, help="show the N slowest atoms (-1: all, in order)")
    sp.add_argument("--json", help="write the cost table to this JSON file")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=cmd_profile)
