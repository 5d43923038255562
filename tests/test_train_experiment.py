"""experiments/train.ipynb through papermill in smoke mode (a 2-track mini dataset, 3 tiny steps)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_notebook_smoke(tmp_path):
    out = tmp_path / 'run'
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT / 'experiments' / 'train.ipynb'), str(tmp_path / 'out.ipynb'),
                        '-p', 'smoke', 'True', '-p', 'data_root', str(tmp_path / 'mini'), '-p', 'out_dir', str(out),
                        '-k', 'python3'], env=env, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-4000:]
    s = json.loads((out / 'summary.json').read_text())
    assert s['steps'] == 3 and s['loss_last'] > 0
    assert (out / 'loss.png').stat().st_size > 1000
    assert list((out / 'checkpoints').glob('step_*'))
