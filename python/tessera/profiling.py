"""Profiling: what every atom of a model costs on this machine (``tessera.profiling``; the module
was ``tessera.profile`` until 0.2, a name the function ``tessera.profile`` hid).

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
from typing import Any, Iterable, Optional, Sequence

import torch

from . import _core
from ._compat import _UNSET, deprecated_attribute, renamed_kwarg
from ._proc import Spinners
from ._forward import CoreView
from .atoms import Model
from .types import Inputs, PathLike

__all__ = ["CostTable", "MachineCheck", "canary_ms", "machine_check", "profile", "progress_bar"]


class CostTable(CoreView):
    """Measured costs of one model on one machine (threads, background load).

    Per atom: ``atom_ms`` (median), ``atom_q1_ms`` / ``atom_q3_ms`` (spread),
    ``param_bytes``; per value id: ``value_bytes`` (these five are Python lists, copies);
    the whole model: ``model_ms`` (median ms of the whole model as one block, with
    ``model_q1_ms`` / ``model_q3_ms``) beside ``sum_atom_ms``.

    The bound table's (``_core.CostTable``) other fields are read through: ``threads``,
    ``background_load``, ``repeats``, ``warmup``, ``model_hash``, ``num_atoms``, ``label``; the machine
    state: ``canary_reference_ms`` (the canary's reference, settle > 0; else 0),
    ``canary_ms`` (median canary over the counted rounds), ``rounds_discarded`` (rounds run
    again because the machine was not in its reference state), ``settled`` (False if the
    reference state was not reached), ``waited_ms`` (time spent waiting for it).
    """

    def __init__(self, core: "_core.CostTable", atoms: Sequence[_core.Atom] | None = None) -> None:
        self._core = core
        self._atoms = atoms

    @property
    def load(self) -> float:
        """Deprecated name of ``background_load`` (until 0.3)."""
        return deprecated_attribute("CostTable", "load", "background_load", self._core.background_load)

    @property
    def atom_ms(self) -> list:
        """Median ms per atom."""
        return list(self._core.atom_ms)

    @property
    def atom_q1_ms(self) -> list:
        """First quartile of ms per atom."""
        return list(self._core.atom_q1_ms)

    @property
    def atom_q3_ms(self) -> list:
        """Third quartile of ms per atom."""
        return list(self._core.atom_q3_ms)

    @property
    def param_bytes(self) -> list:
        """Parameter bytes per atom."""
        return list(self._core.param_bytes)

    @property
    def value_bytes(self) -> list:
        """Bytes per value id."""
        return list(self._core.value_bytes)

    @property
    def sum_atom_ms(self) -> float:
        """The sum of the atoms' medians (ms)."""
        return self._core.sum_atom_ms()

    def summary(self, top: int = -1) -> str:
        """One line per atom (the ``top`` slowest when top > 0), then the totals."""
        return self._core.summary(self._atoms or [], top)

    def save(self, path: PathLike) -> None:
        """Write the table as JSON ("tessera-cost-table/1")."""
        self._core.write(os.fspath(path))

    @classmethod
    def read(cls, path: PathLike) -> "CostTable":
        """Read a table written by :meth:`save`."""
        return cls(_core.CostTable.read(os.fspath(path)))

    def to_json(self) -> str:
        """The table as JSON text (what :meth:`save` writes)."""
        return self._core.to_json()

    def __repr__(self) -> str:
        return (f"CostTable({self.num_atoms} atoms, threads {self.threads}, background load {self.background_load}: "
                f"model {self.model_ms:.3f} ms, sum of atoms {self.sum_atom_ms:.3f} ms)")


def progress_bar(total: int, desc: str, enable: Optional[bool] = None) -> Any:
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


class MachineCheck:
    """What :func:`machine_check` measured: the canary's ms in windows over time, and (with
    ``sibling``) the same with the other CPU kept busy."""

    def __init__(self, windows_ms: Iterable[float], window_s: float,
                 sibling_windows_ms: Iterable[float] | None = None) -> None:
        import statistics
        self.windows_ms = list(windows_ms)          # median canary ms per window
        self.window_s = window_s
        self.sibling_windows_ms = list(sibling_windows_ms or [])
        self.canary_ms = statistics.median(self.windows_ms)
        lo = min(self.windows_ms)
        self.spread = max(self.windows_ms) / lo      # slowest window / fastest window
        self.slow_windows = sum(w > 1.2 * lo for w in self.windows_ms)  # windows >20% over the fastest
        self.sibling_slowdown = (statistics.median(self.sibling_windows_ms) / self.canary_ms
                                 if self.sibling_windows_ms else None)

    @property
    def steady(self) -> bool:
        """No window more than 20% slower than the fastest: profiles here repeat."""
        return self.slow_windows == 0

    def report(self) -> str:
        """The measurement in a few lines a person reads: the canary, the spread, the verdict."""
        n = len(self.windows_ms)
        lines = [f"canary (a fixed ~1 ms CNN at 1 thread): median {self.canary_ms:.3f} ms over {n} windows of "
                 f"{self.window_s:g} s; slowest/fastest window {self.spread:.2f}"]
        if self.steady:
            lines.append("steady: every window within 20% of the fastest - profiles taken now should repeat")
        else:
            lines.append(f"NOT steady: {self.slow_windows}/{n} windows more than 20% slower than the fastest - "
                         "the machine changes speed under a profile; profile with settle=0.2 "
                         "(tessera profile --settle 0.2) or on a quieter machine")
        if self.sibling_slowdown is not None:
            s = self.sibling_slowdown
            if s > 1.2:
                verdict = (" - the CPUs share a physical core at times (hyper-threads, or a VM host packing its "
                           "vCPUs): two intra-op threads or a busy neighbour slow every atom")
            elif s < 0.8:
                verdict = " - faster: other work is running on this machine, the comparison says little"
            else:
                verdict = " - the CPUs do not slow each other"
            lines.append(f"with the other CPU busy (an idle-priority spin loop pinned there): x{s:.2f}{verdict}")
        return "\n".join(lines)

    def __repr__(self):
        return f"MachineCheck(canary {self.canary_ms:.3f} ms, spread {self.spread:.2f}, steady={self.steady})"


def machine_check(seconds: float = 10.0, window_s: float = 1.0, sibling: bool = False,
                  progress: Optional[bool] = None) -> MachineCheck:
    """Is this machine steady enough to profile on? Times the canary (:func:`canary_ms`)
    back to back for ``seconds``, in windows of ``window_s``, and reports how far the window
    medians move. sibling=True then does the same for as long again while an idle-priority
    spin loop keeps another CPU busy (this process pinned to the first CPU): on a machine
    whose CPUs share a core (hyper-threads, a VM host packing its vCPUs) the canary slows.
    """
    import statistics
    import time

    if not (seconds > 0 and window_s > 0 and window_s <= seconds):
        raise _core.InvalidArgumentError(f"seconds = {seconds}, window_s = {window_s}: need 0 < window_s <= seconds")
    cpus = sorted(os.sched_getaffinity(0))
    if sibling and len(cpus) < 2:
        raise _core.InvalidArgumentError(f"sibling=True needs two CPUs; this process may use {len(cpus)}")
    bar = progress_bar(int(round(seconds * (2 if sibling else 1) / window_s)), "machine check", progress)

    def windows():
        out, t_end = [], time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            w, t_w = [], time.perf_counter() + window_s
            while time.perf_counter() < t_w:
                w.append(canary_ms(1))
            out.append(statistics.median(w))
            if bar is not None:
                bar.update(1)
        return out

    try:
        base = windows()
        busy = None
        if sibling:
            os.sched_setaffinity(0, {cpus[0]})
            try:
                with Spinners(1, duty=1.0, cpu=cpus[1], idle=True):  # yields to any other task there
                    busy = windows()
            finally:
                os.sched_setaffinity(0, set(cpus))
    finally:
        if bar is not None:
            bar.close()
    return MachineCheck(base, window_s, busy)


def profile(model: Model, inputs: Inputs, threads: Optional[int] = None, repeats: int = 20, warmup: int = 3, background_load: float = 0.0,
            progress: Optional[bool] = None, label: str = "", settle: float = 0.0, reference_ms: float = 0.0,
            max_discarded: int = -1, max_wait_s: float = 30.0, load: float = _UNSET) -> CostTable:
    """Measure every atom of ``model`` (a :class:`tessera.Model`) on ``inputs``.

    threads: intra-op threads for the run (None: torch's current setting); restored after.
    repeats: timed rounds (>= 1); warmup: untimed rounds before them (>= 0).
    background_load: a label recorded in the table: the CPU cores the caller keeps busy with
        other work during the run (see :class:`tessera.predict.BackgroundLoad`). ``load=``
        is its deprecated name (until 0.3).
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

    background_load = renamed_kwarg("profile", "load", "background_load", load, background_load, 0.0)
    if not isinstance(model, Model):
        raise _core.InvalidArgumentError(f"profile() takes a tessera.Model, got {type(model).__name__}")
    if threads is not None and int(threads) < 1:
        raise _core.InvalidArgumentError(f"threads = {threads}: at least 1")
    opts = _core.ProfileOptions(threads=0 if threads is None else int(threads), repeats=int(repeats),
                                warmup=int(warmup), background_load=float(background_load), settle=float(settle),
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
