"""Split execution across processes: an edge server and a device deployment.

    srv = ts.Server(repository="models/", bind="tcp://127.0.0.1:*", workers=2).start()
    dep = ts.Deployment(m, plan, server=srv.endpoint, timeout_ms=500)
    y = dep(x)                 # same output as the whole model
    dep.last_timeline          # per block: device compute, transfer, server compute (ms)
    srv.stop()

The server runs in this process (C++ threads) or, for real splits, in another:
``tessera serve REPO`` or the C++ binary ``tessera-server``. Wire protocol:
docs/wire-protocol.md. A repository is a directory of atom stores.
"""
from __future__ import annotations

import os
import subprocess
from typing import Any, Sequence

import torch

from . import _core
from .atoms import Model, _as_tuple, _rebuild
from .planning import Plan
from .transport import Link
from .types import Inputs, PathLike, Placement

__all__ = ["Server", "Deployment", "keygen", "spawn_server", "stop_server"]


def spawn_server(repository: PathLike, bind: str = "tcp://127.0.0.1:*", extra: Sequence[str] = (),
                 prefix: Sequence[str] = (), timeout: float = 120, command: str = "serve") -> tuple[subprocess.Popen, str]:
    """Start `tessera serve REPOSITORY` in another process; returns (Popen, endpoint).
    (``command="train-serve"``: a training server of one trainable atom store instead.)

    The endpoint (with the real port) is read from the server's first line. ``prefix``
    runs it under another command (e.g. ``ip netns exec NS``); ``extra`` adds options.
    Stop it with :func:`stop_server` (SIGTERM: it prints its counters as JSON and exits).
    The server is stopped by the kernel if this process dies first (Linux), and its
    stderr goes to a temporary file (read when it fails to start), never to a pipe
    nobody drains.
    """
    import select
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from ._proc import die_with_parent

    env = dict(os.environ)
    src = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [*prefix, sys.executable, "-m", "tessera", command, os.fspath(repository), "--bind", bind, *extra]
    err = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                            preexec_fn=die_with_parent)
    proc.stderr_file = err  # the server's log, if any
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if "listening on" not in line:
        proc.kill()
        code = proc.wait()
        err.seek(0)
        why = f"exited with code {code}" if ready else f"no endpoint within {timeout:g} s"
        raise _core.EngineError(f"tessera {command} {os.fspath(repository)} did not start ({why}): {line.strip()!r} "
                                f"{err.read()[-2000:]}")
    # "(..., metrics on http://HOST:PORT/metrics)" when --metrics-port is given
    proc.metrics_endpoint = line.split("metrics on ")[1].rsplit("/metrics", 1)[0] if "metrics on " in line else ""
    return proc, line.split("listening on ")[1].split()[0]


