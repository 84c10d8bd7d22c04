"""Context-adaptive deployment: an emulated link, a monitor, re-planning between requests.

    link = ts.Link(trace="traces/bus.txt", rtt_ms=40)        # or ts.Link(bandwidth_mbps=5.85, rtt_ms=20)
    dep = ts.AdaptiveDeployment(m, costs=..., server=endpoint, planner="parametric", link=link)
    for frame in stream: y = dep(frame)
    dep.timeline      # per request: estimated and true bandwidth, plan in use, latency parts

    dep = ts.AdaptiveDeployment(m, costs, server=endpoint, predictor=tp.load("pred.json"))
    dep.set_machine_state(threads=2, background_load=0.5)    # a state not profiled: predicted costs
    dep.timeline[-1]["cost_source"]   # "predicted (xgboost, threads=2, load=0.5)"

Policies (C++, one interface): ``static_policy`` (a fixed plan), ``oracle_policy`` (the
optimal plan for the link's true bandwidth), ``adaptive_policy`` (tessera's, or any
planner re-planned per request); a :class:`Controller` runs any of them over a real
deployment and records the same request record for each. The link is emulated in user space inside the transport (token bucket over a
constant rate or a replayed trace, plus rtt/2 each way): deterministic, no root.
``emulation="sleep"`` waits for real; ``"account"`` only adds the emulated link
time to the measured latency (for long trace replays).
"""
from __future__ import annotations

import math
import os
from typing import Any, Iterable, Sequence

import torch

from . import _core
from .atoms import Model, _as_tuple, _rebuild
from .planning import make_cost_model
from .planning import Plan
from .power import EnergyController
from .transport import Link, deployment_options, read_trace  # noqa: F401 (the link is re-exported here)
from .types import Costs, Inputs, ModelLike, Placement

__all__ = ["Link", "AdaptiveDeployment", "Controller", "StreamDeployment", "LoadSwitch", "poisson_arrivals",
           "read_trace",
           "static_policy", "oracle_policy",
           "adaptive_policy", "RECORD_KEYS"]


RECORD_KEYS = ("index", "link_time_s", "est_bandwidth", "true_bandwidth", "plan_id", "device_atoms",
               "device_param_bytes", "switched",
               "decide_us", "total_ms", "device_ms", "transfer_ms", "server_ms", "queue_ms", "predicted_ms", "fallback",
               "probed", "server", "busy", "est_load", "est_device_load", "estimate_device_atoms", "why",
               "frequency_mhz", "tx_power_mw", "tx_rate_mbps", "energy_mj", "compute_mj", "tx_mj", "rx_mj", "idle_mj",
               "energy_queue", "frequency_applied", "cost_source", "device_threads", "device_background_load")


def record_dict(r) -> dict:
    """A C++ RequestRecord as a dict (RECORD_KEYS)."""
    return {k: getattr(r, k) for k in RECORD_KEYS}


def _adaptive_options(planner: str = "parametric", rtt_ms: float | None = None, hysteresis: float = 0.1,
                      initial_bandwidth_mbps: float = 0.0, memory_budget_mb: float | None = None,
                      probe_every: int = 1, window: int = 3, react_to_drops: bool = True,
                      estimator: str = "median", deadline_ms: float | None = None,
                      free_memory_fraction: float = 0.0, predictor: Any = None, model: Any = None,
                      profiled_threads: int | None = None, profiled_background_load: float | None = None,
                      infer_background_load: bool = True,
                      max_background_load: float | None = None) -> "_core.AdaptiveOptions":
    if rtt_ms is not None and not (rtt_ms >= 0 and math.isfinite(rtt_ms)):
        raise _core.InvalidArgumentError(f"rtt_ms = {rtt_ms} must be >= 0 (or None: measure it)")
    if memory_budget_mb is not None and not memory_budget_mb >= 0:
        raise _core.InvalidArgumentError(f"memory_budget_mb = {memory_budget_mb} must be >= 0 (or None)")
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
    mo.estimator = str(estimator)
    a.monitor = mo
    if deadline_ms is not None and not (deadline_ms > 0):
        raise _core.InvalidArgumentError(f"deadline_ms = {deadline_ms} must be > 0 (or None)")
    a.max_latency_ms = math.inf if deadline_ms is None else float(deadline_ms)
    a.free_memory_fraction = float(free_memory_fraction)
    if profiled_threads is not None and not (isinstance(profiled_threads, int) and profiled_threads >= 1):
        raise _core.InvalidArgumentError(f"profiled_threads = {profiled_threads!r} must be an int >= 1 (or None)")
    if profiled_background_load is not None and not (profiled_background_load >= 0
                                                     and math.isfinite(profiled_background_load)):
        raise _core.InvalidArgumentError(f"profiled_background_load = {profiled_background_load} must be a finite "
                                         "number of cores >= 0 (or None)")
    a.profiled = _core.DeviceState(0 if profiled_threads is None else int(profiled_threads),
                                   0.0 if profiled_background_load is None else float(profiled_background_load))
    a.infer_background_load = bool(infer_background_load)
    if max_background_load is None:
        max_background_load = float(os.cpu_count() or 1)
    if not (max_background_load >= 0 and math.isfinite(max_background_load)):
        raise _core.InvalidArgumentError(f"max_background_load = {max_background_load} must be a finite number of "
                                         "cores >= 0 (or None: this machine's cores)")
    a.max_background_load = float(max_background_load)
    if predictor is not None:
        _use_predictor(a, predictor, model)
    return a


