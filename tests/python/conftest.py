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
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
