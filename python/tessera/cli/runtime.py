"""Runtime sub-commands of the ``tessera`` CLI: serve, train-serve, run, keygen."""
from __future__ import annotations

import signal
import sys
from pathlib import Path


def _read_key(path: str) -> str:
    text = Path(path).read_text().split()
    if not text or len(text[0]) != 40:
        raise SystemExit(f"tessera: {path} does not hold a 40-character Z85 key")
    return text[0]


def cmd_serve(args):
    from ..runtime import Server

    allowed = []
    for f in args.allow_keys_file or []:
        allowed += [line.split()[0] for line in Path(f).read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    secret = _read_key(args.curve_secret_key_file) if args.curve_secret_key_file else ""
    # Block the stop signals before the server's threads start, then wait for one here.
    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    srv = Server(args.repository, bind=args.bind, workers=args.workers, threads=args.threads,
                 curve_secret_key=secret, allowed_client_keys=allowed, max_message_mb=args.max_message_mb,
                 verbose=args.verbose, forward_timeout_ms=args.forward_timeout_ms, batch_max=args.batch_max,
                 batch_delay_us=args.batch_delay_us, max_queue=args.max_queue, metrics_port=args.metrics_port).start()
    extra = f", metrics on {srv.metrics_endpoint}/metrics" if srv.metrics_endpoint else ""
    print(f"tessera-server listening on {srv.endpoint} ({len(srv.models())} models, {args.workers} workers{extra})",
          flush=True)
    signal.sigwait(stop)
    srv.stop()
    print(srv.stats().to_json(), flush=True)


def cmd_train_serve(args):
    from ..training import TrainingServer

    stop = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    srv = TrainingServer(args.store, bind=args.bind, threads=args.threads, verbose=args.verbose).start()
    print(f"tessera-train-server listening on {srv.endpoint} (store {args.store})", flush=True)
    signal.sigwait(stop)
    srv.stop()
    s = srv.stats()
    print(f'{{"forwards": {s.forwards}, "backwards": {s.backwards}, "commits": {s.commits}, "aborts": {s.aborts}, '
          f'"errors": {s.errors}, "version": {s.version}}}', flush=True)


def cmd_keygen(args):
    from ..runtime import keygen

    public, secret = keygen()
    if args.out:
        Path(args.out + ".key").write_text(secret + "\n")
        Path(args.out + ".key").chmod(0o600)
        Path(args.out + ".pub").write_text(public + "\n")
        print(f"wrote {args.out}.key (secret) and {args.out}.pub (public)")
    else:
        print(f"public {public}\nsecret {secret}")


def register(sub):
    from .args import non_negative_int, positive_int
    register_run(sub)
    tp = sub.add_parser("train-serve", help="serve one trainable atom store to a split trainer (ZeroMQ)")
    tp.add_argument("store", help="a trainable atom store (ts.load(..., trainable=True).save(STORE))")
    tp.add_argument("--bind", default="tcp://127.0.0.1:*", help="ZeroMQ endpoint (default tcp://127.0.0.1:*)")
    tp.add_argument("--threads", type=non_negative_int, default=1, help="LibTorch intra-op threads (default 1)")
    tp.add_argument("--verbose", action="store_true", help="log every command to stderr")
    tp.set_defaults(func=cmd_train_serve)
    sp = sub.add_parser("serve", help="serve a repository of atom stores to devices (ZeroMQ)")
    sp.add_argument("repository", help="directory of atom stores (or one atom store)")
    sp.add_argument("--bind", default="tcp://127.0.0.1:*", help="ZeroMQ endpoint (default tcp://127.0.0.1:*)")
    sp.add_argument("--workers", type=positive_int, default=1, help="worker threads (default 1)")
    sp.add_argument("--threads", type=positive_int, default=1, help="LibTorch intra-op threads (default 1)")
    sp.add_argument("--max-message-mb", type=positive_int, default=1024,
                    help="refuse requests larger than this many MiB (default 1024)")
    sp.add_argument("--curve-secret-key-file", help="turn CURVE on with this server secret key file")
    sp.add_argument("--allow-keys-file", action="append", help="file of allowed client public keys (one per line)")
    sp.add_argument("--forward-timeout-ms", type=positive_int, default=1000,
                    help="pipelines: how long a stage waits for the next stage to take its values (default 1000)")
    sp.add_argument("--batch-max", type=positive_int, default=1,
                    help="dynamic batching: run up to this many Requests for one block and input shape together "
                    "(default 1: off)")
    sp.add_argument("--batch-delay-us", type=non_negative_int, default=500,
                    help="dynamic batching: how long the first Request of a batch waits for others (default 500)")
    sp.add_argument("--max-queue", type=non_negative_int, default=256,
                    help="Requests waiting for a worker at most; more are answered Busy at once (0 = no bound; "
                    "default 256)")
    sp.add_argument("--metrics-port", type=int, default=-1,
                    help="serve /metrics (Prometheus text), /healthz and /readyz over HTTP on this port "
                    "(0 = any free port, printed; default off)")
    sp.add_argument("--verbose", action="store_true", help="log every request to stderr")
    sp.set_defaults(func=cmd_serve)
    sp = sub.add_parser("keygen", help="make a CURVE key pair")
    sp.add_argument("--out", help="write OUT.key (secret) and OUT.pub (public)")
    sp.set_defaults(func=cmd_keygen)


ADAPTIVE_PLANNERS = ("parametric", "mincut", "chain", "gads", "compressed")


def cmd_run(args):
    import statistics

    import torch

    from .. import experiment
    from ..adapt import Controller, adaptive_policy, static_policy
    from .args import open_model
    from ..planning import plan as make_plan
    from ..profiling import profile
    from ..transport import Link

    if args.adaptive and args.plan is not None and args.plan not in ADAPTIVE_PLANNERS:
        raise SystemExit(f"tessera run: --adaptive re-plans with one of {', '.join(ADAPTIVE_PLANNERS)}; "
                         f"got --plan {args.plan}")
    if not args.server and not args.pipeline:
        raise SystemExit("tessera run: give --server ENDPOINT (a split with one server) or --pipeline nodes.json")
    if args.server and args.pipeline:
        raise SystemExit("tessera run: --server and --pipeline exclude each other (a pipeline's servers are its "
                         "nodes' endpoints)")
    from .. import set_threads
    set_threads(args.threads)  # OpenBLAS too
    m, xs = open_model(args.model, args.shapes, args.dtype)
    ct = profile(m, xs, threads=args.threads, repeats=5, warmup=2)
    if args.pipeline:
        from .pipeline import run_pipeline
        return run_pipeline(args, m, xs, ct)
    costs = experiment.costs_from_profile(ct, args.device_slowdown)
    ref = m.run_flat(xs)
    link = None
    if args.trace:
        link = Link(trace=args.trace, scale=args.scale, rtt_ms=args.rtt)
        link.set_time(0)
    elif args.emulate_link:
        link = Link(bandwidth_mbps=args.bandwidth, rtt_ms=args.rtt)
    # One loop for every policy: a C++ policy under a Controller, one record per request.
    if args.adaptive:
        policy = adaptive_policy(m, costs, "parametric" if args.plan is None else args.plan, rtt_ms=args.rtt)
    else:
        p = make_plan(m, costs, bandwidth_mbps=args.bandwidth, rtt_ms=args.rtt, algorithm=args.plan or "mincut")
        print(p.explain())
        policy = static_policy("static", p)
    ctl = Controller(m, costs, args.server, policy, link=link, rtt_ms=args.rtt, device_slowdown=args.device_slowdown,
                     emulation=args.emulation, timeout_ms=args.timeout_ms,
                     initial_bandwidth_mbps=0 if link else args.bandwidth)
    lat, wrong, fallbacks = [], 0, 0
    print(f"{'req':>4} {'true Mbit/s':>11} {'est Mbit/s':>10} {'on device':>9} {'latency ms':>10} {'device':>8} "
          f"{'link':>8} {'server':>8}")
    for i in range(args.requests):
        if link is not None and args.trace:
            link.set_time(i * args.period)
        flat = ctl.run_flat(xs)
        wrong += not all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(flat, ref))
        r = ctl.last_record
        row = (r.true_bandwidth if link else float("nan"), r.est_bandwidth, r.device_atoms, r.total_ms, r.device_ms,
               r.transfer_ms, r.server_ms)
        fallbacks += r.fallback
        lat.append(row[3])
        print(f"{i:>4} {row[0]:>11.2f} {row[1]:>10.2f} {row[2]:>9} {row[3]:>10.1f} {row[4]:>8.1f} {row[5]:>8.1f} "
              f"{row[6]:>8.1f}")
    lat_sorted = sorted(lat)
    p95 = lat_sorted[min(len(lat) - 1, int(round(0.95 * (len(lat) - 1))))]
    print(f"{args.requests} requests: mean {statistics.fmean(lat):.1f} ms, p95 {p95:.1f} ms, "
          f"{fallbacks} with fallback, {wrong} wrong outputs (each checked against the unsplit model)")
    if wrong:
        raise SystemExit(1)


