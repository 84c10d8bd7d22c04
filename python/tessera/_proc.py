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
