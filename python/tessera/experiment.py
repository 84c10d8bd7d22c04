"""Replay a bandwidth trace through the emulated link and compare policies side by side.

Used by ``make demo``, ``bench/bench_adaptive.py`` and notebook 04. Every policy
serves the same requests, interleaved (request i of every policy, then i + 1):
request i happens at link time i * period_s (a fixed request rate on the trace's
clock), runs for real (device blocks here, server
blocks on a real server in another process, real ZeroMQ transfers), and the
emulated link adds its time (token bucket over the trace + rtt/2 each way) in
"account" mode, so a 15-minute trace replays in seconds of compute.

Every policy is a C++ policy (tessera.adapt: static_policy, oracle_policy,
adaptive_policy) run by its own Controller, so every request leaves the same record
whatever the policy. Policies:
  device_only, server_only   everything on one side
  static                     the min-cut plan at the trace's mean bandwidth, kept all along
  chain                      Neurosurgeon: best single split, re-planned every request from
                             the same bandwidth estimate the adaptive deployment uses
  adaptive                   tessera: monitor + parametric plans + hysteresis
  oracle                     the optimal parametric plan for the TRUE bandwidth of each request
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import torch

from .adapt import Controller, adaptive_policy, oracle_policy, static_policy
from .planning import plan as make_plan
from . import _core
from .atoms import Model
from .transport import Link
from .types import Costs, HasAtomMs, Inputs, PathLike

POLICIES = ("device_only", "server_only", "static", "chain", "adaptive", "oracle")


__all__ = ["simulate", "replay", "prepare", "make_policy", "costs_from_profile", "summary_rows", "plot", "PolicyRun",
           "POLICIES"]


@dataclass
class PolicyRun:
    name: str
    latency_ms: list = field(default_factory=list)
    device_atoms: list = field(default_factory=list)
    device_mb: list = field(default_factory=list)  # weights the plan keeps on the device
    est_bandwidth: list = field(default_factory=list)
    true_bandwidth: list = field(default_factory=list)
    switches: int = 0
    fallbacks: int = 0
    decide_us: list = field(default_factory=list)
    num_atoms: int = 0  # of the model: a request with 0 < device_atoms < num_atoms ran a mid-model split

    @property
    def split_requests(self) -> int:
        """Requests served by a mid-model split (some atoms on the device, some on the server)."""
        return sum(0 < k < self.num_atoms for k in self.device_atoms)

    def add(self, rec: _core.RequestRecord) -> None:
        """One request's record (a C++ RequestRecord, live or simulated)."""
        self.latency_ms.append(rec.total_ms)
        self.device_atoms.append(rec.device_atoms)
        self.device_mb.append(rec.device_param_bytes / 1e6)
        self.est_bandwidth.append(rec.est_bandwidth)
        self.true_bandwidth.append(rec.true_bandwidth)
        self.switches += bool(rec.switched and rec.index > 0)
        self.fallbacks += bool(rec.fallback)
        self.decide_us.append(rec.decide_us)

    @property
    def mean(self) -> float:
        """Mean latency over the requests (ms)."""
        return statistics.fmean(self.latency_ms)

    @property
    def p95(self) -> float:
        """95th percentile latency over the requests (ms)."""
        xs = sorted(self.latency_ms)
        return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def costs_from_profile(cost_table: HasAtomMs, device_slowdown: float) -> dict[str, list[float]]:
    """Device = this machine's measured atoms x slowdown; server = this machine's measured atoms."""
    ms = list(cost_table.atom_ms)
    return {"device": [device_slowdown * c for c in ms], "server": ms}


def prepare(names: Iterable[str], repository: PathLike, device_slowdown: float,
            repeats: int = 5) -> dict[str, tuple[Model, tuple[torch.Tensor, ...], dict[str, list[float]]]]:
    """For each zoo model: load it, save its atom store into `repository`, profile it here.

    Returns name -> (Model, example inputs, costs) with costs from costs_from_profile.
    """
    from pathlib import Path

    from . import zoo
    from .atoms import load
    from .profiling import profile

    out = {}
    for name in names:
        path, xs = zoo.torchscript(name)
        m = load(str(path), xs)
        m.save(Path(repository) / name)
        ct = profile(m, xs, threads=1, repeats=repeats, warmup=2, settle=0.2)  # the machine's reference state
        out[name] = (m, xs, costs_from_profile(ct, device_slowdown))
    return out


