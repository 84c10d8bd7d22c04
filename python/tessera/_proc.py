"""Child processes that do not outlive their parent.

A server process or a background-load spinner left behind by a parent that was killed
(a CI time-out, SIGKILL, a crash in C++) keeps a port or a CPU busy and skews every later
measurement; ``finally`` blocks and daemon flags do not run then. On Linux the kernel
signals the child when its parent dies (PR_SET_PDEATHSIG); the children also watch
their parent's pid in case the signal is not available.
"""
from __future__ import annotations

import os
import signal

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux; a no-op
    elsewhere). Call it in the child: as ``preexec_fn`` or first thing in a Process target."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pid watch still applies where used
        pass


def become_helper_child() -> None:
    """First thing in a helper child (a spinner): Ctrl-C is the parent's to handle, and the
    kernel kills the child when the parent dies (watch ``parent_alive`` too)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(signal.SIGKILL)


def parent_alive(parent_pid: int) -> bool:
    """False once this process was re-parented (its parent died)."""
    return os.getppid() == parent_pid


def stop_process(proc, timeout: float = 30.0) -> None:
    """Terminate a subprocess.Popen (SIGTERM: a tessera server prints its counters and
    exits) and reap it; kill it if it does not exit within ``timeout`` seconds."""
    import subprocess

    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    else:
        proc.wait()


# ---- CPU spinners: background load (tessera.predict) and the sibling check (tessera.profiling) ----
def _spin(duty: float, period_s: float, stop, parent: int, cpu, idle: bool) -> None:  # pragma: no cover - a child
    """Keep a CPU busy ``duty`` of every ``period_s`` (1.0: always) until ``stop`` is set or the
    parent dies; pinned to ``cpu`` when given; at idle priority (SCHED_IDLE) when ``idle``."""
    import time

    become_helper_child()
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    if idle:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    on = duty * period_s
    while not stop.is_set() and parent_alive(parent):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < on:
            pass
        rest = period_s - (time.perf_counter() - t0)
        if rest > 0:
            time.sleep(rest)


class Spinners:
    """``count`` child processes spinning (see ``_spin``), as a context manager: started on enter
    (forked), stopped and reaped on exit, and by the kernel if this process dies first."""

    def __init__(self, count: int, duty: float = 1.0, period_s: float = 0.005, cpu=None, idle: bool = False):
        self.count, self.duty, self.period_s, self.cpu, self.idle = int(count), float(duty), float(period_s), cpu, idle
        self._procs = []

    def __enter__(self):
        import multiprocessing as mp
        import time

        ctx = mp.get_context("fork")
        self._stop = ctx.Event()
        try:
            for _ in range(self.count):
                p = ctx.Process(target=_spin, args=(self.duty, self.period_s, self._stop, os.getpid(), self.cpu,
                                                    self.idle), daemon=True)
                p.start()
                self._procs.append(p)
            time.sleep(0.05)  # running before the caller measures
        except BaseException:  # a failed start or Ctrl-C: stop what was started
            self.__exit__()
            raise
        return self

    @property
    def pids(self) -> list:
        """Process ids of the running spinners."""
        return [p.pid for p in self._procs if p.is_alive()]

    def __exit__(self, *exc):
        if self._procs:
            self._stop.set()
            for p in self._procs:
                p.join(timeout=2)
                if p.is_alive():
                    p.terminate()
                    p.join(timeout=2)
            self._procs = []
        return False