def _use_predictor(a: "_core.AdaptiveOptions", predictor: Any, model: Any) -> None:
    """Wires a device cost predictor into the options: a Predictor (C++ or Python), a saved
    predictor's path, a predictor kind ("analytic": the uncalibrated roofline), or a function
    (threads, background_load) -> ms per atom."""
    if isinstance(predictor, (str, os.PathLike)):
        from . import predict as tp
        path = os.fspath(predictor)
        if os.path.exists(path) or path.endswith(".json"):
            predictor = tp.load(path)
        elif path in tp.kinds():
            predictor = _core.make_predictor(path)
        else:
            raise _core.InvalidArgumentError(f"unknown predictor kind '{path}' (a kind: {', '.join(tp.kinds())}; "
                                             "a saved predictor's path; a Predictor; or a function)")
    if isinstance(predictor, _core.Predictor):
        if model is None or not hasattr(model, "graph"):
            raise _core.InvalidArgumentError("a predictor needs the tessera.Model it predicts (its atoms' features)")
        a.use_predictor(predictor, model._core)
    elif callable(predictor):
        a.use_cost_function(getattr(predictor, "__name__", "function"), predictor)
    else:
        raise _core.InvalidArgumentError(f"predictor must be a tessera.predict.Predictor, a saved predictor's path, "
                                         f"a kind or a function, got {type(predictor).__name__}")


def _profiled_state(costs: Any) -> dict:
    """profiled_threads / profiled_background_load of a CostTable given as the device's costs (else {})."""
    dev = costs.get("device") if isinstance(costs, dict) else None
    if dev is not None and hasattr(dev, "threads") and hasattr(dev, "background_load"):
        return {"profiled_threads": int(dev.threads), "profiled_background_load": float(dev.background_load)}
    return {}


def static_policy(name: str, plan: Plan | _core.Plan | Placement) -> "_core.Policy":
    """The same plan (a Plan or a placement) for every request."""
    return _core.static_policy(name, [int(t) for t in getattr(plan, "placement", plan)])


def oracle_policy(model: ModelLike, costs: Costs | _core.CostModel, rtt_ms: float = 0.0) -> "_core.Policy":
    """The optimal parametric plan for the link's TRUE bandwidth at each request (needs an emulated link)."""
    return _core.oracle_policy(make_cost_model(model, costs), float(rtt_ms))


def adaptive_policy(model: ModelLike, costs: Costs | _core.CostModel, planner: str = "parametric",
                    **options: Any) -> "_core.Policy":
    """tessera's adaptive policy (parametric table + hysteresis), or any planner re-planned per request
    ("chain" is Neurosurgeon's). options: as for :class:`AdaptiveDeployment`."""
    options = {**_profiled_state(costs), **options}
    if options.get("predictor") is not None:
        options["model"] = model
    return _core.adaptive_policy(make_cost_model(model, costs), _adaptive_options(planner, **options))


