"""Shared fixtures: zoo models are traced once into a cache (never committed)."""
import os
import sys
from pathlib import Path

import pytest
import torch

import tessera as ts
from tessera import zoo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():
    """Same intra-op threads everywhere: bitwise comparisons depend on it."""
    before = torch.get_num_threads()
    ts.set_threads(1)  # OpenBLAS's pool too (torch.set_num_threads leaves it at one thread per core)
    yield
    ts.set_threads(before)


@pytest.fixture(scope="session")
def zoo_path():
    """zoo_path(name) -> (TorchScript path in the cache, example inputs)."""
    def get(name):
        return zoo.torchscript(name)
    return get


@pytest.fixture(scope="session")
def zoo_model(zoo_path):
    """zoo_model(name) -> (tessera.Model, example inputs, original ScriptModule); cached."""
    cache = {}

    def get(name):
        if name not in cache:
            path, xs = zoo_path(name)
            cache[name] = (ts.load(str(path), xs), xs, torch.jit.load(str(path)))
        return cache[name]
    return get


@pytest.fixture(scope="session")
def venv_python():
    return sys.executable


@pytest.fixture
def repo_root():
    return ROOT


class ServerProcess:
    """`tessera serve` in another process; the endpoint is read from its first line."""

    def __init__(self, repository, bind="tcp://127.0.0.1:*", extra=(), timeout=120):
        from tessera.runtime import spawn_server
        self.proc, self.endpoint = spawn_server(repository, bind=bind, extra=extra, timeout=timeout)

    @property
    def metrics_endpoint(self) -> str:
        """"http://HOST:PORT" of the server's HTTP counters ("" without --metrics-port)."""
        return self.proc.metrics_endpoint

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def kill(self):
        self.proc.kill()
        self.proc.wait(timeout=30)

    def stop(self):
        from tessera.runtime import stop_server
        stop_server(self.proc)


@pytest.fixture
def server_process():
    """server_process(repo, ...) -> ServerProcess; every one started is stopped at the end."""
    started = []

    def start(repository, **kw):
        s = ServerProcess(repository, **kw)
        started.append(s)
        return s
    yield start
    for s in started:
        s.stop()
