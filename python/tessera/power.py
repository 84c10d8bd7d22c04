"""The device's energy: a power model, energy-aware plans, CutEdge's Lyapunov controller (issue 16).

    power = ts.PowerModel.from_android_profile("power_profile.xml")      # the file phones ship (AOSP format)
    power = ts.PowerModel(freqs_mhz=[600, 1200, 1800, 2400], active_mw=[180, 420, 900, 1700], idle_mw=30,
                          tx=ts.Radio(max_power_mw=200, bandwidth_mhz=10), rx_mw=120)       # or by hand
    e = ts.energy(m, plan, power, frequency_mhz=1200, bandwidth_mbps=5.85, rtt_ms=20)   # mJ by part
    d = ts.plan_energy(m, costs, power, bandwidth_mbps=5.85, rtt_ms=20, energy_weight=0.5, deadline_ms=300)
    ctl = ts.EnergyController(m, costs, power, budget_mj=120, V=50, deadline_ms=300)
    curves = ts.tradeoff(m, costs, power, trace="...", V=[1, 10, 100, 1000], budget_mj=120)

The model (plan/energy.h states it in full): an atom's device time at frequency f is its cost-model
time x (memory_bound + (1 - memory_bound) x reference / f), at active power P(f); the uplink's rate at
transmit power p is Shannon's B log2(1 + g p / N) with g / N read from the trace (the trace's bandwidth
is the rate at max power); receiving costs rx_mw, waiting (server compute, rtt) idle_mw. For a given
(f, p), latency and energy are additive, so a weighted sum is minimised exactly by one min cut.
Frequencies are emulated: nothing here changes this machine's clock.
"""
from __future__ import annotations

import math
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import _core
from .planning import Plan, make_cost_model
from .transport import Link
from .types import BandwidthTrace, Costs, ModelLike, PathLike, Placement

__all__ = ["Radio", "PowerModel", "energy", "plan_energy", "energy_hull", "EnergyController", "tradeoff",
           "sample_profile", "SAMPLE_PROFILES", "energy_oracle_from_hulls"]

DATA = Path(__file__).resolve().parent / "data"
SAMPLE_PROFILES = ("phone_big_little_wifi", "phone_lte")


def sample_profile(name: str) -> Path:
    """Path of a sample power profile shipped with tessera (SAMPLE_PROFILES); each file says where
    every number comes from."""
    if name not in SAMPLE_PROFILES:
        raise _core.InvalidArgumentError(f"no sample power profile {name!r} (samples: {', '.join(SAMPLE_PROFILES)})")
    return DATA / f"{name}.xml"


@dataclass
class Radio:
    """The uplink radio: max_power_mw is the power the link's bandwidth is reached at; with a channel
    width (bandwidth_mhz > 0) a lower power gives Shannon's lower rate, B log2(1 + g p / N); levels_mw:
    the transmit powers a plan may choose (default: the maximum only). noise_dbm is kept for the record:
    the channel's gain over the noise is read from the link's bandwidth at max power, so N cancels."""
    max_power_mw: float
    bandwidth_mhz: float = 0.0
    levels_mw: list = field(default_factory=list)
    noise_dbm: float = -100.0

    def core(self) -> "_core.Radio":
        r = _core.Radio()
        r.max_power_mw = float(self.max_power_mw)
        r.bandwidth_mhz = float(self.bandwidth_mhz)
        r.levels_mw = [float(x) for x in self.levels_mw]
        return r