class Controller:
    """Runs a policy over a real deployment: observe, decide, swap the plan, run, learn.

    model, costs: the model and per-atom costs ({"device": [...], "server": [...]}). server: the
    edge server's endpoint, or a list of them (several servers: each request goes to one chosen
    by server_policy, "best", "p2c" or "first", and the policy plans for that server's measured
    load; a Busy reply counts as load). policy: a C++ policy (:func:`static_policy`, :func:`oracle_policy`,
    :func:`adaptive_policy`). link, timeout_ms, retry_ms, device_slowdown, emulation: as for
    :class:`tessera.Deployment`. The other keywords set how the link is estimated (rtt_ms,
    initial_bandwidth_mbps, probe_every, window, react_to_drops, hysteresis) and the memory budget;
    probes are sent only for policies that plan on estimates. Every request leaves one record
    (:attr:`timeline`), the same for every policy.
    """

    def __init__(self, model: Model, costs: Costs | _core.CostModel, server: str | Sequence[str],
                 policy: _core.Policy, link: Link | None = None, timeout_ms: int = 2000, retry_ms: int = 1000,
                 device_slowdown: float = 1.0, emulation: str = "sleep", server_policy: str = "best",
                 **options: Any) -> None:
        self.model = model
        self.cost_model = make_cost_model(model, costs)
        self.link = link
        self.policy = policy
        opts = _adaptive_options(model=model, **options)
        o = deployment_options(server, timeout_ms, retry_ms, link, device_slowdown, emulation, server_policy)
        self._core = self._make(model, o, opts)

    def _make(self, model, o, opts):
        return _core.Controller(model._core, self.cost_model, o, self.policy, opts)

    def __call__(self, inputs: Inputs) -> Any:
        """Runs one request; returns what the whole model returns."""
        return _rebuild(self.model.graph.output_structure, self.run_flat(inputs))

    run = __call__

    def run_flat(self, inputs: Inputs) -> list[torch.Tensor]:
        """Runs one request; the model's outputs as a flat list of tensors."""
        return self._core.run(list(_as_tuple(inputs)))

    def set_memory_budget(self, mb: float) -> None:
        """The app's free memory changed: re-plan under this budget (MB of weights) next request."""
        self._core.set_memory_budget(float(mb) * 1e6)

    def set_machine_state(self, threads: int | None = None, background_load: float | None = None) -> None:
        """The device's machine changed, as the app knows it: intra-op ``threads`` and ``background_load``
        (CPU cores kept busy by other work) from the next request on. None: not declared (threads: the
        process's intra-op threads, read before every request; load: inferred from the measured slowdown
        with a predictor, else the profiled one). In a state the costs were not profiled in, an adaptive
        deployment with a ``predictor`` plans with the predicted device costs; without one it scales the
        profiled costs by the measured load. InvalidArgumentError for threads < 1 or a negative load."""
        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
            raise _core.InvalidArgumentError(f"threads = {threads!r} must be an int >= 1 (or None)")
        if background_load is not None and not isinstance(background_load, (int, float)):
            raise _core.InvalidArgumentError(f"background_load = {background_load!r} must be a number of cores >= 0")
        self._core.set_machine_state(threads, None if background_load is None else float(background_load))

    @property
    def placement(self) -> list[int]:
        return list(self._core.placement)

    @property
    def timeline(self) -> list[dict]:
        """One dict per request (estimated and true bandwidth, plan, latency parts in ms)."""
        return [record_dict(r) for r in self._core.timeline()]

    @property
    def last_record(self) -> _core.RequestRecord:
        """The C++ RequestRecord of the last request."""
        return self._core.timeline()[-1]

    @property
    def last_blocks(self) -> list[_core.BlockTiming]:
        """Per block of the last request: where it ran, timings, bytes, and why it fell back."""
        return self._core.deployment().last_timeline().blocks

    @property
    def monitor(self) -> _core.Monitor:
        """The C++ monitor: its estimates (bandwidth_mbps, rtt_ms, server_load, device_load) and samples."""
        return self._core.monitor()

    @property
    def breakpoints(self) -> list[float]:
        return list(self._core.breakpoints())


