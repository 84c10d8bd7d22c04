"""A server many devices share: load, dynamic batching, backpressure, several servers.

One run, five parts, everything on this machine over tcp://127.0.0.1 (2 cores: devices
and servers share them; no link is emulated, the devices are other processes):

1. **ceiling** of dynamic batching: the server block run in this process at batch 1 and
   at batch ``--batch-max``, interleaved, 1 thread: the per-sample speed-up an oracle
   batcher (always full batches, no waiting, no network) would get on this CPU.
2. **load**: at 8, 32 and 64 devices (separate ``tessera-bench-client`` processes, each its
   own DEALER, closed loops: send, wait for the answer, check it against the block run
   alone, again) against `tessera serve` (1 worker, 1 intra-op thread: the machine's other
   core runs the devices), unbatched and with
   ``--batch-max`` / ``--batch-delay-us``, in alternating segments (U B U B) so that the
   machine's drift hits both alike: throughput, p50/p99 latency, wrong / lost / errors,
   per-device fairness (max/min throughput), the server's RSS (start of the level, after
   10 s, end).
3. **backpressure**: one worker, ``--max-queue 4``, 32 devices: how long a Busy takes to
   come back (when a device would start running the block itself) against its timeout.
4. **failover**: a Deployment (device: the first atoms; servers: the rest) over three
   servers; the one in use is killed (SIGKILL) mid-stream: lost requests, latency before /
   at / after, requests until the latency is back to normal (within 1.5x the median before).
5. **server choice**: three servers, one of them loaded by 8 other devices; the device's
   latency with each policy (best = least measured time, p2c = Ray Serve's power of two
   choices on queue wait, first = in order).

The model is mobilenet_v2 (torchvision, random weights, 1x3x224x224); the server block is
every atom from the first single-input cut past 25% of the atoms (the device runs the rest
before it). Targets (issue 18): no request lost or wrong at any level; RSS after 64 devices x
60 s within 5% of after the first 10 s; batching at 32 devices >= 1.5x the unbatched
throughput with p99 <= 1.2x; Busy back within 5 ms; failover with zero lost and the latency
normal again within 3 requests.

    .venv/bin/python bench/bench_server.py [--levels 8 32 64] [--seconds 60] [--batch-max 16]
"""
from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tessera as ts  # noqa: E402
from tessera import zoo  # noqa: E402
from tessera._proc import die_with_parent  # noqa: E402
from tessera.runtime import spawn_server, stop_server  # noqa: E402

from common import built_binary, quantiles, smoke, table, write_csv  # noqa: E402



def client_binary() -> str:
    """One emulated device (bench/cpp/load_client.cpp)."""
    return built_binary("tessera-bench-client", "bench_server")


def server_block(m, frac: float = 0.25) -> list[int]:
    """Atoms [k, n) for the first k >= frac * n whose block has one input."""
    n = m.num_atoms
    for k in range(int(n * frac), n):
        if len(m.combine(range(k, n)).inputs) == 1:
            return list(range(k, n))
    raise SystemExit("bench_server: no single-input cut in the model")