class PowerModel:
    """Device power: per frequency level (MHz, increasing) the active power while computing (mW); idle
    power while waiting; receive power; the transmit radio. reference_mhz: the frequency the cost
    model's device times hold at (default: the highest). memory_bound: share of compute time that does
    not scale with the clock. Bad figures are named errors."""

    def __init__(self, freqs_mhz: Sequence[float], active_mw: Sequence[float], idle_mw: float,
                 tx: Radio | _core.Radio, rx_mw: float = 0.0, reference_mhz: float = 0.0, memory_bound: float = 0.0,
                 source: str = "") -> None:
        c = _core.PowerModel()
        c.freqs_mhz = [float(f) for f in freqs_mhz]
        c.active_mw = [float(p) for p in active_mw]
        c.idle_mw = float(idle_mw)
        c.rx_mw = float(rx_mw)
        c.tx = tx.core() if isinstance(tx, Radio) else tx
        c.reference_mhz = float(reference_mhz)
        c.memory_bound = float(memory_bound)
        c.source = source
        c.validate()
        self._core = c
        self.tx = tx

    def __getattr__(self, name):  # freqs_mhz, active_mw, idle_mw, rx_mw, reference_mhz, memory_bound, source
        return getattr(self.__dict__["_core"], name)

    def __repr__(self):
        c = self._core
        return (f"PowerModel({len(c.freqs_mhz)} levels {c.freqs_mhz[0]:g}-{c.freqs_mhz[-1]:g} MHz at "
                f"{c.active_mw[0]:g}-{c.active_mw[-1]:g} mW, idle {c.idle_mw:g} mW, tx max {c.tx.max_power_mw:g} mW, "
                f"rx {c.rx_mw:g} mW{', ' + c.source if c.source else ''})")

    @classmethod
    def from_android_profile(cls, path: PathLike, cluster: int = -1, radio: str = "auto", voltage: float = 3.85,
                             channel_mhz: float | None = None, memory_bound: float = 0.0) -> "PowerModel":
        """Reads Android's power_profile.xml (AOSP format: currents in mA, CPU speeds in kHz).

        cluster: the CPU cluster inference runs on (default: the last, the big cores), one core busy:
        its active current per speed (cpu.core_power.clusterN + cpu.cluster_power.clusterN, or the older
        cpu.active.clusterN / cpu.active arrays) plus cpu.awake. idle: cpu.awake (else cpu.idle) plus the
        radio's idle current. radio: "wifi", "modem" or "auto" (wifi if present): tx from
        *.controller.tx (an array gives several transmit levels; the last is the maximum) or
        wifi.active / radio.active; rx from *.controller.rx. Currents become power at the radio's
        *.controller.voltage (mV) when given, else ``voltage`` (V). channel_mhz: the channel width for
        Shannon's rate (default 20 MHz for Wi-Fi, 10 MHz for LTE). Malformed XML or a missing field is
        an error naming the file, the field and the line."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except FileNotFoundError:
            raise _core.NotFoundError(f"no power profile at {path}") from None
        items, arrays = _parse_power_profile(text, str(path))

        def need(name, what):
            raise _core.InvalidArgumentError(f"{path}: no {name} ({what}); the profile has: "
                                             f"{', '.join(sorted(list(items) + list(arrays)))}")

        def num(name):
            v, _ = items[name]
            return v

        n_clusters = len(arrays["cpu.clusters.cores"][0]) if "cpu.clusters.cores" in arrays else 1
        k = n_clusters - 1 if cluster < 0 else int(cluster)
        if not 0 <= k < n_clusters:
            raise _core.InvalidArgumentError(f"{path}: cluster {cluster} out of range (the profile has {n_clusters})")
        speeds = None
        for name in (f"cpu.core_speeds.cluster{k}", f"cpu.speeds.cluster{k}", "cpu.speeds"):
            if name in arrays:
                speeds, line = arrays[name]
                break
        if speeds is None:
            need(f"cpu.core_speeds.cluster{k}", "CPU speeds in kHz")
        if f"cpu.core_power.cluster{k}" in arrays:
            core, line = arrays[f"cpu.core_power.cluster{k}"]
            cl = num(f"cpu.cluster_power.cluster{k}") if f"cpu.cluster_power.cluster{k}" in items else 0.0
            active_ma = [c + cl for c in core]
        else:
            found = next((n for n in (f"cpu.active.cluster{k}", "cpu.active") if n in arrays), None)
            if found is None:
                need(f"cpu.core_power.cluster{k}", "active CPU current per speed, mA")
            active_ma, line = arrays[found]
        if len(active_ma) != len(speeds):
            raise _core.InvalidArgumentError(f"{path}:{line}: {len(active_ma)} CPU currents for {len(speeds)} speeds "
                                             f"(cluster {k})")
        awake = num("cpu.awake") if "cpu.awake" in items else (num("cpu.idle") if "cpu.idle" in items else 0.0)
        if radio == "auto":
            radio = "wifi" if any(n.startswith("wifi.") for n in list(items) + list(arrays)) else "modem"
        if radio not in ("wifi", "modem"):
            raise _core.InvalidArgumentError(f"radio must be 'wifi', 'modem' or 'auto', got {radio!r}")
        pre = f"{radio}.controller"
        volts = num(f"{pre}.voltage") / 1e3 if f"{pre}.voltage" in items else float(voltage)
        if f"{pre}.tx" in arrays:
            tx_ma = list(arrays[f"{pre}.tx"][0])
        elif f"{pre}.tx" in items:
            tx_ma = [num(f"{pre}.tx")]
        else:
            alt = "wifi.active" if radio == "wifi" else "radio.active"
            if alt not in items:
                need(f"{pre}.tx", f"the {radio} transmit current, mA (or {alt})")
            tx_ma = [num(alt)]
        rx_ma = num(f"{pre}.rx") if f"{pre}.rx" in items else tx_ma[-1]
        idle_radio = num(f"{pre}.idle") if f"{pre}.idle" in items else 0.0
        levels = sorted(ma * volts for ma in tx_ma)
        width = channel_mhz if channel_mhz is not None else (20.0 if radio == "wifi" else 10.0)
        return cls(freqs_mhz=[s / 1e3 for s in speeds], active_mw=[(a + awake) * volts for a in active_ma],
                   idle_mw=(awake + idle_radio) * volts,
                   tx=Radio(max_power_mw=levels[-1], bandwidth_mhz=width, levels_mw=levels),
                   rx_mw=rx_ma * volts, memory_bound=memory_bound,
                   source=f"{path.name} (cluster {k}, {radio}, {volts:g} V)")


def frequency_control() -> str:
    """How a chosen clock frequency takes effect here: "cpufreq" (the userspace governor and a writable
    cpu*/cpufreq/scaling_setspeed: set for real per request) or "emulated (why)" (the device's compute
    is stretched by the frequency's time factor). The root is /sys/devices/system/cpu or
    $TESSERA_CPUFREQ_ROOT."""
    why = _core.cpufreq_unavailable()
    return "cpufreq" if not why else f"emulated ({why})"


def _parse_power_profile(text: bytes, where: str):
    """items {name: (value, line)}, arrays {name: ([values], line)} of an AOSP power profile."""
    items, arrays = {}, {}
    stack, buf = [], []
    p = xml.parsers.expat.ParserCreate()

    def start(tag, attrs):
        line = p.CurrentLineNumber
        if tag in ("item", "array") and "name" not in attrs:
            raise _core.InvalidArgumentError(f"{where}:{line}: <{tag}> without a name")
        stack.append((tag, attrs.get("name"), line, []))
        buf.clear()

    def end(tag):
        tag_, name, line, values = stack.pop()
        txt = "".join(buf).strip()
        buf.clear()
        if tag_ == "value":
            if not stack or stack[-1][0] != "array":
                raise _core.InvalidArgumentError(f"{where}:{line}: <value> outside an <array>")
            stack[-1][3].append(_number(txt, where, line, stack[-1][1]))
        elif tag_ == "item":
            items[name] = (_number(txt, where, line, name), line)
        elif tag_ == "array":
            arrays[name] = (values, line)

    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = buf.append
    try:
        p.Parse(text, True)
    except xml.parsers.expat.ExpatError as e:
        raise _core.InvalidArgumentError(f"{where}:{e.lineno}: malformed XML: {xml.parsers.expat.errors.messages[e.code]}"
                                         ) from None
    return items, arrays


def _number(txt: str, where: str, line: int, name) -> float:
    try:
        v = float(txt)
    except ValueError:
        raise _core.InvalidArgumentError(f"{where}:{line}: {name}: {txt!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise _core.InvalidArgumentError(f"{where}:{line}: {name} = {txt} must be a finite number >= 0")
    return v


def _pm(power) -> "_core.PowerModel":
    return power._core if isinstance(power, PowerModel) else power


def _placement(plan) -> list:
    return [int(t) for t in getattr(plan, "placement", plan)]


def energy(model: ModelLike, plan: Plan | _core.Plan | Placement, power: PowerModel | _core.PowerModel,
           costs: Costs | _core.CostModel | None = None, frequency_mhz: float = 0.0, tx_power_mw: float = 0.0,
           bandwidth_mbps: float | None = None, rtt_ms: float | None = None, link: Link | None = None) -> dict:
    """Energy (mJ, by part: compute, tx, rx, idle) and latency of a plan (or placement) per request at an
    operating point (frequency and transmit power; 0 = the highest), on a link of bandwidth_mbps (the rate
    at max transmit power) and rtt_ms - or a ts.Link (its mean bandwidth and rtt), or else the plan's own
    context. costs: as for ts.plan; default the cost model a ts.plan result was made with."""
    cm = make_cost_model(model, costs) if costs is not None else getattr(plan, "_cm", None)
    if cm is None:
        raise _core.InvalidArgumentError("energy() needs the costs (costs=) unless given a plan made by ts.plan")
    if link is not None:
        bandwidth_mbps = link.mean_bandwidth if bandwidth_mbps is None else bandwidth_mbps
        rtt_ms = link.rtt_ms if rtt_ms is None else rtt_ms
    core = getattr(plan, "core", None)
    if bandwidth_mbps is None:
        if core is None:
            raise _core.InvalidArgumentError("energy() needs bandwidth_mbps= or link= for a bare placement")
        bandwidth_mbps = core.bandwidth_mbps
    if rtt_ms is None:
        rtt_ms = core.rtt_ms if core is not None else 0.0
    e = _core.device_energy(cm, _pm(power), _placement(plan), _core.Operating(float(frequency_mhz),
                                                                                      float(tx_power_mw)),
                            float(bandwidth_mbps), float(rtt_ms))
    return _parts(e)


def _parts(e) -> dict:
    return {"total_mj": e.total_mj, "compute_mj": e.compute_mj, "tx_mj": e.tx_mj, "rx_mj": e.rx_mj,
            "idle_mj": e.idle_mj, "latency_ms": e.latency_ms, "device_ms": e.device_ms, "server_ms": e.server_ms,
            "transfer_ms": e.transfer_ms, "throughput_fps": e.throughput_fps, "tx_rate_mbps": e.tx_rate_mbps,
            "up_bytes": e.up_bytes, "explain": e.explain()}


def _weights(latency_weight, energy_weight, deadline_ms):
    w = _core.EnergyWeights()
    w.latency = float(latency_weight)
    w.energy = float(energy_weight)
    w.deadline_ms = math.inf if deadline_ms is None else float(deadline_ms)
    return w


def plan_energy(model: ModelLike, costs: Costs | _core.CostModel, power: PowerModel | _core.PowerModel,
                bandwidth_mbps: float, rtt_ms: float = 0.0, latency_weight: float = 1.0, energy_weight: float = 0.0,
                deadline_ms: float | None = None, brute_force: bool = False) -> EnergyPlan:
    """The (placement, frequency, transmit power) minimising latency_weight x ms + energy_weight x mJ
    with latency <= deadline_ms: one exact min cut per (frequency, power), the small set enumerated.
    latency_weight=0, energy_weight=1: minimum energy (under the deadline). brute_force: every placement
    (<= 20 atoms), the test oracle. Returns the C++ EnergyDecision (placement, op, parts, why)."""
    cm = make_cost_model(model, costs)
    fn = _core.plan_energy_brute_force if brute_force else _core.plan_energy
    return EnergyPlan(fn(cm, _pm(power), float(bandwidth_mbps), float(rtt_ms),
                         _weights(latency_weight, energy_weight, deadline_ms)), cm)


class EnergyPlan:
    """An energy-aware plan: placement, op (frequency_mhz, tx_power_mw), parts (energy by part and
    latency), objective, meets_deadline, why; explain() lists the operating point, the energy parts,
    the blocks and every value that crosses the link."""

    def __init__(self, core: _core.EnergyDecision, cost_model: _core.CostModel) -> None:
        self._core, self._cm = core, cost_model

    def __getattr__(self, name):  # placement, op, parts, objective, meets_deadline, lagrangian, why, ...
        return getattr(self.__dict__["_core"], name)

    def explain(self) -> str:
        return self._core.explain(self._cm)

    def __repr__(self):
        c = self._core
        return (f"EnergyPlan({c.op.frequency_mhz:g} MHz, {c.op.tx_power_mw:g} mW, {c.parts.total_mj:.1f} mJ, "
                f"{c.parts.latency_ms:.1f} ms)")


def energy_hull(model: ModelLike, costs: Costs | _core.CostModel, power: PowerModel | _core.PowerModel,
                bandwidth_mbps: float, rtt_ms: float = 0.0,
                deadline_ms: float | None = None) -> list[_core.EnergyDecision]:
    """One request's energy-latency frontier: the plans (EnergyDecision: placement, op, parts) that some
    weighting of latency and energy makes optimal, from the fastest to the least energy."""
    cm = make_cost_model(model, costs)
    return list(_core.energy_hull(cm, _pm(power), float(bandwidth_mbps), float(rtt_ms),
                                  math.inf if deadline_ms is None else float(deadline_ms)))


def energy_oracle_from_hulls(hulls: list, budget_mj: float) -> tuple[list, float]:
    """The offline oracle that knows every request's bandwidth, over precomputed hulls (one
    :func:`energy_hull` per request): every request at its fastest plan, then the moves down the
    hulls that add the least latency per mJ saved, in that order, until the mean energy is within
    budget_mj. Returns (one EnergyDecision per request, the slope of the last move in ms per mJ,
    0 when no move was needed): the least mean latency any policy could have with that energy
    (what :func:`tradeoff` compares the controller with). C++ (plan/energy.h)."""
    return _core.energy_oracle_from_hulls(hulls, float(budget_mj))


class EnergyController:
    """CutEdge's online controller: per request the (split, frequency, transmit power) minimising
    V x latency + Q x energy under the deadline, then Q <- max(Q + energy - budget_mj, 0): the long-run
    average energy stays at the budget, latency as low as that allows (higher V: lower latency, the
    budget reached more slowly). A budget below the device's idle energy over the shortest request is
    refused."""

    def __init__(self, model: ModelLike, costs: Costs | _core.CostModel, power: PowerModel | _core.PowerModel,
                 budget_mj: float, V: float = 50.0, deadline_ms: float | None = None) -> None:
        o = _core.ControllerOptions()
        o.budget_mj = float(budget_mj)
        o.V = float(V)
        o.deadline_ms = math.inf if deadline_ms is None else float(deadline_ms)
        self.model, self.power, self.options = model, power, o
        self.power_core = _pm(power)
        self.cost_model = make_cost_model(model, costs)
        self._core = _core.EnergyController(self.cost_model, self.power_core, o)

    def decide(self, bandwidth_mbps: float, rtt_ms: float = 0.0) -> _core.EnergyDecision:
        """This request's (split, frequency, transmit power) at this link, under the current queue."""
        return self._core.decide(float(bandwidth_mbps), float(rtt_ms))

    def observe(self, energy_mj: float) -> None:
        self._core.observe(float(energy_mj))

    @property
    def queue(self) -> float:
        return self._core.queue

    def run(self, bandwidths_mbps: Iterable[float], rtt_ms: float = 0.0) -> list[dict]:
        """One request per bandwidth: decide, spend what the model says, update the queue. Per request:
        bandwidth, queue before it, device atoms, frequency, transmit power, energy parts, latency."""
        out = []
        for r in _core.run_controller(self._core, [float(b) for b in bandwidths_mbps], float(rtt_ms)):
            d = r.decision
            out.append({"index": r.index, "bandwidth_mbps": r.bandwidth_mbps, "queue": r.queue,
                        "device_atoms": sum(1 for t in d.placement if t == 0), "frequency_mhz": d.op.frequency_mhz,
                        "tx_power_mw": d.op.tx_power_mw, "meets_deadline": d.meets_deadline, **_parts(d.parts)})
        return out