class AdaptiveDeployment(Controller):
    """A deployment that watches its transfers and switches plans between requests.

    model, costs: the model and per-atom costs ({"device": [...], "server": [...]}, as for
    :func:`tessera.plan`). server: the edge server's endpoint, or a list of them (server_policy
    chooses one per request, and the planner sees that server's load). planner: "parametric" (the
    precomputed envelope over bandwidth, default), "mincut", "compressed", "chain" or "gads".
    link: a :class:`Link` every message passes through (emulation). rtt_ms: the round trip to
    plan with; None measures it with probes. timeout_ms / retry_ms: a reply later than
    timeout_ms falls back to the device, and the server is retried after retry_ms.
    device_slowdown, emulation: as for :class:`tessera.Deployment`. hysteresis: keep the plan
    while the estimate stays within its validity interval widened by this fraction (0.1, chosen by the simulator).
    initial_bandwidth_mbps: the estimate before any transfer (0: probe first).
    memory_budget_mb: device memory for weights (None: unlimited; gads plans under it).
    probe_every: probe the link after this many requests that sent nothing. window: samples of the
    median and harmonic estimators. react_to_drops: believe a drop below the estimate at once (rises
    need confirmation). estimator: "median" (default: one outlier never moves it), "ewma", "harmonic"
    (mean of the window) or "kalman" (see MonitorOptions). deadline_ms: a latency requirement
    the plans must meet (gads re-plans under it; when none can, the fastest runs and the record says
    so). free_memory_fraction: > 0 reads the machine's free memory (cgroup-aware) before every request
    and plans with this fraction of it as the device's budget for weights. controller: a
    :class:`tessera.EnergyController` - then every request's split, clock frequency and transmit power
    come from it (CutEdge's drift-plus-penalty under its energy budget and deadline), the frequency is
    emulated as the device's slowdown x that clock's time factor and the transmit power as the uplink's
    Shannon rate (nothing changes this machine's clock), and the timeline adds the operating point, the
    energy by part and the virtual queue.
    predictor: AdaMEC's runtime latency predictor in the loop - a :class:`tessera.predict.Predictor`
    (C++ or Python, e.g. ``tp.train(samples)``), a saved predictor's path, a predictor kind, or a function
    (threads, background_load) -> device ms per atom. The device costs in ``costs`` describe one machine
    state: profiled_threads and profiled_background_load (default: those of a CostTable given as
    ``costs["device"]``, else this process's intra-op threads at construction and no load). A request in
    another state - declared with :meth:`set_machine_state`, another ``torch.set_num_threads``, or (no load
    declared, infer_background_load) a measured device slowdown that the predictor explains best by a
    background load on a grid of 0.25 cores up to max_background_load (default: this machine's cores) -
    is planned on the predictor's costs for that state; the measured device load is then measured against
    them and still scales them when the prediction is off. States within 0.125 cores of load of the
    profiled one, with its threads, count as profiled. Without a predictor, unprofiled states scale the
    profiled costs by the measured load (as before). Each timeline record's ``cost_source`` says which
    ("profiled", "scaled x1.31", "predicted (xgboost, threads=2, load=0.5)", "... x1.12"), with
    ``device_threads`` / ``device_background_load`` the state those costs describe.
    variants, accuracy_budget: a :class:`tessera.VariantSet` (profiled, its accuracy or fidelity measured)
    and the loss allowed (0.01 = one point of top-1): then the call returns a
    :class:`tessera.VariantDeployment` choosing (variant, split, codec) per request instead.
    """

    def __new__(cls, model=None, costs=None, server: str = "", *args, variants=None, accuracy_budget=None, **kw):
        # With variants= (a tessera.VariantSet): the (variant, split, codec) of every request under an
        # accuracy budget - a tessera.VariantDeployment (see tessera.variant).
        if variants is None:
            return super().__new__(cls)
        from .variant import VariantDeployment

        if accuracy_budget is None:
            raise _core.InvalidArgumentError("variants= needs accuracy_budget= (a loss fraction, 0.01 = 1 point)")
        if model is not None and getattr(model, "hash", None) != variants.base.model.hash:
            raise _core.InvalidArgumentError("model is not the variant set's base model (variants[0])")
        if args:
            raise _core.InvalidArgumentError("with variants=, pass the options by name")
        known = {"link", "rtt_ms", "timeout_ms", "retry_ms", "device_slowdown", "emulation", "initial_bandwidth_mbps",
                 "estimator", "window", "memory_budget_mb", "free_memory_fraction"}
        unknown = set(kw) - known
        if unknown:
            raise _core.InvalidArgumentError(f"options {sorted(unknown)} do not apply with variants= (known: "
                                             f"{sorted(known)})")
        if kw.get("rtt_ms") is None:
            kw["rtt_ms"] = 0.0
        return VariantDeployment(variants, server, accuracy_budget, **kw)

    def __init__(self, model: Model, costs: Costs | _core.CostModel, server: str | Sequence[str],
                 planner: str = "parametric", link: Link | None = None,
                 rtt_ms: float | None = None, timeout_ms: int = 2000, retry_ms: int = 1000,
                 device_slowdown: float = 1.0, emulation: str = "sleep", server_policy: str = "best",
                 hysteresis: float = 0.1,
                 initial_bandwidth_mbps: float = 0.0, memory_budget_mb: float | None = None, probe_every: int = 1,
                 window: int = 3, react_to_drops: bool = True, estimator: str = "median",
                 deadline_ms: float | None = None, free_memory_fraction: float = 0.0,
                 controller: EnergyController | None = None, predictor: Any = None,
                 profiled_threads: int | None = None, profiled_background_load: float | None = None,
                 infer_background_load: bool = True, max_background_load: float | None = None) -> None:
        self._energy = controller
        if controller is not None and predictor is not None:
            raise _core.InvalidArgumentError("predictor= does not apply with controller= (the energy controller plans "
                                             "on its own cost model)")
        self.predictor = predictor  # held here: a Python predictor must outlive the C++ deployment's calls
        state = _profiled_state(costs)
        if profiled_threads is not None:
            state["profiled_threads"] = profiled_threads
        if profiled_background_load is not None:
            state["profiled_background_load"] = profiled_background_load
        super().__init__(model, costs, server, None, link=link, timeout_ms=timeout_ms, retry_ms=retry_ms,
                         device_slowdown=device_slowdown, emulation=emulation, server_policy=server_policy,
                         planner=planner, rtt_ms=rtt_ms,
                         hysteresis=hysteresis, initial_bandwidth_mbps=initial_bandwidth_mbps,
                         memory_budget_mb=memory_budget_mb, probe_every=probe_every, window=window,
                         react_to_drops=react_to_drops, estimator=estimator, deadline_ms=deadline_ms,
                         free_memory_fraction=free_memory_fraction, predictor=predictor,
                         infer_background_load=infer_background_load, max_background_load=max_background_load,
                         **state)

    def _make(self, model, o, opts):
        if self._energy is not None:  # CutEdge: split, clock and transmit power per request, under a budget
            from .power import frequency_control
            ctl = self._energy
            self.frequency_control = frequency_control()  # says whether the clock is emulated (it is, here)
            self.policy = _core.energy_policy(ctl.cost_model, ctl.power_core, ctl.options)
            return _core.Controller(model._core, self.cost_model, o, self.policy, opts)
        core = _core.AdaptiveDeployment(model._core, self.cost_model, o, opts)
        self.policy = core.policy()
        return core