def write_spec(d: Path, m, atoms, k_inputs: int, seed: int = 0):
    """Inputs of the server block and its outputs run alone here (what every answer must equal)."""
    blk = m.combine(atoms)
    shape = list(m.graph.values[blk.inputs[0]].info.shape)
    g = torch.Generator().manual_seed(seed)
    out_shape = None
    for k in range(k_inputs):
        x = torch.randn(shape, generator=g)
        y = blk([x])[0].contiguous()
        out_shape = list(y.shape)
        (d / f"in_{k}.bin").write_bytes(x.numpy().tobytes())
        (d / f"out_{k}.bin").write_bytes(y.numpy().tobytes())
    (d / "spec.txt").write_text(f"hash {m.hash}\natoms {' '.join(map(str, atoms))}\ninputs {k_inputs}\n"
                                f"in_shape {' '.join(map(str, shape))}\nout_shape {' '.join(map(str, out_shape))}\n")
    return blk, shape


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class RssWatch:
    """The server's resident memory every 0.25 s while devices run: (seconds, MiB)."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self.t0 = time.monotonic()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - self.t0, rss_mb(self.pid)))
            self._stop.wait(0.25)

    def stop(self):
        self._stop.set()
        self._t.join()
        self.samples.append((time.monotonic() - self.t0, rss_mb(self.pid)))

    def at(self, s: float) -> float:
        return min(self.samples, key=lambda p: abs(p[0] - s))[1]


def run_devices(endpoint: str, spec: Path, n: int, seconds: float, first_id: int = 0, extra=()) -> list[dict]:
    """n device processes for `seconds`, all starting their loops at one moment once every one
    has started (loaded LibTorch, connected, had a Ping answered); one result dict each."""
    exe = client_binary()
    start_at = time.time() + 1.5 + 0.05 * n  # a torch-free device process starts in a few ms; 64 at once ~2 s
    procs = [subprocess.Popen([exe, endpoint, str(spec), str(first_id + i), f"{seconds:g}", "--start-at",
                               f"{start_at:.3f}", *extra],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
             for i in range(n)]
    out = []
    for p in procs:
        o, e = p.communicate(timeout=seconds + 120)
        if p.returncode != 0 or not o.strip():
            raise SystemExit(f"bench_server: a device process failed ({p.returncode}): {e.strip()[-500:]}")
        out.append(json.loads(o))
    late = max(r["late_s"] for r in out)
    if late > 0.05:
        print(f"  (warning: a device started its loop {late:.2f} s late: the start allowance was too short)")
    return out


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def summarize(results: list[dict], seconds: float) -> dict:
    lat = [v for r in results for v in r["latency_ms"]]
    per = [r["ok"] / seconds for r in results]
    tot = {k: sum(r[k] for r in results) for k in ("sent", "ok", "identical", "wrong", "busy", "errors", "timeouts")}
    errs = [r["first_error"] for r in results if r["first_error"]]
    return dict(tot, rps=tot["ok"] / seconds, p50=pct(lat, 0.5), p99=pct(lat, 0.99), fair=max(per) / max(min(per), 1e-9),
                max_diff=max(r["max_abs_diff"] for r in results), first_error=errs[0] if errs else "")


def merge(parts: list[list[dict]]) -> list[dict]:
    """Per device, the sum of its segments."""
    out = []
    for i in range(len(parts[0])):
        rs = [p[i] for p in parts]
        m = {k: sum(r[k] for r in rs) for k in ("sent", "ok", "identical", "wrong", "busy", "errors", "timeouts")}
        m.update(latency_ms=[v for r in rs for v in r["latency_ms"]], max_abs_diff=max(r["max_abs_diff"] for r in rs),
                 first_error=next((r["first_error"] for r in rs if r["first_error"]), ""))
        out.append(m)
    return out


def ceiling(blk, shape, batch: int, rounds: int) -> dict:
    """Per-sample ms of the block at batch 1 and at `batch`, interleaved, in this process."""
    x1 = torch.randn(shape)
    xb = torch.cat([x1] * batch, 0)
    for _ in range(3):
        blk([x1]), blk([xb])
    one, many = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        blk([x1])
        one.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        blk([xb])
        many.append((time.perf_counter() - t0) * 1e3 / batch)
    ratios = [a / b for a, b in zip(one, many)]
    return dict(one_ms=quantiles(one), batch_ms=quantiles(many), ratio=quantiles(ratios))


def warm(m, xs, placement, endpoints):
    """Each server runs the block a few times (the profiling executor's first runs are slow)."""
    for ep in endpoints:
        dep = ts.Deployment(m, placement, server=ep, timeout_ms=30000)
        for _ in range(3):
            dep.run_flat(xs)


def failover(m, xs, placement, endpoints, procs, requests: int, kill_at: int, policy: str = "best"):
    ref = m.run_flat(xs)
    warm(m, xs, placement, endpoints)
    dep = ts.Deployment(m, placement, server=endpoints, server_policy=policy, timeout_ms=1000, retry_ms=1000)
    rows, killed = [], None
    for i in range(requests):
        if i == kill_at:
            killed = dep.last_timeline.server
            procs[killed].send_signal(signal.SIGKILL)
            procs[killed].wait(30)
        t0 = time.perf_counter()
        y = dep.run_flat(xs)
        ms = (time.perf_counter() - t0) * 1e3
        tl = dep.last_timeline
        good = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(y, ref))
        rows.append(dict(i=i, ms=ms, server=tl.server, fallback=tl.fallback, good=good))
        time.sleep(0.02)
    normal = statistics.median(r["ms"] for r in rows[max(0, kill_at - 15):kill_at])
    after = rows[kill_at:]
    back = next((k for k, r in enumerate(after) if r["ms"] <= 1.5 * normal and not r["fallback"]), None)
    return dict(lost=sum(not r["good"] for r in rows), normal=normal, at_kill=after[0]["ms"],
                after=statistics.median(r["ms"] for r in after[1:]) if len(after) > 1 else float("nan"),
                back=back, killed=killed, fallbacks=sum(r["fallback"] for r in rows),
                spikes=sum(r["ms"] > 1.5 * normal for r in after[1:]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[8, 32, 64], help="devices per level")
    ap.add_argument("--seconds", type=float, default=60, help="seconds per level and server (in two segments)")
    ap.add_argument("--batch-max", type=int, default=16)
    ap.add_argument("--batch-delay-us", type=int, default=8000)
    ap.add_argument("--workers", type=int, default=1,
                    help="server workers (default 1: the other core runs the device processes, the server's front "
                    "thread and ZeroMQ's I/O)")
    args = ap.parse_args(argv)
    if smoke():
        args.levels, args.seconds = [2], 2.0
    ts.set_threads(1)
    path, xs = zoo.torchscript("mobilenet_v2")
    m = ts.load(str(path), xs)
    atoms = server_block(m)
    placement = [0 if a < atoms[0] else 1 for a in range(m.num_atoms)]
    work = Path(tempfile.mkdtemp(prefix="tessera-bench-server-"))
    repo, spec = work / "repo", work / "spec"
    spec.mkdir()
    m.save(repo / "mobilenet_v2")
    blk, shape = write_spec(spec, m, atoms, k_inputs=8)
    print(f"mobilenet_v2: server block = atoms [{atoms[0]}, {atoms[-1] + 1}) of {m.num_atoms}, input "
          f"{'x'.join(map(str, shape))}; {args.workers} server workers x 1 intra-op thread; devices are "
          f"tessera-bench-client processes on this 2-core machine, loopback, no emulated link", flush=True)
    rows, summary = [], {}

    # 1. the oracle batcher's ceiling
    c = ceiling(blk, shape, args.batch_max, 5 if smoke() else 40)
    summary["ceiling"] = c["ratio"][0]
    print(f"\n[ceiling] block alone, 1 thread: batch 1 {c['one_ms'][0]:.2f} ms/sample, batch {args.batch_max} "
          f"{c['batch_ms'][0]:.2f} ms/sample: per-sample speed-up {c['ratio'][0]:.2f}x "
          f"[{c['ratio'][1]:.2f}-{c['ratio'][2]:.2f}] (median [q1-q3] of interleaved pairs)", flush=True)
    fallback_ms = c["one_ms"][0]

    # 2. load, unbatched (U) and batched (B) servers side by side
    common = ("--workers", str(args.workers), "--threads", "1")
    pu, eu = spawn_server(repo, extra=common)
    pb, eb = spawn_server(repo, extra=(*common, "--batch-max", str(args.batch_max),
                                       "--batch-delay-us", str(args.batch_delay_us)))
    try:
        for ep in (eu, eb):  # warm-up: the profiling executor, the first batch's check
            run_devices(ep, spec, 4, 1.0 if smoke() else 3.0, first_id=1000)
        load_rows = []
        for n in args.levels:
            seg = args.seconds / 2
            parts = {"U": [], "B": []}
            watch = {"U": None, "B": None}
            rss0 = {"U": rss_mb(pu.pid), "B": rss_mb(pb.pid)}
            for name in ("U", "B", "U", "B"):
                proc, ep = (pu, eu) if name == "U" else (pb, eb)
                w = RssWatch(proc.pid)
                parts[name].append(run_devices(ep, spec, n, seg))
                w.stop()
                if watch[name] is None:
                    watch[name] = (w.at(10.0), None)
                else:
                    watch[name] = (watch[name][0], w.samples[-1][1])
            for name in ("U", "B"):
                s = summarize(merge(parts[name]), args.seconds)
                r10, rend = watch[name]
                row = dict(devices=n, server="unbatched" if name == "U" else f"batch<={args.batch_max}",
                           rps=round(s["rps"], 1), p50_ms=round(s["p50"], 2), p99_ms=round(s["p99"], 2),
                           fairness=round(s["fair"], 2), sent=s["sent"], ok=s["ok"], identical=s["identical"],
                           wrong=s["wrong"], lost=s["timeouts"], errors=s["errors"], busy=s["busy"],
                           max_abs_diff=f"{s['max_diff']:.1e}", rss_start_mb=round(rss0[name], 1),
                           rss_10s_mb=round(r10, 1), rss_end_mb=round(rend, 1))
                if s["first_error"]:
                    print(f"  {row['server']} at {n}: first error: {s['first_error']}")
                load_rows.append(row)
                rows.append(dict(part="load", **row))
            u, b = load_rows[-2], load_rows[-1]
            print(f"[load {n} devices] unbatched {u['rps']} req/s p50 {u['p50_ms']} p99 {u['p99_ms']} ms | batched "
                  f"{b['rps']} req/s p50 {b['p50_ms']} p99 {b['p99_ms']} ms | throughput x{b['rps'] / u['rps']:.2f}, "
                  f"p99 x{b['p99_ms'] / u['p99_ms']:.2f}", flush=True)
        print("\n" + table(load_rows, ["devices", "server", "rps", "p50_ms", "p99_ms", "fairness", "sent", "ok",
                                       "identical", "wrong", "lost", "errors", "max_abs_diff", "rss_start_mb",
                                       "rss_10s_mb", "rss_end_mb"]))
        counters = ts.Deployment(m, placement, server=eb).ping(5000) or {}
        print(f"batched server's counters: {counters.get('batches')} batches, {counters.get('batched')} requests in "
              f"them, {counters.get('unbatchable')} blocks refused batching")
    finally:
        stop_server(pu)
        stop_server(pb)
    if args.levels:
        n_mid = 32 if 32 in args.levels else args.levels[len(args.levels) // 2]
        u = next(r for r in load_rows if r["devices"] == n_mid and r["server"] == "unbatched")
        b = next(r for r in load_rows if r["devices"] == n_mid and r["server"] != "unbatched")
        summary.update(batch_gain=b["rps"] / u["rps"], batch_p99=b["p99_ms"] / u["p99_ms"], n_mid=n_mid)
        big = [r for r in load_rows if r["devices"] == max(args.levels) and r["server"] == "unbatched"][0]
        summary["rss_drift"] = big["rss_end_mb"] / big["rss_10s_mb"] - 1
        summary["lost"] = sum(r["lost"] for r in load_rows)
        summary["wrong"] = sum(r["wrong"] + r["errors"] for r in load_rows)

    # 3. backpressure
    pp, ep = spawn_server(repo, extra=("--workers", "1", "--threads", "1", "--max-queue", "4"))
    try:
        run_devices(ep, spec, 2, 1.0, first_id=1000)
        bp_seconds = 2.0 if smoke() else 15.0
        pinger = {}  # the same window, one device Pinging: what the transport itself takes under this load
        t = threading.Thread(target=lambda: pinger.update(r=run_devices(ep, spec, 1, bp_seconds, 3000,
                                                                         extra=("--ping", "--think-ms", "5"))))
        t.start()
        res = run_devices(ep, spec, 32, bp_seconds, extra=("--fallback-ms", f"{fallback_ms:.2f}"))
        t.join()
    finally:
        stop_server(pp)
    busy = [v for r in res for v in r["busy_ms"]]
    pong = pinger["r"][0]["latency_ms"]
    summary.update(pong_p99=pct(pong, 0.99), pong_p50=pct(pong, 0.5))
    s = summarize(res, bp_seconds)
    summary.update(busy_p50=pct(busy, 0.5), busy_p99=pct(busy, 0.99), busy_max=max(busy) if busy else float("nan"),
                   busy_n=len(busy), bp_lost=s["timeouts"], bp_wrong=s["wrong"] + s["errors"])
    print(f"\n[backpressure] 1 worker, max-queue 4, 32 devices (a Busy device sleeps {fallback_ms:.1f} ms, its own "
          f"time for the block): {len(busy)} Busy answers back in p50 {summary['busy_p50']:.2f} ms, p99 "
          f"{summary['busy_p99']:.2f} ms, max {summary['busy_max']:.2f} ms (timeout 10000 ms); {s['ok']} answered, "
          f"{s['timeouts']} lost, {s['wrong']} wrong; a Ping in the same window: p50 {summary['pong_p50']:.2f} ms, "
          f"p99 {summary['pong_p99']:.2f} ms (the ceiling: a Busy cannot come back faster than a Pong)", flush=True)
    rows.append(dict(part="backpressure", devices=32, busy=len(busy), busy_p50_ms=summary["busy_p50"],
                     busy_p99_ms=summary["busy_p99"], busy_max_ms=summary["busy_max"], ok=s["ok"], lost=s["timeouts"],
                     ping_p50_ms=summary["pong_p50"], ping_p99_ms=summary["pong_p99"]))

    # 4. failover among three, 5. server choice
    fo = []
    for trial in range(1 if smoke() else 3):
        started = [spawn_server(repo, extra=("--workers", "1", "--threads", "1")) for _ in range(3)]
        procs, eps = [p for p, _ in started], [e for _, e in started]
        try:
            f = failover(m, xs, placement, eps, procs, requests=12 if smoke() else 50, kill_at=6 if smoke() else 25)
        finally:
            for p in procs:
                if p.poll() is None:
                    stop_server(p)
        fo.append(f)
        print(f"[failover {trial}] server {f['killed']} killed: {f['lost']} lost, normal {f['normal']:.1f} ms, the "
              f"request at the kill {f['at_kill']:.1f} ms, median after {f['after']:.1f} ms, back to normal after "
              f"{f['back']} request(s), {f['spikes']} slow requests after", flush=True)
        rows.append(dict(part="failover", trial=trial, **f))
    summary.update(fo_lost=sum(f["lost"] for f in fo), fo_back=max((f["back"] if f["back"] is not None else 99)
                                                                     for f in fo))
    started = [spawn_server(repo, extra=("--workers", "1", "--threads", "1")) for _ in range(3)]
    try:
        eps = [e for _, e in started]
        warm(m, xs, placement, eps)
        loader = threading.Thread(target=run_devices, args=(eps[0], spec, 8, 8.0 if not smoke() else 3.0, 2000))
        loader.start()
        time.sleep(0.5)
        ref = m.run_flat(xs)
        pol_rows = []
        for policy in ("first", "p2c", "best"):
            dep = ts.Deployment(m, placement, server=eps, server_policy=policy, timeout_ms=5000)
            lat, on_loaded = [], 0
            for _ in range(10 if smoke() else 40):
                t0 = time.perf_counter()
                y = dep.run_flat(xs)
                lat.append((time.perf_counter() - t0) * 1e3)
                on_loaded += dep.last_timeline.server == 0
                assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(y, ref))
            pol_rows.append(dict(policy=policy, p50_ms=round(pct(lat, 0.5), 2), p90_ms=round(pct(lat, 0.9), 2),
                                 on_loaded_server=on_loaded, requests=len(lat)))
            rows.append(dict(part="choice", **pol_rows[-1]))
        loader.join()
    finally:
        for p, _ in started:
            stop_server(p)
    print("\n[server choice] three servers, the first loaded by 8 other devices:\n" +
          table(pol_rows, ["policy", "p50_ms", "p90_ms", "on_loaded_server", "requests"]))
    keys = list(dict.fromkeys(k for r in rows for k in r))
    out = write_csv("server", [{k: r.get(k, "") for k in keys} for r in rows])

    if args.levels:
        print(f"\nTargets (one run):\n"
              f"  lost / wrong at every level: {summary['lost']} / {summary['wrong']} (target 0 / 0)\n"
              f"  RSS drift, {max(args.levels)} devices, end vs 10 s: {summary['rss_drift'] * 100:+.1f}% (target within 5%)\n"
              f"  batching at {summary['n_mid']} devices: throughput x{summary['batch_gain']:.2f} (target >= 1.5; "
              f"ceiling of an oracle batcher on this CPU x{summary['ceiling']:.2f}), p99 x{summary['batch_p99']:.2f} "
              f"(target <= 1.2)\n"
              f"  Busy back in p99 {summary['busy_p99']:.2f} ms, max {summary['busy_max']:.2f} ms (target 5 ms; a Ping "
              f"in the same window p99 {summary['pong_p99']:.2f} ms)\n"
              f"  failover: {summary['fo_lost']} lost, back to normal within {summary['fo_back']} request(s) "
              f"(target 0 lost, within 3)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
