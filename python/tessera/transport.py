"""The transport seen from Python: the emulated link every message can pass through.

    link = ts.Link(trace="traces/bus.txt", rtt_ms=40)        # or ts.Link(bandwidth_mbps=5.85, rtt_ms=20)
    dep = ts.Deployment(m, plan, server=endpoint, link=link, emulation="account")

The link is emulated in user space by the transport layer (a token bucket over a constant
rate or a replayed trace, plus rtt/2 each way): deterministic, no root. ``emulation="sleep"``
waits for real; ``"account"`` only adds the emulated link time to the measured latency.
"""
from __future__ import annotations

import math
import os

from typing import Sequence

from . import _core
from .types import BandwidthTrace, PathLike

__all__ = ["Link", "read_trace", "deployment_options"]


def read_trace(path: PathLike) -> list[tuple[float, float]]:
    """A bandwidth trace file: lines "time_s Mbit/s" -> [(t, bw), ...] starting at t = 0."""
    return [tuple(x) for x in _core.read_trace(os.fspath(path))]


class Link:
    """An emulated network link between the device and the server.

    bandwidth_mbps: constant rate; or trace: a trace file path or [(t_s, Mbit/s), ...].
    scale: multiplies every trace sample (e.g. to move a trace into the 4G range).
    rtt_ms: round-trip time; each message waits rtt/2. time_scale: trace seconds per
    wall second. The clock is wall time since creation unless set_time() is used.
    """

    def __init__(self, bandwidth_mbps: float | None = None, rtt_ms: float = 0.0, trace: BandwidthTrace | None = None,
                 scale: float = 1.0, burst_bytes: float = 0.0, time_scale: float = 1.0, label: str = "") -> None:
        spec = _core.LinkSpec()
        if trace is not None and bandwidth_mbps is not None:
            raise _core.InvalidArgumentError("Link takes bandwidth_mbps or trace, not both")
        if not (scale > 0 and math.isfinite(scale)):
            raise _core.InvalidArgumentError(f"scale = {scale} must be a finite number > 0")
        if trace is not None:
            samples = read_trace(trace) if isinstance(trace, (str, os.PathLike)) else [tuple(map(float, s))
                                                                                       for s in trace]
            if not samples:
                raise _core.InvalidArgumentError("trace has no samples (expected [(time_s, Mbit/s), ...])")
            spec.trace = [(t, bw * float(scale)) for t, bw in samples]
            label = label or (os.path.basename(os.fspath(trace)) if isinstance(trace, (str, os.PathLike))
                              else "trace")
        elif bandwidth_mbps is None:
            raise _core.InvalidArgumentError("Link needs bandwidth_mbps or trace")
        else:
            spec.bandwidth_mbps = float(bandwidth_mbps)
        spec.rtt_ms = float(rtt_ms)
        spec.burst_bytes = float(burst_bytes)
        spec.time_scale = float(time_scale)
        spec.label = label or f"{bandwidth_mbps} Mbit/s"
        self._core = _core.EmulatedLink(spec)

    def bandwidth_at(self, t_s: float) -> float:
        """The link's bandwidth (Mbit/s) at t_s seconds (a trace repeats after its end)."""
        if not (t_s >= 0 and math.isfinite(t_s)):
            raise _core.InvalidArgumentError(f"t_s = {t_s} must be a finite time >= 0")
        return self._core.bandwidth_at(t_s)

    @property
    def bandwidth_now(self) -> float:
        """The bandwidth (Mbit/s) at the link's current time."""
        return self._core.bandwidth_now()

    def now(self) -> float:
        """The link's clock (s): wall time since creation, or the time set_time() gave."""
        return self._core.now_s()

    def set_time(self, t_s: float) -> None:
        """Drive the link clock yourself (a virtual time, e.g. request i at i / rate)."""
        self._core.set_virtual_time(float(t_s))

    @property
    def mean_bandwidth(self) -> float:
        """Time-weighted mean bandwidth of the trace (or the constant rate), Mbit/s."""
        return self._core.mean_bandwidth()

    @property
    def duration_s(self) -> float:
        """Length of the trace in seconds (0 for a constant link)."""
        return self._core.duration_s()

    @property
    def rtt_ms(self) -> float:
        """Round-trip time of the link, ms."""
        return self._core.spec.rtt_ms

    def __repr__(self):
        return f"tessera.Link({self._core.spec.label}, rtt {self.rtt_ms} ms)"


def deployment_options(server: str | Sequence[str], timeout_ms: int, retry_ms: int, link: Link | None, device_slowdown: float,
                       emulation: str, server_policy: str = "best") -> "_core.DeploymentOptions":
    """The C++ DeploymentOptions. server: one endpoint, or a list of them (several servers, each
    request to one chosen by server_policy: "best", "p2c" or "first")."""
    o = _core.DeploymentOptions()
    if isinstance(server, str):
        o.server = server
    else:
        eps = [str(e) for e in server]
        if not eps:
            raise _core.InvalidArgumentError("an empty list of servers")
        o.servers = eps
    o.server_policy = str(server_policy)
    o.timeout_ms = int(timeout_ms)
    o.retry_ms = int(retry_ms)
    if link is not None:
        o.link = link._core
    o.device_slowdown = float(device_slowdown)
    if emulation not in ("sleep", "account"):
        raise _core.InvalidArgumentError(f"emulation must be 'sleep' or 'account', got '{emulation}'")
    o.emulation = _core.Emulation.Sleep if emulation == "sleep" else _core.Emulation.Account
    return o