def register_run(sub):
    from .args import add_model_args, positive_float, positive_int
    sp = sub.add_parser("run", help="run a model split with a server, checking every output")
    add_model_args(sp)
    sp.add_argument("--server", default="", help="server endpoint (tcp://HOST:PORT)")
    sp.add_argument("--pipeline", default="", metavar="NODES_JSON",
                    help="stream through a device and several servers instead (nodes.json: see plan-pipeline)")
    sp.add_argument("--in-flight", type=positive_int, default=4, help="--pipeline: requests travelling at once")
    sp.add_argument("--plan", default=None, help="planner (default mincut; with --adaptive parametric, or one of "
                    f"{', '.join(ADAPTIVE_PLANNERS)})")
    sp.add_argument("--requests", type=positive_int, default=20, help="requests to run (default 20)")
    sp.add_argument("--bandwidth", type=positive_float, default=5.85,
                    help="Mbit/s for planning (and --emulate-link)")
    sp.add_argument("--rtt", type=float, default=20.0, help="round-trip ms for planning and emulation")
    sp.add_argument("--device-slowdown", type=positive_float, default=1.0,
                    help="emulate a device this many times slower (default 1: this machine is the device; "
                    "on one machine, 10 makes offloading worth it)")
    sp.add_argument("--threads", type=positive_int, default=1, help="LibTorch intra-op threads (default 1)")
    sp.add_argument("--timeout-ms", type=positive_int, default=5000,
                    help="a reply later than this falls back to the device (default 5000)")
    sp.add_argument("--emulate-link", action="store_true", help="pass traffic through an emulated link")
    sp.add_argument("--adaptive", action="store_true", help="re-plan while running (monitor + parametric)")
    sp.add_argument("--trace", help="bandwidth trace file (time_s Mbit/s per line) replayed on the link")
    sp.add_argument("--scale", type=positive_float, default=1.0, help="multiply the trace's bandwidth")
    sp.add_argument("--period", type=positive_float, default=1.0, help="trace seconds between requests")
    sp.add_argument("--emulation", choices=["sleep", "account"], default="sleep",
                    help="sleep: the link really waits; account: delays are added to the timeline only")
    sp.set_defaults(func=cmd_run)