# The light/heavy-load decision alone (C++, torch-free): LoadSwitch(latency_ms, throughput_fps, options);
# arrive(t_s), decide(queued) -> "latency" | "throughput", why, arrival_rate, latency_rate.
LoadSwitch = _core.LoadSwitch
LoadSwitchOptions = _core.LoadSwitchOptions

STREAM_RECORD_KEYS = ("index", "arrival_s", "start_s", "done_s", "wait_ms", "latency_ms", "service_ms", "mode",
                      "switched", "fallback", "queued", "arrival_rate", "latency_rate", "why")


class StreamDeployment:
    """Light load and heavy load (DADS): requests that arrive over time, served by the latency-optimal
    plan one at a time while it keeps up, and by the throughput-optimal two-stage pipeline with up to
    ``in_flight`` requests travelling (the device's next stage overlapping the uplink and the server)
    when they arrive faster than the latency plan serves them; back when the rate falls.

        sd = ts.StreamDeployment(m, costs, server=endpoint, bandwidth_mbps=20, rtt_ms=20,
                                 device_slowdown=10, in_flight=4)
        ys = sd.serve(frames, arrivals_s)     # frame i arrives arrivals_s[i] s after the call
        sd.records                            # per request: mode, wait, latency, why that mode
        sd.stats()                            # served fps, latency p50/p99, switches, both plans' predictions

    Both plans are made from ``costs`` for the link (bandwidth_mbps, rtt_ms): the latency plan by
    min-cut, the throughput plan by ``plan_pipeline_dp`` over {device, server}. policy: "auto" (switch),
    "latency" or "throughput" (stay: the baselines). switch_up / switch_down: heavy load above
    switch_up x the latency plan's service rate (measured, predicted until measured), light load below
    switch_down x it with nothing waiting; queue_up: heavy load too when that many requests wait.
    device_slowdown and emulation ("sleep" waits for real: the device's compute, the link) emulate
    the device and the link as for :class:`tessera.Deployment`; the link is a constant ``ts.Link``.
    """

    def __init__(self, model: Model, costs: Costs | _core.CostModel, server: str, bandwidth_mbps: float,
                 rtt_ms: float = 0.0,
                 device_slowdown: float = 1.0, emulation: str = "sleep", in_flight: int = 4,
                 policy: str = "auto", switch_up: float = 1.0, switch_down: float = 0.7, queue_up: int = 3,
                 rate_window: int = 8, timeout_ms: int = 5000, retry_ms: int = 1000,
                 reply_bind: str = "tcp://127.0.0.1:*") -> None:
        self.model = model
        self.cost_model = make_cost_model(model, costs)
        link = Link(bandwidth_mbps=bandwidth_mbps, rtt_ms=rtt_ms)
        d = deployment_options(server, timeout_ms, retry_ms, link, device_slowdown, emulation)
        p = _core.PipelineOptions()
        p.in_flight = int(in_flight)
        p.timeout_ms = int(timeout_ms)
        p.retry_ms = int(retry_ms)
        p.reply_bind = reply_bind
        o = _core.LoadSwitchOptions()
        o.policy = str(policy)
        o.switch_up = float(switch_up)
        o.switch_down = float(switch_down)
        o.queue_up = int(queue_up)
        o.rate_window = int(rate_window)
        c = _core.StreamContext()
        c.bandwidth_mbps = float(bandwidth_mbps)
        c.rtt_ms = float(rtt_ms)
        self._core = _core.StreamController(model._core, self.cost_model, c, d, p, o)

    def serve(self, frames: Iterable[Inputs], arrivals_s: Iterable[float]) -> list:
        """Serves every frame, frame i arriving arrivals_s[i] seconds after the call (non-decreasing);
        returns the outputs in frame order."""
        flat = [list(_as_tuple(f)) for f in frames]
        ys = self._core.serve(flat, [float(t) for t in arrivals_s])
        return [_rebuild(self.model.graph.output_structure, y) for y in ys]

    @property
    def records(self) -> list[dict]:
        """One dict per request of the last serve() (STREAM_RECORD_KEYS), in frame order."""
        return [{k: getattr(r, k) for k in STREAM_RECORD_KEYS} for r in self._core.records()]

    def stats(self) -> _core.StreamStats:
        """Of the last serve(): served fps, latency p50/p99, switches, both plans' predictions."""
        return self._core.stats()

    @property
    def latency_plan(self) -> _core.Plan:
        """The latency-optimal plan (min-cut), served one request at a time under light load."""
        return self._core.latency_plan

    @property
    def throughput_plan(self) -> _core.PipelinePlan:
        """The throughput-optimal two-stage pipeline plan, served under heavy load."""
        return self._core.throughput_plan


def poisson_arrivals(rate_per_s: float, n: int, seed: int = 1) -> list[float]:
    """n arrival times (s) of a Poisson process of this rate, starting at 0."""
    import random
    if not (rate_per_s > 0 and math.isfinite(rate_per_s)):
        raise _core.InvalidArgumentError(f"rate_per_s = {rate_per_s} must be > 0")
    rng, t, out = random.Random(seed), 0.0, []
    for _ in range(int(n)):
        out.append(t)
        t += rng.expovariate(rate_per_s)
    return out
