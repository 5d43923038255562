"""The paper-scale GPU path of `hsmad.train`, checked on the CPU where a CPU can check it: collectives on the rank's
device, a step without host reads of device numbers, DataLoader workers, resume on another world size, torch.compile.
The GPU-only halves (NCCL, bf16, flash attention) run in `benchmarks/gpu.py` and in the `cuda`-marked test below."""
import json, os, subprocess, sys, time, traceback
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

from hsmad.checkpoint import latest_checkpoint
from hsmad.testing import micro_train_config, write_test_cache, write_style_table
from hsmad.train import Trainer, TrainSettings

ENV = {**os.environ, 'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'HF_HUB_OFFLINE': '1'}
CUDA = torch.cuda.is_available()


@pytest.fixture
def cache(tmp_path):
    return write_test_cache(tmp_path / 'cache', n_tracks=3, frames=80)


def _settings(cache, out, **kw):
    write_style_table(out, ['test style'], 12)
    return TrainSettings(**{**dict(out=str(out), cache=str(cache), micro_batch=2, progress=False, tensorboard=False), **kw})


@pytest.fixture
def one_rank_group(tmp_path):
    "A one-rank process group in this process (NCCL on CUDA, gloo on the CPU): the trainer takes its DDP path."
    dist.init_process_group('nccl' if CUDA else 'gloo', init_method=f'file://{tmp_path}/pg', rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_collectives_get_tensors_on_the_trainer_device(cache, tmp_path, one_rank_group, monkeypatch):
    "Every tensor the trainer hands to all_reduce lives on its device (NCCL takes no CPU tensors); DDP without unused-parameter search."
    seen, orig = [], dist.all_reduce
    def spy(x, *a, **kw): seen.append((x.device, x.dtype)); return orig(x, *a, **kw)
    monkeypatch.setattr(dist, 'all_reduce', spy)
    tr = Trainer(micro_train_config(steps=3), _settings(cache, tmp_path / 'run', ckpt_every=3))
    assert tr.ddp is not None and tr.ddp.find_unused_parameters is False and tr.frozen == []
    last = tr.fit()
    assert last['step'] == 3 and len(seen) == 3                                   # one collective of our own per step
    assert all(dev == tr.d.device and dt == torch.float32 for dev, dt in seen), seen


SYNC = {torch.ops.aten._local_scalar_dense.default, torch.ops.aten.equal.default, torch.ops.aten.is_nonzero.default,
        torch.ops.aten.nonzero.default}


class HostReads(TorchDispatchMode):
    "Ops that copy a tensor's value to the host (`.item()`, `float()`, `if t:`, `torch.equal`, boolean indexing), by caller."
    def __init__(self):
        super().__init__(); self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNC or func == torch.ops.aten.masked_select.default:
            machinery = ('torch/utils/_python_dispatch.py', 'torch/_ops.py', 'torch/_tensor.py', __file__)
            f = [f for f in traceback.extract_stack()[:-1] if not f.filename.endswith(machinery)][-1]
            if '/torch/' not in f.filename: self.calls.append(f"{Path(f.filename).name}:{f.lineno}")   # torch's own: not ours
        return func(*args, **(kwargs or {}))


def test_training_step_reads_no_device_number(cache, tmp_path):
    """The step (forward, backward, clipping, update, EMA, logs) makes no host read of a tensor from our code or the libraries
    we call; the step's numbers are read once, one step later, with `tolist` (no dispatch: it is the one documented read).
    The data pipeline is left out (in workers on a GPU); on the CPU torch's own Adam reads its step counter (not ours)."""
    tr = Trainer(micro_train_config(steps=6, batch_size=4), _settings(cache, tmp_path / 'run', ckpt_every=1000, log_every=1,
                                                                        stop_after=4))
    sb, loader = tr.batches()
    pre = [b for _, b in zip(range(4 * tr.accum), loader)]
    tr.batches = lambda: (sb, pre)
    with HostReads() as m: last = tr.fit()
    assert last['step'] == 4 and m.calls == [], sorted(set(m.calls))


def test_workers_give_the_batches_of_workers_0(cache, tmp_path):
    "DataLoader workers (and the prefetching order) change nothing: the same micro-batches, bitwise."
    got = []
    for w in (0, 2):
        tr = Trainer(micro_train_config(steps=4, batch_size=4), _settings(cache, tmp_path / f'run{w}', workers=w))
        assert tr.workers == w
        sb, loader = tr.batches()
        got.append([b for _, b in zip(range(6), loader)])
    for a, b in zip(*got):
        for k in ('latents', 'S_sync', 'frame_mask', 'starts'): assert torch.equal(getattr(a, k), getattr(b, k)), k
        for k in ('chroma', 'beat', 'tempo', 'key'): assert torch.equal(getattr(a.aux, k), getattr(b.aux, k)), k
        assert a.style_text == b.style_text and a.track_ids == b.track_ids


def _cli(cache, out, steps, nproc=1, extra=()):
    cfg = micro_train_config()
    sets = [f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]
    args = ['--cache', str(cache), '--out', str(out), '--steps', str(steps), '--device', 'cpu', '--no-progress', '--no-tensorboard',
            '--log-every', '1', '--batch-size', '4', '--micro-batch', '2', *extra, '--set', *sets]
    cmd = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={nproc}', '-m', 'hsmad.train']
           if nproc > 1 else [sys.executable, '-m', 'hsmad.train'])
    r = subprocess.run(cmd + args, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_resume_two_rank_checkpoint_in_one_process(cache, tmp_path):
    "3 steps on 2 gloo ranks, then 3 more in one process (accumulation 2) end where 6 steps in one process end."
    run, ref = tmp_path / 'run', tmp_path / 'ref'
    for p in (run, ref): write_style_table(p, ['test style'], 12)
    _cli(cache, run, 6, nproc=2, extra=['--ckpt-every', '3', '--stop-after', '3'])
    st = torch.load(latest_checkpoint(run) / 'training_state.pt', weights_only=False)
    assert st['world'] == 2 and len(st['rng']) == 2
    r = _cli(cache, run, 6, extra=['--ckpt-every', '3', '--resume'])
    assert 'saved by 2 rank(s), now 1' in r.stderr
    _cli(cache, ref, 6, extra=['--ckpt-every', '3'])
    a = torch.load(latest_checkpoint(run) / 'training_state.pt', weights_only=False)
    b = torch.load(latest_checkpoint(ref) / 'training_state.pt', weights_only=False)
    assert a['step'] == b['step'] == 6
    for k in b['model']: torch.testing.assert_close(a['model'][k], b['model'][k], rtol=1e-5, atol=1e-6, msg=k)
    steps = [json.loads(l)['step'] for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert steps == list(range(1, 7))


@pytest.mark.slow
def test_compile_matches_eager(cache, tmp_path):
    "A few steps with the objective compiled (inductor, CPU here) end within float tolerance of eager ones."
    out = {}
    for comp in (False, True):
        tr = Trainer(micro_train_config(steps=3, batch_size=4), _settings(cache, tmp_path / f'run{comp}', compile=comp, ckpt_every=3))
        t0 = time.time(); tr.fit(); out[comp] = (tr.model.state_dict(), time.time() - t0)
    for k, v in out[False][0].items(): torch.testing.assert_close(out[True][0][k], v, rtol=1e-3, atol=1e-4, msg=k)


@pytest.mark.skipif(not CUDA, reason='needs CUDA (NCCL); the gloo and CPU halves run above')
def test_cuda_step_nccl_bf16(cache, tmp_path, one_rank_group, monkeypatch):
    "On a GPU: NCCL collectives get CUDA tensors, the step runs under bf16 autocast, no host read from our code."
    seen, orig = [], dist.all_reduce
    def spy(x, *a, **kw): seen.append(x.device.type); return orig(x, *a, **kw)
    monkeypatch.setattr(dist, 'all_reduce', spy)
    tr = Trainer(micro_train_config(steps=4), _settings(cache, tmp_path / 'run', device='cuda', log_every=1, stop_after=3))
    assert tr.d.device.type == 'cuda' and tr.workers >= 1
    with HostReads() as m: last = tr.fit()
    assert last['step'] == 3 and set(seen) == {'cuda'}
    assert m.calls == [], m.calls
