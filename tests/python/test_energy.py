"""The device's energy from Python: Android power profiles read (and refused by line), energy-aware plans
against brute force, the Lyapunov controller keeping its budget, the trade-off curve against the offline
oracle, and the energy objective refused without energy data."""
import math
import random

import pytest

import tessera as ts
from tessera.testing import random_dag


def _tiny(seed=3, n=9):
    rng = random.Random(seed)
    dag = random_dag(rng, n, skip=0.3, extra_outputs=0.1, byte_unit=500.0)
    costs = {"device": [rng.uniform(5, 60) for _ in range(n)], "server": [rng.uniform(0.5, 6) for _ in range(n)]}
    return dag, costs


def _phone():
    return ts.PowerModel(freqs_mhz=[600, 1200, 1800, 2400], active_mw=[180, 420, 900, 1700], idle_mw=30,
                         tx=ts.Radio(max_power_mw=200, bandwidth_mhz=10, levels_mw=[50, 100, 200]), rx_mw=120)


def test_android_profiles_are_read_with_every_figure_from_the_file():
    wifi = ts.PowerModel.from_android_profile(ts.sample_profile("phone_big_little_wifi"))
    # the big cluster (the last): 800/1200/1400 MHz at 400/500/600 mA, plus cpu.awake 30 mA, at the radio's 3.85 V
    assert wifi.freqs_mhz == [800, 1200, 1400]
    assert wifi.active_mw == pytest.approx([(a + 30) * 3.85 for a in (400, 500, 600)])
    assert wifi.idle_mw == pytest.approx((30 + 34.5) * 3.85)
    assert wifi.tx.max_power_mw == pytest.approx(1506 * 3.85) and wifi.rx_mw == pytest.approx(746 * 3.85)
    little = ts.PowerModel.from_android_profile(ts.sample_profile("phone_big_little_wifi"), cluster=0)
    assert little.freqs_mhz == [600, 800, 1200]
    lte = ts.PowerModel.from_android_profile(ts.sample_profile("phone_lte"))
    # per-core arrays: core power + cluster power (+ awake); five modem transmit levels
    assert lte.active_mw == pytest.approx([(c + 50 + 30) * 3.85 for c in (150, 250, 350)])
    assert lte.tx.levels_mw == pytest.approx([x * 3.85 for x in (562, 790, 1018, 1245, 1473)])
    assert "phone_lte.xml" in lte.source


@pytest.mark.parametrize("text,match", [
    ('<device>\n<item name="cpu.idle">10</item>\n<array name="x"><value>1</valu></array></device>',
     r"bad.xml:3: malformed XML"),
    ('<device>\n<item name="cpu.idle">ten</item></device>', r"bad.xml:2: cpu.idle: 'ten' is not a number"),
    ('<device>\n<item>10</item></device>', r"bad.xml:2: <item> without a name"),
    ('<device><item name="cpu.idle">10</item></device>', r"no cpu.core_speeds.cluster0 \(CPU speeds in kHz\)"),
    ('<device><array name="cpu.speeds"><value>600000</value></array>\n<array name="cpu.active"><value>1</value>'
     '<value>2</value></array><item name="wifi.controller.tx">5</item></device>', r"bad.xml:2: 2 CPU currents for 1"),
    ('<device><array name="cpu.speeds"><value>600000</value></array><array name="cpu.active"><value>1</value>'
     '</array></device>', r"no modem.controller.tx"),
])
def test_malformed_or_incomplete_profiles_name_the_line_and_field(tmp_path, text, match):
    f = tmp_path / "bad.xml"
    f.write_text(text)
    with pytest.raises(ValueError, match=match):
        ts.PowerModel.from_android_profile(f)
    with pytest.raises(FileNotFoundError, match="no power profile"):
        ts.PowerModel.from_android_profile(tmp_path / "missing.xml")


def test_missing_profile_is_the_engines_not_found_error(tmp_path):
    """The package raises the error kinds the engine documents (still a FileNotFoundError)."""
    with pytest.raises(ts.NotFoundError, match="no power profile") as info:
        ts.PowerModel.from_android_profile(tmp_path / "missing.xml")
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ts.TesseraError)


def test_bad_power_models_are_named():
    radio = ts.Radio(max_power_mw=200)
    with pytest.raises(ValueError, match="frequencies must increase"):
        ts.PowerModel([1200, 600], [1, 2], idle_mw=1, tx=radio)
    with pytest.raises(ValueError, match=r"active_mw\[0\] = -1 must be >= 0"):
        ts.PowerModel([600], [-1], idle_mw=1, tx=radio)
    with pytest.raises(ValueError, match="transmit level 0 = 300 mW is above the maximum 200 mW"):
        ts.PowerModel([600], [1], idle_mw=1, tx=ts.Radio(max_power_mw=200, levels_mw=[300]))