def make_policy(name: str, model: Model | _core.AtomDag, costs: Costs | _core.CostModel, mean_bandwidth_mbps: float,
                rtt_ms: float, link: Link | None = None, period_s: float = 1.0, **adaptive: Any) -> _core.Policy:
    """The C++ policy behind each name of POLICIES (and "oracle_prev": the oracle told the
    previous request's true bandwidth, which needs the link). adaptive: options of the
    adaptive and chain policies (hysteresis, ...)."""
    n = model.num_atoms
    if name == "device_only":
        return static_policy(name, [0] * n)
    if name == "server_only":
        return static_policy(name, [1] * n)
    if name == "static":
        return static_policy(name, make_plan(model, costs, bandwidth_mbps=mean_bandwidth_mbps, rtt_ms=rtt_ms,
                                             algorithm="mincut"))
    if name == "oracle":
        return oracle_policy(model, costs, rtt_ms)
    if name == "oracle_prev":
        from . import _core
        from .planning import make_cost_model
        return _core.lagged_oracle_policy(make_cost_model(model, costs), float(rtt_ms), link._core.spec,
                                          float(period_s))
    if name == "adaptive":
        return adaptive_policy(model, costs, "parametric", rtt_ms=rtt_ms, **adaptive)
    if name == "chain":
        return adaptive_policy(model, costs, "chain", rtt_ms=rtt_ms, **adaptive)
    from ._core import InvalidArgumentError
    raise InvalidArgumentError(f"unknown policy '{name}' (one of {', '.join(POLICIES)})")


def replay(model: Model, inputs: Inputs, costs: Costs | _core.CostModel, endpoint: str | Sequence[str],
           link_spec: dict, requests: int, period_s: float = 1.0, device_slowdown: float = 1.0,
           policies: Iterable[str] = POLICIES,
           check_outputs: bool = True, progress: Callable[[str, int], Any] | None = None,
           rtt_ms: float | None = None, timeout_ms: int = 60000, strict: bool = True) -> dict[str, PolicyRun]:
    """Run every policy over the same request sequence; returns name -> PolicyRun.

    link_spec: keyword arguments of tessera.Link (trace=..., scale=..., rtt_ms=...) or
    bandwidth_mbps=... for a constant link. timeout_ms: a reply later than this falls back
    (link delays are accounted, not slept, so only real compute counts). strict: the
    experiment assumes a live server - the first fallback raises EngineError naming the
    policy, the request and why (False: count fallbacks and go on).
    """
    from ._core import EngineError, InvalidArgumentError
    from .atoms import _as_tuple

    if int(requests) < 1 or not (period_s > 0):
        raise InvalidArgumentError(f"requests = {requests} must be >= 1 and period_s = {period_s} > 0")
    inputs = tuple(_as_tuple(inputs))
    ref = model.run_flat(inputs) if check_outputs else None
    rtt = link_spec.get("rtt_ms", 0.0) if rtt_ms is None else rtt_ms
    mean_bw = Link(**link_spec).mean_bandwidth
    # Every policy gets its own link (its own bucket and clock) and controller; requests
    # are interleaved (request i of every policy, then request i + 1, ...) so that the
    # machine's drift touches every policy alike.
    links, ctls, runs = {}, {}, {}
    for name in policies:
        link = Link(**link_spec)
        link.set_time(0.0)
        links[name] = link
        runs[name] = PolicyRun(name, num_atoms=model.num_atoms)
        ctls[name] = Controller(model, costs, endpoint,
                                make_policy(name, model, costs, mean_bw, rtt, link=link, period_s=period_s), link=link,
                                rtt_ms=rtt, device_slowdown=device_slowdown, emulation="account",
                                timeout_ms=timeout_ms)
    for i in range(requests):
        t = i * period_s
        for name in policies:
            ctl, run, link = ctls[name], runs[name], links[name]
            link.set_time(t)
            flat = ctl.run_flat(inputs)
            if check_outputs:
                if len(flat) != len(ref):
                    raise AssertionError(f"{name}: request {i} returned {len(flat)} outputs, the model has {len(ref)}")
                for a, b in zip(flat, ref):
                    if not torch.allclose(a, b, rtol=1e-4, atol=1e-5):
                        raise AssertionError(f"{name}: request {i} returned a wrong output")
            rec = ctl.last_record
            run.add(rec)
            if strict and rec.fallback:
                errors = [b.error for b in ctl.last_blocks if b.error]
                raise EngineError(f"{name}: request {i} fell back to the device ({'; '.join(errors) or 'no reply'}); "
                                  f"the replay needs a live server at {endpoint}")
            if progress:
                progress(name, i)
    return runs


