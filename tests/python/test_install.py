"""Packaging: non-editable pip install, installed C++ prefix, core-only build, set-up errors.

These build tessera again (ccache makes it mostly a cache lookup) and take a
minute or two each; they are what a new user or a C++ product does.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"


def _run(cmd, **kw):
    kw.setdefault("timeout", 900)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


def _env(**extra):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("CCACHE_BASEDIR", str(ROOT))
    env.update(extra)
    return env


def test_pip_install_non_editable_into_fresh_venv(tmp_path):
    venv = tmp_path / "venv"
    _run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)])
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "--no-build-isolation", "--no-index", "--no-deps", str(ROOT)],
         env=_env(TESSERA_CMAKE_BUILD_DIR=str(tmp_path / "cmake-build"), TESSERA_BUILD_TESTS="0"), cwd=tmp_path)
    code = ("import tessera, torch; m = tessera.load(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU()), "
            "torch.randn(2, 4)); print(tessera.__file__); print(m.num_atoms); "
            "tessera.PowerModel.from_android_profile(tessera.sample_profile('phone_lte'))")  # package data installed
    r = _run([str(py), "-c", code], env=_env(), cwd=tmp_path)
    where, atoms = r.stdout.split()
    assert where.startswith(str(venv)), where  # the installed copy, not the source tree
    assert int(atoms) == 2
    r = _run([str(venv / "bin" / "tessera"), "--help"], env=_env(), cwd=tmp_path)
    assert "inspect" in r.stdout


def test_cpp_example_builds_against_installed_prefix(tmp_path, zoo_path):
    prefix = tmp_path / "prefix"
    _run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)])
    assert (prefix / "include" / "tessera" / "tessera.h").exists()
    assert (prefix / "lib" / "cmake" / "tessera" / "tesseraConfig.cmake").exists()
    ex_build = tmp_path / "ex"
    _run(["cmake", "-S", str(ROOT / "examples" / "cpp" / "01_run_model"), "-B", str(ex_build), "-G", "Ninja",
          f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"],
         env=_env())
    _run(["cmake", "--build", str(ex_build)], env=_env())
    path, _ = zoo_path("resnet18")
    r = _run([str(ex_build / "01_run_model"), str(path), str(tmp_path / "store")],
             env=_env(LD_LIBRARY_PATH=str(prefix / "lib")))
    assert "69 atoms" in r.stdout and "split == whole: yes" in r.stdout


def test_cpp_device_talks_to_installed_server(tmp_path, zoo_model):
    """examples/cpp/02_remote_split built against the prefix, against the installed tessera-server."""
    import select
    prefix = tmp_path / "prefix"
    _run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)])
    server_bin = prefix / "bin" / "tessera-server"
    assert server_bin.exists()
    ex_build = tmp_path / "ex2"
    _run(["cmake", "-S", str(ROOT / "examples" / "cpp" / "02_remote_split"), "-B", str(ex_build), "-G", "Ninja",
          f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"],
         env=_env())
    _run(["cmake", "--build", str(ex_build)], env=_env())
    m, _, _ = zoo_model("mobilenet_v2")
    repo = tmp_path / "repo"
    m.save(repo / "mnv2")
    env = _env(LD_LIBRARY_PATH=str(prefix / "lib"))
    srv = subprocess.Popen([str(server_bin), str(repo), "--bind", "tcp://127.0.0.1:*"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    try:
        ready, _, _ = select.select([srv.stdout], [], [], 60)
        line = srv.stdout.readline() if ready else ""
        assert "listening on" in line, line + srv.stderr.read()
        endpoint = line.split("listening on ")[1].split()[0]
        r = _run([str(ex_build / "02_remote_split"), str(repo / "mnv2"), endpoint, "60", "3"], env=env)
        assert "3/3 correct" in r.stdout and "FALLBACK" not in r.stdout, r.stdout
    finally:
        srv.terminate()
        out, _ = srv.communicate(timeout=30)
    assert '"replies": 3' in out  # the server printed its counters on SIGTERM


def test_core_builds_without_torch_and_python(tmp_path):
    b = tmp_path / "core"
    _run(["cmake", "-S", str(ROOT), "-B", str(b), "-G", "Ninja", "-DTESSERA_WITH_TORCH=OFF",
          "-DTESSERA_BUILD_PYTHON=OFF", "-DTESSERA_BUILD_TESTS=ON"], env=_env())
    _run(["cmake", "--build", str(b), "-j", "2"], env=_env())
    cache = (b / "CMakeCache.txt").read_text()
    assert "Torch_DIR:PATH=Torch_DIR-NOTFOUND" in cache or "Torch_DIR" not in cache
    _run(["ctest", "--test-dir", str(b), "-R", "Error", "--output-on-failure"])


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to become nobody")
def test_setup_without_root_names_missing_packages(tmp_path):
    r = subprocess.run(["runuser", "-u", "nobody", "--", "bash", str(ROOT / "scripts" / "setup.sh")],
                       capture_output=True, text=True, timeout=120,
                       env=_env(TESSERA_EXTRA_PACKAGES="tessera-no-such-package"))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "tessera-no-such-package" in r.stderr
    assert "apt-get install" in r.stderr