def test_energy_by_part_and_plans_equal_brute_force():
    dag, costs = _tiny()
    pm = _phone()
    device_only = [0] * dag.num_atoms
    e = ts.energy(dag, device_only, pm, costs=costs, frequency_mhz=1200, bandwidth_mbps=5, rtt_ms=20)
    # every atom on the device at half the reference clock: twice the time at 420 mW, nothing sent
    assert e["latency_ms"] == pytest.approx(2 * sum(costs["device"]))
    assert e["compute_mj"] == pytest.approx(2 * sum(costs["device"]) * 420 / 1e3)
    assert e["tx_mj"] == e["rx_mj"] == 0 and e["total_mj"] == pytest.approx(e["compute_mj"])
    # a ts.plan result carries its cost model and context; a ts.Link gives bandwidth and rtt
    p = ts.plan(dag, costs, bandwidth_mbps=5, rtt_ms=20)
    by_plan = ts.energy(dag, p, pm, frequency_mhz=2400)
    by_link = ts.energy(dag, p, pm, frequency_mhz=2400, link=ts.Link(bandwidth_mbps=5, rtt_ms=20))
    assert by_plan["latency_ms"] == pytest.approx(p.latency_ms) and by_plan["total_mj"] == by_link["total_mj"]
    for lw, ew, dl in ((1, 0, None), (0, 1, None), (1, 0.5, None), (0, 1, 150.0), (2, 3, 120.0)):
        for bw in (0.5, 5.0, 50.0):
            got = ts.plan_energy(dag, costs, pm, bandwidth_mbps=bw, rtt_ms=20, latency_weight=lw, energy_weight=ew,
                                 deadline_ms=dl)
            ref = ts.plan_energy(dag, costs, pm, bandwidth_mbps=bw, rtt_ms=20, latency_weight=lw, energy_weight=ew,
                                 deadline_ms=dl, brute_force=True)
            assert got.meets_deadline == ref.meets_deadline
            text = got.explain()  # the operating point, the parts, the blocks, every crossing value
            assert f"{got.op.frequency_mhz:g} MHz" in text and "mJ = compute" in text and "blocks:" in text
            if dl is None:
                assert got.objective == pytest.approx(ref.objective, rel=1e-9), (lw, ew, bw)
            elif ref.meets_deadline:
                assert got.parts.latency_ms <= dl * (1 + 1e-9) and got.objective >= ref.objective * (1 - 1e-9)


def test_the_controller_keeps_its_budget_and_the_tradeoff_approaches_the_oracle():
    dag, costs = _tiny(seed=5, n=10)
    pm = _phone()
    trace = [(float(t), 0.5 if (t // 10) % 2 else 20.0) for t in range(1000)]  # regimes of 10 s
    points = ts.tradeoff(dag, costs, pm, trace=trace, V=[1, 10, 100], rtt_ms=20, period_s=1.0)
    budget = points[0]["budget_mj"]
    assert all(p["energy_mj"] <= budget * 1.02 for p in points)      # long-run average at the budget
    lat = [p["latency_ms"] for p in points]
    assert lat == sorted(lat, reverse=True) or max(lat) - min(lat) < 1e-9  # higher V: lower latency
    assert all(p["latency/oracle"] >= 1 - 1e-9 for p in points)       # the oracle is a bound
    recs = points[-1]["records"]
    assert {"queue", "frequency_mhz", "tx_power_mw", "compute_mj", "tx_mj", "device_atoms"} <= set(recs[0])
    with pytest.raises(ValueError, match="below the device's idle energy"):
        ts.EnergyController(dag, costs, pm, budget_mj=1e-6)


def test_the_energy_objective_without_energy_data_is_an_error():
    dag, costs = _tiny()
    with pytest.raises(ValueError, match="no energy data"):
        ts.plan(dag, costs, bandwidth_mbps=5, objective="energy")
    p = ts.plan(dag, {**costs, "energy_mj_per_byte": 1e-6}, bandwidth_mbps=5, objective="energy")
    assert p.status == "optimal" and math.isfinite(p.energy_mj)


def test_the_simulator_runs_the_energy_policy_as_live():
    """ts.simulate over an energy policy: its operating point stretches the device's compute and slows the
    uplink, and what each request cost feeds the virtual queue (Q(t+1) = max(Q + e - budget, 0))."""
    from tessera import _core, experiment
    from tessera.plan import make_cost_model
    dag, costs = _tiny(seed=5, n=10)
    pm = _phone()
    cm = make_cost_model(dag, costs)
    o = _core.ControllerOptions()
    o.budget_mj, o.V = 300.0, 1.0
    policy = _core.energy_policy(cm, pm._core, o)
    link = ts.Link(trace=[(float(t), 0.5 if (t // 10) % 2 else 20.0) for t in range(100)], rtt_ms=20)
    so = _core.SimulationOptions()
    so.period_s, so.requests, so.rtt_ms = 1.0, 60, 20.0
    so.adaptive = ts.adapt._adaptive_options(rtt_ms=20.0, initial_bandwidth_mbps=20.0)
    recs = _core.simulate(cm, link._core.spec, policy, so)
    assert all(r.energy_mj > 0 and r.frequency_mhz in pm.freqs_mhz for r in recs)
    for a, b in zip(recs, recs[1:]):
        assert b.energy_queue == pytest.approx(max(a.energy_queue + a.energy_mj - 300.0, 0.0), abs=1e-9)
    slow = [r for r in recs if r.frequency_mhz < 2400 and r.device_atoms == dag.num_atoms]
    for r in slow:  # every atom here at a lower clock: time x reference / f
        assert r.device_ms == pytest.approx(sum(costs["device"]) * 2400 / r.frequency_mhz)
    assert len({(r.frequency_mhz, r.tx_power_mw) for r in recs}) >= 2
