"""Multi-process and crash tests of `hsmad.train` (real processes: torchrun with gloo, SIGKILL)."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from hsmad.checkpoint import checkpoints, latest_checkpoint, load_pretrained
from hsmad.testing import micro_train_config, write_test_cache, write_style_table

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'HF_HUB_OFFLINE': '1'}


def _args(cache, out, steps, **kw):
    "CLI arguments for a micro run on the synthetic cache."
    cfg = micro_train_config()
    sets = [f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]
    a = ['--cache', str(cache), '--out', str(out), '--steps', str(steps), '--device', 'cpu', '--no-progress',
         '--no-tensorboard', '--log-every', '1']
    for k, v in kw.items(): a += [f'--{k.replace("_", "-")}', str(v)]
    return a + ['--set', *sets]


def _run(args, nproc=1, **kw):
    cmd = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', '-m', 'hsmad.train']
           if nproc > 1 else [sys.executable, '-m', 'hsmad.train'])
    r = subprocess.run(cmd + args, env=ENV, capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _state(run):
    return torch.load(latest_checkpoint(run) / 'training_state.pt', weights_only=False)


def _ema(run):
    from safetensors.torch import load_file
    return load_file(latest_checkpoint(run) / 'model.safetensors')


@pytest.fixture
def cache(tmp_path):
    return write_test_cache(tmp_path / 'cache', n_tracks=3, frames=80)


def _new_run(path):
    write_style_table(path, ['test style'], 12)
    return path


def test_torchrun_two_ranks_equal_one_process(cache, tmp_path):
    "2 gloo ranks x micro-batch 2 == 1 process x 2 accumulation steps of 2, after 3 steps; ranks bitwise identical."
    r2, r1 = _new_run(tmp_path / 'ddp'), _new_run(tmp_path / 'one')
    _run(_args(cache, r2, 3, batch_size=4, micro_batch=2, ckpt_every=3), nproc=2)
    _run(_args(cache, r1, 3, batch_size=4, micro_batch=2, ckpt_every=3))
    st2 = json.loads((latest_checkpoint(r2) / 'state.json').read_text())
    assert st2['world'] == 2 and len(st2['rank_digests']) == 2 and len(set(st2['rank_digests'])) == 1
    a, b = _state(r2), _state(r1)
    assert a['step'] == b['step'] == 3
    for k in a['model']: torch.testing.assert_close(a['model'][k], b['model'][k], rtol=1e-5, atol=1e-6, msg=k)
    # the parameters did move from the initialisation: compare with step-0 weights of the same seed
    from hsmad.model import HSMAD
    torch.manual_seed(micro_train_config().seed)
    init = HSMAD(micro_train_config()).state_dict()
    assert max(float((a['model'][k] - init[k]).abs().max()) for k in init) > 1e-4
    m1 = [json.loads(l) for l in (r1 / 'metrics.jsonl').read_text().splitlines()]
    m2 = [json.loads(l) for l in (r2 / 'metrics.jsonl').read_text().splitlines()]
    for x, y in zip(m1, m2): assert abs(x['loss'] - y['loss']) < 1e-5 * max(1, abs(x['loss']))


def test_sigkill_and_resume_matches_uninterrupted(cache, tmp_path):
    "A run killed with SIGKILL after a checkpoint and resumed ends with the parameters of an uninterrupted run."
    ref, run = _new_run(tmp_path / 'ref'), _new_run(tmp_path / 'killed')
    steps = 30
    _run(_args(cache, ref, steps, batch_size=4, ckpt_every=5))
    p = subprocess.Popen([sys.executable, '-m', 'hsmad.train'] + _args(cache, run, steps, batch_size=4, ckpt_every=5),
                         env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not checkpoints(run) and time.time() - t0 < 300 and p.poll() is None: time.sleep(0.02)
    p.send_signal(signal.SIGKILL); p.wait()
    assert p.returncode == -signal.SIGKILL, 'the run finished before it could be killed'
    killed_at = int(latest_checkpoint(run).name.split('_')[1])
    assert 0 < killed_at < steps
    _run(_args(cache, run, steps, batch_size=4, ckpt_every=5) + ['--resume'])
    a, b = _state(ref), _state(run)
    assert a['step'] == b['step'] == steps
    for k in a['model']: assert torch.equal(a['model'][k], b['model'][k]), k       # bitwise
    ea, eb = _ema(ref), _ema(run)
    for k in ea: assert torch.equal(ea[k], eb[k]), k
    steps_logged = [json.loads(l)['step'] for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert steps_logged == list(range(1, steps + 1))


CRASH = """
import os, signal, sys
import hsmad.checkpoint as C, hsmad.train as T
_orig = C.write_synced
def _write_then_die(path, write):
    _orig(path, write)
    if 'step_00000004' in str(path): os.kill(os.getpid(), signal.SIGKILL)   # after the first file of checkpoint 4
C.write_synced = _write_then_die
sys.exit(T.cli_train(sys.argv[1:]))
"""


def test_crash_during_checkpoint_write_keeps_previous(cache, tmp_path):
    "SIGKILL in the middle of writing checkpoint 4 leaves checkpoint 2 the newest, loadable, and resumable."
    run = _new_run(tmp_path / 'run')
    r = subprocess.run([sys.executable, '-c', CRASH] + _args(cache, run, 6, batch_size=4, ckpt_every=2),
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr
    assert [c.name for c in checkpoints(run)] == ['step_00000002']
    partial = list((run / 'checkpoints').glob('.tmp-step_00000004-*'))
    assert len(partial) == 1 and len(list(partial[0].iterdir())) == 1                 # died mid-write
    pre = load_pretrained(run)
    assert pre.step == 2 and all(torch.isfinite(p).all() for p in pre.model.parameters())
    _run(_args(cache, run, 6, batch_size=4, ckpt_every=2) + ['--resume'])
    assert [c.name for c in checkpoints(run)][-1] == 'step_00000006'
    assert not list((run / 'checkpoints').glob('.tmp-*'))


def test_cli_train_encodes_mini_then_trains(tmp_path):
    "`hsmad train --dataset mini`: a 2-track mini dataset is encoded to the cache first, then 2 steps train."
    from hsmad.data.mini import build_mini
    from hsmad.train import cli_train
    root = tmp_path / 'mini'
    build_mini(root, tracks=2, max_seconds=3.0, workers=1, progress=False)
    cfg = micro_train_config(latent_channels=513, style_dim=384, clip_seconds=1.024)
    sets = [f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]
    rc = cli_train(['--dataset', 'mini', '--data-root', str(root), '--out', str(tmp_path / 'run'), '--steps', '2',
                    '--batch-size', '2', '--no-progress', '--device', 'cpu', '--set', *sets])
    assert rc == 0
    assert (tmp_path / 'mini-latents-stft' / 'manifest.json').is_file()
    pre = load_pretrained(tmp_path / 'run')
    assert pre.step == 2 and pre.codec['channels'] == 513 and pre.style_encoder == 'minilm' and len(pre.style_table) >= 1
    assert (tmp_path / 'run' / 'tb').is_dir()


def test_cli_train_errors(tmp_path):
    from hsmad.train import cli_train
    assert cli_train(['--out', str(tmp_path / 'r'), '--cache', str(tmp_path / 'nocache')]) == 2
    assert cli_train(['--out', str(tmp_path / 'r'), '--data-root', str(tmp_path), '--variant', 'nonsense']) == 2
