"""Builds notebooks/01_quickstart.ipynb (run: .venv/bin/python notebooks/src/build_01.py)."""
from pathlib import Path

import nbformat as nbf

nb = nbf.v4.new_notebook()
md, code = nbf.v4.new_markdown_cell, nbf.v4.new_code_cell
nb.cells = [
    md("""# tessera quick start

Load a TorchScript model through the C++ core, look at its operator graph, cut it once into
**atoms**, write the atom store, combine atoms into blocks, run a split in one process, then
across two processes (an edge server and this notebook as the device).
Everything runs offline: the model is a torchvision ResNet-18 with random weights."""),
    code("""import torch
import tessera as ts
from tessera import zoo

torch.set_num_threads(1)
path, xs = zoo.torchscript("resnet18")      # traced once, cached in .cache/models
m = ts.load(str(path), xs)                   # freeze, record shapes, atomize
print(m)
print(m.graph.num_compute_nodes(), "operators,", m.num_atoms, "atoms")
y = m.run(xs)
print("output", tuple(y.shape))"""),
    md("## The operator graph and the atoms"),
    code("""print(m.summary(max_rows=8))
a = m.atoms[0]
print(a, "inputs", [m.graph.values[v].shape for v in a.inputs], "outputs", [m.graph.values[v].shape for v in a.outputs])"""),
    md("""## The atom store

One TorchScript file per atom and a manifest with shapes, bytes and a sha256 per file.
A device that runs only the first half opens only those atoms: it holds only their weights."""),
    code("""import tempfile, pathlib
repo = pathlib.Path(tempfile.mkdtemp())
store = repo / "resnet18"
m.save(store)
half = m.num_atoms // 2
device = ts.Model.open(store, atoms=range(half))
print(len(list(store.iterdir())), "files;", f"device holds {device.loaded_param_bytes()/1e6:.1f} MB of",
      f"{sum(a.param_bytes for a in m.atoms)/1e6:.1f} MB of weights")"""),
    md("## Blocks and split runs in one process"),
    code("""blk = m.combine([0, 1, 2, 3])                # one spliced TorchScript function
print(blk)
(h,) = blk(*xs)
print("block output", tuple(h.shape))
placement = [0] * half + [1] * (m.num_atoms - half)   # target index per atom
y_split = device.run(xs, placement=placement)
print("split == unsplit, bitwise:", torch.equal(y_split, y))"""),
    md("""## A split across two processes

`tessera serve` runs an edge server in another process on loopback; it serves the
repository of atom stores we just wrote. The notebook is the device: it runs the first
half and sends the cut tensor over ZeroMQ (raw bytes, no pickle)."""),
    code("""from tessera.runtime import spawn_server
server, endpoint = spawn_server(repo)          # `tessera serve REPO` in another process
print("edge server on", endpoint)"""),
    code("""dep = ts.Deployment(device, placement, server=endpoint, timeout_ms=5000)
y_remote = dep(xs)
print("remote split == whole model:", torch.allclose(y_remote, y, rtol=1e-4, atol=1e-5))
for b in dep.last_timeline.blocks:
    where = "server" if b.remote else "device"
    print(f"{where:>6} atoms {b.atoms[0]}-{b.atoms[-1]}: compute {b.compute_ms:.1f} ms, "
          f"round trip {b.round_trip_ms:.1f} ms (server {b.server_ms:.1f} ms), up {b.bytes_up/1e3:.0f} kB")
print(dep.ping())"""),
    code("""server.terminate(); server.wait(timeout=30)
y_fallback = dep(xs)   # the server is gone: the remaining blocks run here
print("after the server stopped, still correct:", torch.allclose(y_fallback, y, rtol=1e-4, atol=1e-5),
      "| fell back:", dep.last_timeline.fallback)"""),
]
nb.metadata["kernelspec"] = {"name": "tessera", "display_name": "tessera (venv)", "language": "python"}
nbf.write(nb, str(Path(__file__).resolve().parents[1] / "01_quickstart.ipynb"))