def simulate(model: Model | _core.AtomDag, costs: Costs | _core.CostModel, link_spec: dict, requests: int = 0,
             period_s: float = 1.0, policies: Iterable[str] = POLICIES, rtt_ms: float | None = None,
             compute_jitter: float = 0.0, sample_noise: float = 0.0, seed: int = 1,
             server_load: Sequence[tuple[float, float]] | None = None,
             device_load: Sequence[tuple[float, float]] | None = None,
             memory_mb: Sequence[tuple[float, float]] | None = None, timeout_ms: float = 0.0,
             retry_ms: float = 1000.0, outlier_rate: float = 0.0, outlier_factor: float = 50.0,
             **adaptive: Any) -> dict[str, PolicyRun]:
    """Every policy over the same trace on the cost model alone: name -> PolicyRun.

    The same C++ policy objects as :func:`replay` (make_policy) and the same estimation
    rule, driven by the cost model instead of real execution: request i at trace time
    i * period_s costs the cost model's latency of the chosen plan at the link's true
    bandwidth then. Deterministic (seed); compute_jitter and sample_noise (relative, uniform
    +-) inject noise on purpose. requests 0: one trace length. adaptive: estimation and
    probing settings (window, hysteresis, react_to_drops, probe_every, initial_bandwidth_mbps).
    server_load, device_load, memory_mb: contexts that move with the trace, [(time_s, value), ...]
    piecewise constant (loads multiply the cost model's compute; memory is the device's budget for
    weights in MB). timeout_ms: a remote block whose reply (transfers + compute) takes longer runs on
    the device after that wait, and the device runs alone for retry_ms (as a live deployment with
    that timeout does; 0: no deadline). outlier_rate: the share of bandwidth samples that look
    outlier_factor times faster than they were (as a loopback-fast exchange does live). Thousands of requests per second: policy quality without the
    machine's noise.
    """
    from . import _core
    from .adapt import _adaptive_options
    from .planning import make_cost_model

    rtt = link_spec.get("rtt_ms", 0.0) if rtt_ms is None else rtt_ms
    link = Link(**link_spec)
    cm = make_cost_model(model, costs)
    o = _core.SimulationOptions()
    o.period_s = float(period_s)
    o.requests = int(requests)
    o.rtt_ms = float(rtt)
    o.compute_jitter = float(compute_jitter)
    o.sample_noise = float(sample_noise)
    o.outlier_rate = float(outlier_rate)
    o.outlier_factor = float(outlier_factor)
    o.seed = int(seed)
    o.timeout_ms = float(timeout_ms)
    o.retry_ms = float(retry_ms)
    o.adaptive = _adaptive_options(rtt_ms=rtt, **adaptive)
    o.server_load_trace = [(float(t), float(v)) for t, v in (server_load or [])]
    o.device_load_trace = [(float(t), float(v)) for t, v in (device_load or [])]
    o.memory_trace = [(float(t), float(v) * 1e6) for t, v in (memory_mb or [])]
    runs = {}
    for name in policies:
        policy = make_policy(name, model, costs, link.mean_bandwidth, rtt, link=link, period_s=period_s, **adaptive)
        run = PolicyRun(name, num_atoms=model.num_atoms)
        for rec in _core.simulate(cm, link._core.spec, policy, o):
            run.add(rec)
        runs[name] = run
    return runs


def summary_rows(runs: dict[str, PolicyRun]) -> list[dict]:
    """One row per policy of :func:`simulate` / :func:`replay`: mean and p95 latency, and the
    mean against the best static plan."""
    best_static = min((runs[k].mean for k in ("device_only", "server_only", "static") if k in runs), default=None)
    rows = []
    for name, r in runs.items():
        rows.append({"policy": name, "mean_ms": f"{r.mean:.1f}", "p95_ms": f"{r.p95:.1f}",
                     "vs_oracle": f"{r.mean / runs['oracle'].mean:.3f}" if "oracle" in runs else "",
                     "vs_best_static": f"{r.mean / best_static:.3f}" if best_static else "",
                     "split_requests": r.split_requests, "switches": r.switches, "fallbacks": r.fallbacks})
    return rows


def plot(runs: dict[str, PolicyRun], path: PathLike | None = None, title: str = "") -> Any:
    """Bandwidth, device atoms (where the cut falls) and latency per request, for each policy.

    Writes a PNG to ``path``; with no path, returns the matplotlib figure (notebooks).
    """
    import matplotlib
    if path is not None:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    any_run = next(iter(runs.values()))
    x = range(len(any_run.true_bandwidth))
    ax[0].plot(x, any_run.true_bandwidth, label="true", color="black")
    if "adaptive" in runs:
        ax[0].plot(x, runs["adaptive"].est_bandwidth, label="estimated (adaptive)", linestyle="--")
    ax[0].set_yscale("log")
    ax[0].set_ylabel("bandwidth (Mbit/s)")
    ax[0].legend(loc="upper right")
    for name in ("adaptive", "oracle", "static"):
        if name in runs:
            ax[1].step(x, runs[name].device_atoms, where="post", label=name)
    ax[1].set_ylabel("atoms on the device")
    ax[1].legend(loc="upper right")
    for name, r in runs.items():
        ax[2].plot(x, r.latency_ms, label=f"{name} (mean {r.mean:.0f} ms)")
    ax[2].set_yscale("log")
    ax[2].set_ylabel("latency (ms)")
    ax[2].set_xlabel("request")
    ax[2].legend(loc="upper right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is None:
        return fig
    try:
        fig.savefig(path, dpi=90)
    finally:
        plt.close(fig)
    return None