def stop_server(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    """Stop a server started by :func:`spawn_server` (SIGTERM, then SIGKILL after ``timeout``
    seconds) and reap it."""
    from ._proc import stop_process

    stop_process(proc, timeout)


def keygen() -> tuple[str, str]:
    """A new CURVE key pair ``(public, secret)`` as 40-character Z85 strings."""
    return tuple(_core.curve_keypair())


class _Served:
    """What every server object does over its bound engine server (``self._core``): start, stop,
    its endpoint, and ``with`` (start on entry, stop on exit)."""

    _core: Any

    def start(self):  # -> the server itself
        """Start serving (the endpoint is known from now on); returns the server."""
        self._core.start()
        return self

    def stop(self) -> None:
        """Stop serving (the server's threads end; stopping twice is harmless)."""
        self._core.stop()

    @property
    def endpoint(self) -> str:
        """The bound endpoint ("tcp://127.0.0.1:PORT"), once started."""
        return self._core.endpoint

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


class Server(_Served):
    """An edge server serving a repository of atom stores (C++ threads in this process).

    repository: a directory of atom stores (or one store). bind: ZeroMQ endpoint ("tcp://
    127.0.0.1:*" picks a free port; read ``endpoint`` after ``start()``). workers: request
    threads (1 answers on the socket directly, more sit behind a proxy). threads: LibTorch
    intra-op threads. curve_secret_key + allowed_client_keys: CURVE encryption and an allow
    list of client public keys (see :func:`keygen`). max_message_mb: larger requests are
    refused. forward_timeout_ms: how long a pipeline stage waits for the next stage to take its
    values before handing them back to the device. batch_max, batch_delay_us: dynamic batching
    (Requests for one block and input shape arriving within batch_delay_us of the first run as
    one batch of at most batch_max; 1 = off). max_queue: Requests waiting at most; the next is
    answered Busy at once (0 = no bound). metrics_port: HTTP /metrics (Prometheus text),
    /healthz and /readyz on this port (0 = ephemeral, see ``metrics_endpoint``; -1 = off).
    verbose: log every request to stderr. ``start()`` returns the server; ``stop()``
    (or leaving a ``with`` block) ends it.
    """

    def __init__(self, repository: str | os.PathLike, bind: str = "tcp://127.0.0.1:*", workers: int = 1,
                 threads: int = 1, curve_secret_key: str = "", allowed_client_keys: Sequence[str] = (),
                 max_message_mb: int = 1024, verbose: bool = False, forward_timeout_ms: int = 1000,
                 batch_max: int = 1, batch_delay_us: int = 500, max_queue: int = 256, metrics_port: int = -1) -> None:
        if int(max_message_mb) < 1:
            raise _core.InvalidArgumentError(f"max_message_mb = {max_message_mb} must be >= 1")
        o = _core.ServerOptions()
        o.repository = os.fspath(repository)
        o.bind = bind
        o.workers = int(workers)
        o.intra_op_threads = int(threads)
        o.curve_secret_key = curve_secret_key
        o.allowed_client_keys = list(allowed_client_keys)
        o.max_message_bytes = int(max_message_mb) << 20
        o.verbose = verbose
        o.forward_timeout_ms = int(forward_timeout_ms)
        o.batch_max = int(batch_max)
        o.batch_delay_us = int(batch_delay_us)
        o.max_queue = int(max_queue)
        o.metrics_port = int(metrics_port)
        self._core = _core.Server(o)

    @property
    def running(self) -> bool:
        return self._core.running

    @property
    def metrics_endpoint(self) -> str:
        """"http://HOST:PORT" of the HTTP counters, or "" when metrics_port is -1."""
        return self._core.metrics_endpoint

    def metrics_text(self) -> str:
        """The counters in Prometheus' text format (what /metrics serves)."""
        return self._core.metrics_text()

    def stats(self) -> _core.ServerStats:
        return self._core.stats()

    def models(self) -> list[str]:
        return list(self._core.models())

    def __repr__(self):
        return f"tessera.Server({self.endpoint or 'not started'}, {len(self.models())} models)"


def _checked_plan(plan):
    """What a Deployment runs: a tessera Plan (its C++ plan, checked by the deployment on
    receipt with plan::validate) or a placement (one target per atom, made into a plan and
    checked the same way)."""
    core = getattr(plan, "core", plan)
    if isinstance(core, _core.Plan):
        return core
    return [int(t) for t in getattr(plan, "placement", plan)]


class Deployment:
    """Runs a plan for real: target-0 blocks here, the others on the server.

    plan: a :class:`tessera.Plan` (from a planner) or a placement (one target per atom,
    0 = this device, 1 = the server). The deployment checks it when it receives it
    (every atom placed, blocks convex and executable in order, outputs back on the
    device) and runs the plan's blocks in the plan's order; a bad plan is refused with
    every problem named.
    """

    def __init__(self, model: Model, plan: Plan | _core.Plan | Placement, server: str | Sequence[str] = "", timeout_ms: int = 1000,
                 retry_ms: int = 1000, curve_server_key: str = "", curve_keys: tuple[str, str] | None = None,
                 link: Link | None = None, device_slowdown: float = 1.0, emulation: str = "sleep",
                 server_policy: str = "best", codec: str = "") -> None:
        """server: an endpoint, or a list of endpoints (several servers: each request goes to
        one, chosen by server_policy: "best" = least measured queue + compute + link time,
        "p2c" = the less loaded of two picked at random, "first" = in order, the rest for
        fail-over; a server that fails is skipped for retry_ms, then Pinged before reuse).
        link: a tessera.Link every message passes through; device_slowdown: stretch local
        compute (a device that many times slower); emulation: "sleep" or "account". A server
        whose queue is full answers Busy: the block runs here at once (timeline: ``busy``).
        codec: the wire codec ("fp16", "bf16", "int8", "int8_channel", "zstd"; "" = raw) of every
        float32 value that crosses, when ``plan`` is a placement (a Plan says its own per transfer)."""
        from .transport import deployment_options
        o = deployment_options(server, timeout_ms, retry_ms, link, device_slowdown, emulation, server_policy)
        o.codec = str(codec)
        if curve_server_key or curve_keys:
            if not (curve_server_key and curve_keys):
                raise _core.InvalidArgumentError("CURVE needs curve_server_key and curve_keys=(public, secret)")
            o.curve_server_key = curve_server_key
            o.curve_public_key, o.curve_secret_key = curve_keys
        self.model = model
        self._core = _core.Deployment(model._core, _checked_plan(plan), o)

    def __call__(self, inputs: Inputs) -> Any:
        flat = self._core.run(list(_as_tuple(inputs)))
        return _rebuild(self.model.graph.output_structure, flat)

    run = __call__

    def run_flat(self, inputs: Inputs) -> list[torch.Tensor]:
        """Runs one request; the model's outputs as a flat list of tensors (no rebuilding of the
        model's output structure: what benchmarks time)."""
        return self._core.run(list(_as_tuple(inputs)))

    def probe(self, nbytes: int) -> float:
        """Bandwidth / rtt probe: an Echo of ``nbytes`` bytes through the server (and the emulated
        link, if any); the round trip in ms, or -1 on failure."""
        return self._core.probe(int(nbytes))

    @property
    def placement(self) -> list[int]:
        return list(self._core.placement)

    def set_plan(self, plan: Plan | _core.Plan | Placement) -> None:
        """Swap the plan (a Plan or a placement); checked now, takes effect at the next request."""
        p = _checked_plan(plan)
        if isinstance(p, list):
            self._core.set_placement(p)
        else:
            self._core.set_plan(p)

    @property
    def last_timeline(self) -> _core.Timeline:
        """Per block of the last request: target, remote/fallback, compute, transfer, server ms, bytes."""
        return self._core.last_timeline()

    def ping(self, timeout_ms: int = 500) -> dict | None:
        """The server's counters (requests, replies, errors, bytes, ...) or None on timeout."""
        import json
        body = self._core.ping(timeout_ms)
        return json.loads(body) if body else None

    def echo(self, tensors: Inputs) -> list[torch.Tensor]:
        """Send tensors to the server and back (transport tests); raises on timeout."""
        return self._core.echo(list(_as_tuple(tensors)))

    @property
    def server_available(self) -> bool:
        """False while every server is in its back-off (retry_ms after a failure, busy_retry_ms after Busy)."""
        return self._core.server_available

    @property
    def servers(self) -> list[str]:
        """The servers' endpoints, in order (indices of ``last_timeline.server``)."""
        return list(self._core.servers)

    def server_states(self) -> list:
        """What this device measured of each server: requests, failures, Busy replies, moving
        averages of round trip and queue wait, available now."""
        return list(self._core.server_states())
