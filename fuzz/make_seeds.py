#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (committed).

    .venv/bin/python fuzz/make_seeds.py [--seeds-tool build-fuzz/tessera-fuzz-seeds]

wire/ and descs/: real messages and descriptor frames, written by the C++ encoders
(fuzz/make_seeds.cpp, built with the fuzz targets). manifest/: the manifest.json of small
atom stores made here with tessera (a CNN with a skip connection and two outputs, a model
with two inputs and an integer-valued helper, an LSTM), and the same manifest in the older
layout without "args", "rows" and "scope" (open_store still reads those). Files named
regression-* (inputs that once found a bug, fuzz/README in docs/testing.md) are kept.
"""
import argparse
import json
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"


def small_models():
    import torch

    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.b = torch.nn.Conv2d(4, 4, 1)
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            a = torch.relu(self.a(x))
            s = self.b(a) + a
            p = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(s, 1), 1)
            return self.fc(p), s.sum()

    class TwoInputs(torch.nn.Module):
        def forward(self, x, y):
            z = torch.cat([x, y], 1)
            return z.view(z.size(0), -1).softmax(-1)

    class Rnn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.LSTM(4, 3, batch_first=True)

        def forward(self, x):
            return self.l(x)[0].tanh()

    torch.manual_seed(0)
    return [("skip", Skip(), (torch.randn(1, 3, 6, 6),)),
            ("two_inputs", TwoInputs(), (torch.randn(1, 2, 3), torch.randn(1, 1, 3))),
            ("lstm", Rnn(), (torch.randn(1, 2, 4),))]


def manifests(out):
    import tessera as ts
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, module, xs in small_models():
            store = pathlib.Path(tmp) / name
            ts.load(module, xs).save(store)
            text = (store / "manifest.json").read_text()
            (out / f"{name}.json").write_text(text)
            if name == "skip":  # the older layout: no args, rows or scope in nodes
                j = json.loads(text)
                for n in j["nodes"]:
                    for key in ("args", "rows", "scope"):
                        n.pop(key, None)
                (out / "skip_old_layout.json").write_text(json.dumps(j, separators=(",", ":")))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds-tool", default=str(ROOT / "build-fuzz" / "tessera-fuzz-seeds"))
    args = ap.parse_args()
    for sub in ("wire", "descs", "manifest"):  # inputs that once failed (regression-*) stay
        for f in (CORPUS / sub).glob("*") if (CORPUS / sub).is_dir() else []:
            if not f.name.startswith("regression-"):
                f.unlink()
    subprocess.run([args.seeds_tool, str(CORPUS)], check=True)
    manifests(CORPUS / "manifest")
    for sub in ("wire", "descs", "manifest"):
        files = sorted((CORPUS / sub).iterdir())
        print(f"{sub:9s} {len(files):3d} seeds, {sum(f.stat().st_size for f in files):7d} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
