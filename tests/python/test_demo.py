"""make demo's job (examples/python/demo.py) shows what tessera is for: with its embedded default
(AlexNet, a device 10x slower, the embedded trace) the adaptive deployment runs real mid-model
splits, and its table says how many requests did."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_default_runs_mid_model_splits(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "python" / "demo.py"), "--requests", "16",
                        "--plot", str(tmp_path / "demo.png")], capture_output=True, text=True, env=env,
                       timeout=900, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    m = re.search(r"(\d+) of (\d+) requests ran a mid-model split", r.stdout)
    assert m, r.stdout[-2000:]
    assert int(m.group(1)) > 0 and int(m.group(2)) == 16, r.stdout[-2000:]
    assert "split_requests" in r.stdout and (tmp_path / "demo.png").is_file()