def _trace_bandwidths(trace, requests: int, period_s: float, scale: float) -> list[float]:
    """One bandwidth per request: a trace (file or samples) scaled, or a constant Mbit/s."""
    from .transport import Link
    link = Link(bandwidth_mbps=trace) if isinstance(trace, (int, float)) else Link(trace=trace, scale=scale)
    n = requests or max(1, int(link.duration_s // period_s))
    return [link.bandwidth_at(i * period_s) for i in range(n)]


def tradeoff(model: ModelLike, costs: Costs | _core.CostModel, power: PowerModel | _core.PowerModel,
             trace: BandwidthTrace | float, V: Iterable[float] = (1, 10, 100, 1000), budget_mj: float | None = None,
             rtt_ms: float = 20.0, period_s: float = 1.0, requests: int = 0, scale: float = 1.0,
             deadline_ms: float | None = None) -> list[dict]:
    """The energy / latency / throughput trade-off over a bandwidth trace (a file, samples, or a constant
    Mbit/s): one point per V of the controller, and the offline oracle at each point's realised mean
    energy (the best mean latency any policy could have had with that energy). budget_mj: default halfway
    between the least-energy and the fastest plans' mean energy on this trace."""
    bws = _trace_bandwidths(trace, requests, period_s, scale)
    cm = make_cost_model(model, costs)
    pm = _pm(power)
    if budget_mj is None:
        fast = [_core.plan_energy(cm, pm, b, rtt_ms, _weights(1, 0, deadline_ms)).parts.total_mj for b in bws]
        frugal = [_core.plan_energy(cm, pm, b, rtt_ms, _weights(0, 1, deadline_ms)).parts.total_mj for b in bws]
        budget_mj = (sum(fast) + sum(frugal)) / (2 * len(bws))
    dl = math.inf if deadline_ms is None else float(deadline_ms)
    hulls = [_core.energy_hull(cm, pm, b, float(rtt_ms), dl) for b in bws]  # once, for every V's oracle
    points = []
    for v in V:
        ctl = EnergyController(model, costs, power, budget_mj, V=v, deadline_ms=deadline_ms)
        recs = ctl.run(bws, rtt_ms)
        e = sum(r["total_mj"] for r in recs) / len(recs)
        lat = sum(r["latency_ms"] for r in recs) / len(recs)
        fps = len(recs) / sum(1.0 / r["throughput_fps"] for r in recs)
        ds, lam = energy_oracle_from_hulls(hulls, e * (1 + 1e-9))
        o_lat = sum(d.parts.latency_ms for d in ds) / len(ds)
        points.append({"V": v, "budget_mj": budget_mj, "energy_mj": e, "latency_ms": lat, "throughput_fps": fps,
                       "oracle_latency_ms": o_lat, "latency/oracle": lat / o_lat if o_lat > 0 else math.nan,
                       "queue_max": max(r["queue"] for r in recs), "records": recs})
    return points
