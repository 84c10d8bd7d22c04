"""Real models for tests, benchmarks, notebooks and the demo.

torchvision models are built offline with random weights (``weights=None``);
nothing is downloaded. ``torchscript(name)`` traces a model once and caches the
TorchScript file (in ``$TESSERA_CACHE`` or ``<repo>/.cache/models``).
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = ["NAMES", "build", "torchscript", "cache_dir"]

_VISION = {
    "alexnet": 224, "vgg11": 224, "vgg16": 224, "resnet18": 224, "resnet50": 224, "resnet152": 224,
    "googlenet": 224, "inception_v3": 299, "densenet121": 224, "mobilenet_v2": 224,
    "mobilenet_v3_small": 224, "squeezenet1_0": 224, "efficientnet_b0": 224,
}


class TransformerModel(torch.nn.Module):
    """A pre-LN TransformerEncoder (4 layers, d=128) over a 32-token sequence."""

    def __init__(self, d_model=128, nhead=4, layers=4):
        super().__init__()
        layer = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=4 * d_model,
                                                 batch_first=True, norm_first=True, dropout=0.0)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d_model, 10)

    def forward(self, x):
        return self.head(self.encoder(x).mean(dim=1))


class LSTMModel(torch.nn.Module):
    """A 2-layer LSTM over a 16-step sequence with a linear head; returns (logits, h_n)."""

    def __init__(self, d_in=32, hidden=64):
        super().__init__()
        self.lstm = torch.nn.LSTM(d_in, hidden, num_layers=2, batch_first=True)
        self.head = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        return self.head(out[:, -1]), h


NAMES = list(_VISION) + ["transformer", "lstm"]


def build(name: str, seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """Return (model in eval mode, example inputs tuple) for a zoo name."""
    torch.manual_seed(seed)
    if name in _VISION:
        import torchvision

        kwargs = {"weights": None}
        if name in ("googlenet", "inception_v3"):
            kwargs.update(aux_logits=False, init_weights=False)
        model = getattr(torchvision.models, name)(**kwargs)
        s = _VISION[name]
        return model.eval(), (torch.randn(1, 3, s, s),)
    if name == "transformer":
        return TransformerModel().eval(), (torch.randn(1, 32, 128),)
    if name == "lstm":
        return LSTMModel().eval(), (torch.randn(1, 16, 32),)
    from ._core import InvalidArgumentError  # a ValueError

    raise InvalidArgumentError(f"unknown zoo model '{name}'; known: {', '.join(NAMES)}")


def cache_dir() -> Path:
    """Where zoo models are traced to: $TESSERA_CACHE, else .cache/models of a source checkout,
    else ~/.cache/tessera/models."""
    env = os.environ.get("TESSERA_CACHE")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "pyproject.toml").exists():  # a source checkout (editable install)
        return root / ".cache" / "models"
    return Path.home() / ".cache" / "tessera" / "models"


def torchscript(name: str, directory: str | os.PathLike | None = None) -> tuple[Path, tuple[torch.Tensor, ...]]:
    """Trace ``name`` once into ``directory`` (default cache); return (path, example inputs)."""
    d = Path(directory) if directory else cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    model, inputs = build(name)
    path = d / f"{name}.pt"
    if not path.exists():
        # Traced with autograd on: under no_grad, nn.TransformerEncoderLayer takes its
        # fused fast path and the whole layer becomes one opaque operator.
        traced = torch.jit.trace(model, inputs, check_trace=False)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        try:
            torch.jit.save(traced, str(tmp))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)  # only left when the save failed
    return path, inputs
