"""Atoms: the graph, atomization, combination and split runs on real models."""
import json
import random
import re

import pytest
import torch

import tessera as ts
from tessera import zoo

ZOO = ["alexnet", "vgg11", "resnet18", "resnet50", "googlenet", "inception_v3", "densenet121",
       "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_0", "efficientnet_b0", "transformer", "lstm"]


def _flat(y):
    if isinstance(y, torch.Tensor):
        return [y]
    out = []
    for e in y:
        out.extend(_flat(e))
    return out


def _random_convex_free_placement(m, rng):
    """A random two-target placement (any placement is valid: blocks are derived)."""
    mode = rng.random()
    n = m.num_atoms
    if mode < 0.3:  # one cut along the topological order
        k = rng.randrange(n + 1)
        return [0] * k + [1] * (n - k)
    if mode < 0.6:  # alternating stretches
        p, cur = [], rng.randrange(2)
        while len(p) < n:
            p.extend([cur] * rng.randint(1, max(1, n // 5)))
            cur ^= 1
        return p[:n]
    return [rng.randrange(2) for _ in range(n)]


@pytest.mark.parametrize("name", ZOO)
def test_split_runs_match_the_whole_model(name, zoo_model):
    m, xs, orig = zoo_model(name)
    with torch.no_grad():
        ref = _flat(orig(*xs))
    whole = m.run_flat(xs)
    assert len(whole) == len(ref)
    for a, b in zip(whole, ref):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"{name}: unsplit run differs"
    rng = random.Random(hash(name) & 0xFFFF)
    for trial in range(20):
        p = _random_convex_free_placement(m, rng)
        ys = m.run_flat(xs, placement=p)
        for a, b, w in zip(ys, ref, whole):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), f"{name} trial {trial}"
            assert torch.equal(a, w), f"{name} trial {trial}: not bitwise equal to the unsplit run"


def test_graph_and_atoms_describe_the_model(zoo_model):
    m, xs, _ = zoo_model("resnet18")
    g = m.graph
    assert g.values[g.inputs[0]].shape == [1, 3, 224, 224]
    assert g.values[g.inputs[0]].dtype == "float32"
    kinds = {n.kind for n in g.nodes if n.atom >= 0}
    assert {"aten::_convolution", "aten::batch_norm", "aten::relu", "aten::add", "aten::linear"} <= kinds
    # in-place activations of the model (relu_) became functional: atoms are pure
    assert not any(k.endswith("_") and not k.startswith("aten::_") for k in kinds)
    conv = next(n for n in g.nodes if n.kind == "aten::_convolution")
    out = g.values[conv.outputs[0]]
    assert out.shape == [1, 64, 112, 112] and out.bytes == 64 * 112 * 112 * 4
    # atom boundaries are tensors only, ids are topological
    for a in m.atoms:
        for v in a.inputs + a.outputs:
            assert g.values[v].is_tensor
        for v in a.inputs:
            p = g.values[v].producer
            assert p < 0 or g.nodes[p].atom < a.id
    total = sum(a.param_bytes for a in m.atoms)
    params = sum(p.numel() * 4 for p in zoo.build("resnet18")[0].state_dict().values()
                 if p.dtype == torch.float32)
    assert abs(total - params) / params < 0.01
    assert "aten::_convolution" in m.summary(max_rows=5)


def test_tuple_outputs_and_several_inputs():
    class TwoInTwoOut(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.b = torch.nn.Linear(8, 4)

        def forward(self, x, y):
            h = torch.relu(self.a(x)) + y
            h.add_(1.0)  # an in-place op
            return self.b(h), (h.sum(), [x * 2])

    mod = TwoInTwoOut().eval()
    xs = (torch.randn(2, 8), torch.randn(2, 8))
    m = ts.load(mod, xs)
    y = m.run(xs)
    ref = mod(*xs)
    assert isinstance(y, tuple) and isinstance(y[1], tuple) and isinstance(y[1][1], list)
    assert torch.allclose(y[0], ref[0]) and torch.allclose(y[1][0], ref[1][0])
    assert torch.allclose(y[1][1][0], ref[1][1][0])
    for p in ([1] * m.num_atoms, [i % 2 for i in range(m.num_atoms)]):
        assert torch.equal(m.run(xs, placement=p)[0], y[0])


def test_control_flow_stays_in_one_atom():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            y = torch.relu(x)
            if bool(y.sum() > 0):
                y = y * 2
            else:
                y = y - 1
            for _ in range(x.size(0)):  # a trip count known only at run time
                y = y + 1
            return torch.sigmoid(y)

    sm = torch.jit.script(Branchy())
    x = torch.randn(4, 4)
    m = ts.load(sm, x)
    kinds = [a.op_kinds for a in m.atoms]
    assert any("prim::If" in k for k in kinds) and any("prim::Loop" in k for k in kinds)
    for p in ([0] * m.num_atoms, [i % 2 for i in range(m.num_atoms)]):
        assert torch.allclose(m.run(x, placement=p), sm(x))
        assert torch.allclose(m.run(-x.abs() - 1, placement=p), sm(-x.abs() - 1))


def test_combine_builds_one_spliced_block(zoo_model):
    m, xs, _ = zoo_model("resnet18")
    b = m.combine([3, 4, 5])
    assert b.atoms == [3, 4, 5]
    # one function, no calls: every op of the three atoms appears in its graph
    src = b.graph_str()
    assert "prim::CallFunction" not in src and "prim::CallMethod" not in src
    assert sum(len(m.atoms[a].op_kinds) for a in (3, 4, 5)) <= src.count("aten::")
    assert m.combine([5, 4, 3]) is not None
    # the prefix block reproduces what the model computes there
    prefix = m.combine(range(6))
    outs = prefix(*xs)
    assert len(outs) == len(prefix.outputs)


def test_combine_refuses_non_convex_sets(zoo_model):
    m, _, _ = zoo_model("resnet18")
    with pytest.raises(ValueError, match=r"not convex.*path"):
        m.combine([0, 5])
    with pytest.raises(ValueError, match="atom id 9999 out of range"):
        m.combine([9999])
    with pytest.raises(ValueError, match="empty"):
        m.combine([])


def test_bad_inputs_are_named(zoo_model, zoo_path):
    m, xs, _ = zoo_model("resnet18")
    with pytest.raises(ValueError, match=r"input 0 .* shape \[1, 3, 100, 100\].*\[1, 3, 224, 224\]"):
        m.run(torch.randn(1, 3, 100, 100))
    with pytest.raises(ValueError, match="dtype float64"):
        m.run(torch.randn(1, 3, 224, 224, dtype=torch.float64))
    with pytest.raises(ValueError, match="takes 1 inputs, got 2"):
        m.run((xs[0], xs[0]))
    with pytest.raises(ValueError, match="placement has 3 entries"):
        m.run(xs, placement=[0, 1, 0])
    path, _ = zoo_path("resnet18")
    with pytest.raises(ValueError, match=r"example inputs \(float32 1x5x224x224\)"):
        ts.load(str(path), torch.randn(1, 5, 224, 224))
    with pytest.raises(ValueError, match="takes 1 inputs but 2"):
        ts.load(str(path), (xs[0], xs[0]))
    with pytest.raises(ValueError, match=r"example inputs \(int64 1x3x224x224\)"):
        ts.load(str(path), torch.zeros(1, 3, 224, 224, dtype=torch.int64))


def test_store_roundtrip_and_partial_open(zoo_model, tmp_path):
    m, xs, _ = zoo_model("mobilenet_v2")
    store = tmp_path / "mnv2"
    m.save(store)
    manifest = json.loads((store / "manifest.json").read_text())
    assert manifest["model_hash"] == m.hash and len(manifest["atoms"]) == m.num_atoms
    assert all(len(a["sha256"]) == 64 for a in manifest["atoms"])
    assert sorted(p.name for p in store.iterdir()) == sorted(["manifest.json"] + [a.file for a in m.atoms])
    half = list(range(m.num_atoms // 2))
    d = ts.Model.open(store, atoms=half)
    assert d.loaded_atoms() == half and d.hash == m.hash
    assert d.loaded_param_bytes() == sum(m.atoms[a].param_bytes for a in half)
    y = d.run(xs, placement=[0] * len(half) + [1] * (m.num_atoms - len(half)))
    assert torch.equal(y, m.run(xs))
    with pytest.raises(ValueError, match="exists already"):
        m.save(store)
    m.save(store, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dirs left
    # overwrite replaces atom stores and empty directories only, never other data
    other = tmp_path / "notes"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an atom store"):
        m.save(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me" and len(list(other.iterdir())) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    m.save(empty, overwrite=True)
    assert (empty / "manifest.json").exists()


def test_store_refuses_tampered_files(zoo_model, tmp_path):
    m, xs, _ = zoo_model("squeezenet1_0")
    store = tmp_path / "sq"
    m.save(store)
    victim = store / m.atoms[3].file
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    d = ts.Model.open(store, atoms=[0, 1])
    with pytest.raises(ValueError, match=rf"atom 3 file .*{m.atoms[3].file}.*tampered or truncated"):
        d.run(xs)
    with pytest.raises(ValueError, match="tampered"):
        ts.Model.open(store)
    # a manifest that does not match its files
    (store / m.atoms[5].file).unlink()
    with pytest.raises(FileNotFoundError, match=m.atoms[5].file):
        ts.Model.open(store, atoms=[0])
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["atoms"][0].pop("sha256")
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"atoms\[0\]: missing field 'sha256'"):
        ts.Model.open(store)
    with pytest.raises(FileNotFoundError, match="not an atom store"):
        ts.Model.open(tmp_path)
    with pytest.raises(ValueError, match="out of range"):
        m.save(tmp_path / "ok")
        ts.Model.open(tmp_path / "ok", atoms=[10_000])


def test_failed_save_leaves_nothing(zoo_model, tmp_path):
    m, _, _ = zoo_model("squeezenet1_0")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Exception):
        m.save(blocker / "store")  # parent is a file: cannot be created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def _all_placements_match(mm, xs, ref):
    """Every 0/1 placement of mm's atoms gives the unsplit reference outputs."""
    import itertools
    for p in itertools.product([0, 1], repeat=mm.num_atoms):
        got = mm.run(list(xs), list(p))
        assert all(torch.equal(a, b) for a, b in zip(got, ref)), (p, got, ref)


def test_inplace_write_inside_an_if_is_kept_with_its_readers():
    """`if c: y.add_(1)` writes to an outside y through a nested block: the write must stay
    ordered before y's readers in every split."""
    from tessera import _core

    class M(torch.nn.Module):
        def forward(self, x):
            y = x * 2
            if bool(x.sum() > 0):
                y.add_(1)
            return y + 1, y

    m = torch.jit.script(M())
    x = torch.ones(3)
    mm = _core.Model.load_script_module(m._c, [x])
    _all_placements_match(mm, [x], list(m(x)))


def test_a_list_that_is_appended_to_is_not_copied_per_atom():
    from tessera import _core
    from typing import List

    class M(torch.nn.Module):
        def forward(self, x):
            shape: List[int] = [2]
            shape.append(x.size(1) * 3)
            return x.repeat(1, 3).view(shape)

    m = torch.jit.script(M())
    x = torch.randn(2, 4)
    mm = _core.Model.load_script_module(m._c, [x])
    _all_placements_match(mm, [x], [m(x)])


def test_a_returned_buffer_is_produced_by_an_atom():
    from tessera import _core

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("b", torch.arange(3.0))

        def forward(self, x):
            return x * 2, self.b

    m = torch.jit.script(M().eval())
    x = torch.randn(3)
    mm = _core.Model.load_script_module(m._c, [x])
    _all_placements_match(mm, [x], list(m(x)))


def test_weights_inside_list_constants_are_hashed_and_counted():
    """A frozen LSTM keeps its weights in one Tensor[] constant: two LSTMs with different
    weights must get different hashes (a server keys models by hash), and the atom holding
    them counts their bytes."""
    from tessera import _core

    class L(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.l = torch.nn.LSTM(16, 32, batch_first=True)

        def forward(self, x):
            return self.l(x)[0]

    x = torch.randn(1, 5, 16)
    torch.manual_seed(0)
    a = _core.Model.load_script_module(torch.jit.script(L().eval())._c, [x])
    torch.manual_seed(1)
    b = _core.Model.load_script_module(torch.jit.script(L().eval())._c, [x])
    assert a.hash != b.hash
    weights = sum(p.numel() * 4 for p in L().parameters())
    assert sum(at.param_bytes for at in a.atoms) == weights


@pytest.mark.parametrize("edit, words", [
    ('j["outputs"] = [10**8]', "outputs names value 100000000"),
    ('j["inputs"] = [-1]', "inputs names value -1"),
    ('j["nodes"][5]["atom"] = 10**6', "nodes[5] is in atom 1000000"),
    ('j["values"][4]["consumers"] = [10**8]', "values[4] has consumer 100000000"),
    ('j["nodes"][2]["inputs"] = [-4]', "nodes[2].inputs names value -4"),
    ('j["atoms"][0]["nodes"] = [10**7]', "atoms[0] lists node 10000000"),
    ('del j["values"]', "field 'values' is missing"),
    # found by fuzz/fuzz_manifest: raw json errors and undefined float -> int conversions before
    ('j["format"] = 7', "field 'format' has the wrong type"),
    ('j["nodes"][0]["scope"] = 12', "nodes[0]: field 'scope' has the wrong type"),
    ('j["values"][j["inputs"][0]]["tensor"]["bytes"] = 1e302', "field 'bytes' holds 1e+302, out of range for a 64-bit integer"),
    ('j["atoms"][0]["inputs"] = [2**32]', "field 'inputs' holds 4294967296, out of range for a 32-bit integer"),
])
def test_corrupt_manifest_is_named_not_a_crash(zoo_model, tmp_path, edit, words):
    m, xs, _ = zoo_model("squeezenet1_0")
    store = tmp_path / "sq"
    m.save(store)
    j = json.loads((store / "manifest.json").read_text())
    exec(edit, {"j": j})
    (store / "manifest.json").write_text(json.dumps(j))
    with pytest.raises(ValueError, match=re.escape(words)):
        ts.Model.open(store)


def test_run_blocks_runs_every_atom_once(zoo_model):
    m, xs, ref = zoo_model("squeezenet1_0")
    A = m.num_atoms
    y = m.run_blocks(xs, [list(range(A // 2)), list(range(A // 2, A))])
    assert torch.equal(y[0], m.run_blocks(xs, [list(range(A))])[0])
    with pytest.raises(ValueError, match="atom 0 is in block 0 and in block 1"):
        m.run_blocks(xs, [[0], [0, 1]] + [[a] for a in range(2, A)])
    with pytest.raises(ValueError, match=f"atom {A - 1} is in no block"):
        m.run_blocks(xs, [list(range(A - 1))])
