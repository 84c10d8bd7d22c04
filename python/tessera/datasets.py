"""Labelled data available offline, and a small CNN trained on it in seconds.

    data = ts.datasets.digits()               # scikit-learn's bundled 8x8 digits, 1797 images
    net = ts.datasets.digits_cnn(data)        # trained in a few seconds on one core
    ts.datasets.top1(net, data.test)          # 0.97-0.99

The digits come with Debian's ``python3-sklearn`` (1.2, no download: the data ship inside the
package). Splits are stratified and fixed by the seed: ``train`` (60 %), ``val`` (20 %: what
variant selection measures losses on) and ``test`` (20 %: what benchmarks check the selection
against, never seen by the selector).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from . import _core


__all__ = ["digits", "digits_cnn", "DigitsCNN", "Split", "LabelledData", "train_classifier", "predictions", "top1",
           "binomial_halfwidth"]


@dataclass
class Split:
    """Images ``x`` (float32 [N, 1, size, size], values in [0, 1]) and labels ``y`` (int64 [N])."""
    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.numel())

    def batches(self, size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) batches of ``size`` samples in order (the last may be smaller)."""
        for i in range(0, len(self), size):
            yield self.x[i:i + size], self.y[i:i + size]


@dataclass
class LabelledData:
    name: str
    train: Split
    val: Split
    test: Split
    classes: int

    def __repr__(self) -> str:
        return (f"LabelledData({self.name}: {len(self.train)} train, {len(self.val)} val, {len(self.test)} test, "
                f"{self.classes} classes)")


def digits(seed: int = 0, size: int = 8) -> LabelledData:
    """scikit-learn's digits (8x8 grey images of handwritten digits, 10 classes), split 60/20/20.
    size > 8 upsamples the images (bilinear) to size x size: the same task with the compute and
    activations of a larger input (a camera frame rather than a thumbnail), where splitting pays."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:  # pragma: no cover - set-up installs it
        raise _core.NotFoundError("the digits data set needs scikit-learn: install Debian's python3-sklearn "
                                  f"(make setup does) ({e})") from None
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if int(size) != 8:
        if int(size) < 2:
            raise _core.InvalidArgumentError(f"digits: size = {size}, at least 2")
        x = torch.nn.functional.interpolate(x, size=(int(size), int(size)), mode="bilinear", align_corners=False)
    y = torch.tensor(d.target, dtype=torch.int64)
    idx = list(range(len(y)))
    tr, rest = train_test_split(idx, test_size=0.4, random_state=seed, stratify=d.target)
    va, te = train_test_split(rest, test_size=0.5, random_state=seed, stratify=d.target[rest])
    pick = lambda ids: Split(x[ids].contiguous(), y[ids].contiguous())  # noqa: E731
    return LabelledData("digits" if int(size) == 8 else f"digits{int(size)}", pick(tr), pick(va), pick(te), 10)


class DigitsCNN(torch.nn.Module):
    """Three convolutions and two linear layers for 8x8 digits (~28 k parameters)."""

    def __init__(self, channels: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        a, b, c = channels
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(1, a, 3, padding=1), torch.nn.BatchNorm2d(a), torch.nn.ReLU(),
            torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.BatchNorm2d(b), torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(b, c, 3, padding=1), torch.nn.BatchNorm2d(c), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
            torch.nn.Linear(c, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [N, 10] of images ``x`` [N, 1, 8, 8]."""
        return self.features(x)


def train_classifier(module: torch.nn.Module, data: Split, epochs: int = 30, lr: float = 3e-3,
                     batch: int = 64, seed: int = 0) -> torch.nn.Module:
    """Trains ``module`` in place on ``data`` (cross-entropy, Adam) and returns it in eval mode."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(module.parameters(), lr=lr)
    module.train()
    n = len(data)
    for _ in range(int(epochs)):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            ids = perm[i:i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(module(data.x[ids]), data.y[ids])
            loss.backward()
            opt.step()
    return module.eval()


def digits_cnn(data: LabelledData | None = None, epochs: int = 30, seed: int = 0) -> DigitsCNN:
    """A :class:`DigitsCNN` trained on ``data.train`` (default: :func:`digits`); ~3 s on one core."""
    data = data or digits(seed)
    torch.manual_seed(seed)
    return train_classifier(DigitsCNN(), data.train, epochs=epochs, seed=seed)


@torch.no_grad()
def predictions(fn: Callable[[torch.Tensor], Any], data: Split, batch: int = 0) -> torch.Tensor:
    """Top-1 predictions of ``fn`` (a module or a callable of one batch) over ``data``; batch 0 =
    one sample at a time (what atom stores, traced at batch 1, take)."""
    out = []
    if batch <= 0:
        for i in range(len(data)):
            out.append(_first(fn(data.x[i:i + 1])).argmax(-1))
    else:
        for x, _ in data.batches(batch):
            out.append(_first(fn(x)).argmax(-1))
    return torch.cat(out)


def _first(y):
    return y[0] if isinstance(y, (list, tuple)) else y


def top1(fn: Callable[[torch.Tensor], Any], data: Split, batch: int = 0) -> float:
    """Top-1 accuracy of ``fn`` on ``data`` (see :func:`predictions`)."""
    return float((predictions(fn, data, batch) == data.y).float().mean())


def binomial_halfwidth(p: float, n: int, z: float = 1.96) -> float:
    """Half-width of the 95 % (Wilson) interval of an accuracy ``p`` measured on ``n`` samples."""
    if n <= 0:
        return math.inf
    denom = 1 + z * z / n
    return z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
