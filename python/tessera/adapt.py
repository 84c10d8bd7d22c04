"""Context-adaptive deployment: an emulated link, a monitor, re-planning between requests.

    link = ts.Link(trace="traces/bus.txt", rtt_ms=40)        # or ts.Link(bandwidth_mbps=5.85, rtt_ms=20)
    dep = ts.AdaptiveDeployment(m, costs=..., server=endpoint, planner="parametric", link=link)
    for frame in stream: y = dep(frame)
    dep.timeline      # per request: estimated and true bandwidth, plan in use, latency parts

The link is emulated in user space inside the transport (token bucket over a
constant rate or a replayed trace, plus rtt/2 each way): deterministic, no root.
``emulation="sleep"`` waits for real; ``"account"`` only adds the emulated link
time to the measured latency (for long trace replays).
"""
from __future__ import annotations

import math
import os
from typing import Sequence

from . import _core
from .atoms import Model, _as_tuple, _rebuild
from .plan import make_cost_model

__all__ = ["Link", "AdaptiveDeployment", "read_trace"]


def read_trace(path) -> list[tuple[float, float]]:
    """A bandwidth trace file: lines "time_s Mbit/s" -> [(t, bw), ...] starting at t = 0."""
    return [tuple(x) for x in _core.read_trace(os.fspath(path))]


class Link:
    """An emulated network link between the device and the server.

    bandwidth_mbps: constant rate; or trace: a trace file path or [(t_s, Mbit/s), ...].
    scale: multiplies every trace sample (e.g. to move a trace into the 4G range).
    rtt_ms: round-trip time; each message waits rtt/2. time_scale: trace seconds per
    wall second. The clock is wall time since creation unless set_time() is used.
    """

    def __init__(self, bandwidth_mbps: float | None = None, rtt_ms: float = 0.0, trace=None, scale: float = 1.0,
                 burst_bytes: float = 0.0, time_scale: float = 1.0, label: str = ""):
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


def deployment_options(server: str, timeout_ms: int, retry_ms: int, link: Link | None, device_slowdown: float,
                       emulation: str) -> "_core.DeploymentOptions":
    o = _core.DeploymentOptions()
    o.server = server
    o.timeout_ms = int(timeout_ms)
    o.retry_ms = int(retry_ms)
    if link is not None:
        o.link = link._core
    o.device_slowdown = float(device_slowdown)
    if emulation not in ("sleep", "account"):
        raise _core.InvalidArgumentError(f"emulation must be 'sleep' or 'account', got '{emulation}'")
    o.emulation = _core.Emulation.Sleep if emulation == "sleep" else _core.Emulation.Account
    return o


class AdaptiveDeployment:
    """A deployment that watches its transfers and switches plans between requests.

    model, costs: the model and per-atom costs ({"device": [...], "server": [...]}, as for
    :func:`tessera.plan`). server: the edge server's endpoint. planner: "parametric" (the
    precomputed envelope over bandwidth, default), "mincut", "compressed", "chain" or "gads".
    link: a :class:`Link` every message passes through (emulation). rtt_ms: the round trip to
    plan with; None measures it with probes. timeout_ms / retry_ms: a reply later than
    timeout_ms falls back to the device, and the server is retried after retry_ms.
    device_slowdown, emulation: as for :class:`tessera.Deployment`. hysteresis: keep the plan
    while the estimate stays within its validity interval widened by this fraction (0.2).
    initial_bandwidth_mbps: the estimate before any transfer (0: probe first).
    memory_budget_mb: device memory for weights (None: unlimited; gads plans under it).
    probe_every: probe the link after this many requests that sent nothing. window: the
    bandwidth estimate is the median of this many samples. react_to_drops: believe a drop
    below the median at once (rises need confirmation).
    """

    def __init__(self, model: Model, costs, server: str, planner: str = "parametric", link: Link | None = None,
                 rtt_ms: float | None = None, timeout_ms: int = 2000, retry_ms: int = 1000,
                 device_slowdown: float = 1.0, emulation: str = "sleep", hysteresis: float = 0.2,
                 initial_bandwidth_mbps: float = 0.0, memory_budget_mb: float | None = None, probe_every: int = 1,
                 window: int = 3, react_to_drops: bool = True):
        if rtt_ms is not None and not (rtt_ms >= 0 and math.isfinite(rtt_ms)):
            raise _core.InvalidArgumentError(f"rtt_ms = {rtt_ms} must be >= 0 (or None: measure it)")
        if memory_budget_mb is not None and not memory_budget_mb >= 0:
            raise _core.InvalidArgumentError(f"memory_budget_mb = {memory_budget_mb} must be >= 0 (or None)")
        self.model = model
        self.cost_model = make_cost_model(model, costs)
        a = _core.AdaptiveOptions()
        a.planner = planner
        a.hysteresis = float(hysteresis)
        a.initial_bandwidth_mbps = float(initial_bandwidth_mbps)
        a.rtt_ms = -1.0 if rtt_ms is None else float(rtt_ms)
        a.probe_every = int(probe_every)
        a.react_to_drops = bool(react_to_drops)
        a.device_memory_bytes = math.inf if memory_budget_mb is None else float(memory_budget_mb) * 1e6
        mo = _core.MonitorOptions()
        mo.window = int(window)
        a.monitor = mo
        self.link = link
        self._core = _core.AdaptiveDeployment(
            model._core, self.cost_model,
            deployment_options(server, timeout_ms, retry_ms, link, device_slowdown, emulation), a)

    def __call__(self, inputs):
        flat = self._core.run(list(_as_tuple(inputs)))
        return _rebuild(self.model.graph.output_structure, flat)

    run = __call__

    def set_memory_budget(self, mb: float) -> None:
        """The app's free memory changed: re-plan under this budget (MB of weights) next request."""
        self._core.set_memory_budget(float(mb) * 1e6)

    @property
    def placement(self) -> list[int]:
        return list(self._core.placement)

    @property
    def timeline(self) -> list[dict]:
        """One dict per request (estimated and true bandwidth, plan, latency parts in ms)."""
        keys = ("index", "link_time_s", "est_bandwidth", "true_bandwidth", "plan_id", "device_atoms", "switched",
                "decide_us", "total_ms", "device_ms", "transfer_ms", "server_ms", "queue_ms", "predicted_ms", "fallback",
                "probed", "est_load", "est_device_load")
        return [{k: getattr(r, k) for k in keys} for r in self._core.timeline()]

    @property
    def monitor(self):
        return self._core.monitor()

    @property
    def breakpoints(self) -> list[float]:
        return list(self._core.breakpoints())
