"""Parameter helpers of the experiment notebooks (papermill drivers); the evaluation itself is `hsmad.eval.evaluate`.

- `as_list` / `as_dict`: papermill's `-p runs X` passes a string; accept a JSON string, one item, or the real value
  (`-y "runs: [a, b]"`).
- The smoke settings (`SMOKE_SETS`, `smoke_data`): every notebook runs in seconds on a tiny mini build, for the tests.
- `train_missing`: the variants that have no run folder are trained (or resumed) with `hsmad.train`.

The notebooks import this module as `experiments.params`, so they run with the repository root as working directory
(as `make paper`, `make demo` and the tests run them).
"""
from __future__ import annotations
import json, subprocess, sys, tempfile, time
from pathlib import Path
from typing import Sequence

# test-sized widths for smoke runs on the real (513-channel STFT) mini cache: seconds per step on a CPU
SMOKE_SETS = ['d_event=16', 'd_local=24', 'd_global=32', 'hse_heads=2', 'hse_ffn=32', 'hse_conv_kernel=5',
              'c_high=16', 'c_mid=24', 'c_low=32', 'heads=2', 'clip_seconds=0.512', 'warmup_steps=2', 'ema_decay=0.9']


def as_list(x) -> list:
    "A list parameter given as a list, a JSON list string, one item, or None."
    if x is None: return []
    if isinstance(x, str): return json.loads(x) if x.strip().startswith('[') else [x]
    return list(x)


def as_dict(x) -> dict:
    "A dict parameter given as a dict, a JSON string, or None."
    if x is None: return {}
    if isinstance(x, str): return json.loads(x) if x.strip() else {}
    return dict(x)


def smoke_data(prefix: str) -> Path:
    "A tiny mini dataset (14 tracks of at most 6 s) in a fresh temporary folder."
    from hsmad.data.mini import build_mini
    root = Path(tempfile.mkdtemp(prefix=f'hsmad_{prefix}_smoke_')) / 'mini'
    build_mini(root, tracks=14, seed=0, max_seconds=6.0, workers=1, progress=False)
    return root


def train_variant(variant: str, *, dataset: str, data_root, out, preset: str = 'tiny', steps: int = 3000, batch_size: int = 0,
                  sets: Sequence[str] = (), gpus: int = 0, seed: int = 0, log_every: int = 50) -> Path:
    "Train (or resume) one variant into `out` with `hsmad.train`: in this process on CPU / one GPU, with torchrun for `gpus > 1`."
    out = Path(out)
    args = ['--preset', preset, '--dataset', dataset, '--data-root', str(data_root), '--steps', str(steps), '--out', str(out),
            '--variant', variant, '--seed', str(seed), '--log-every', str(log_every), '--no-progress', '--no-tensorboard']
    if batch_size: args += ['--batch-size', str(batch_size)]
    if (out / 'checkpoints').is_dir() or (out / 'metrics.jsonl').is_file(): args.append('--resume')   # hsmad train refuses to train over a run
    if sets: args += ['--set', *sets]
    t0 = time.time()
    if gpus > 1:                      # rank 0 encodes the cache while the others wait (hsmad.train)
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={gpus}', '-m', 'hsmad.train'] + args
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: raise RuntimeError(f"training {variant} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    else:
        from hsmad.train import cli_train
        rc = cli_train(args + (['--device', 'cpu'] if gpus == 0 else []))
        if rc: raise RuntimeError(f"training {variant} failed (exit {rc}); see the output above")
    print(f'trained {variant} -> {out} in {time.time() - t0:.1f} s')
    return out


def train_missing(runs: dict, variants: Sequence[str], runs_dir, **train) -> dict:
    "`runs` completed with `<runs_dir>/<variant>` for each trainable variant (`hsmad.checkpoint.MODEL_VARIANTS`) without a run folder."
    from hsmad.checkpoint import MODEL_VARIANTS
    out = dict(runs)
    for v in variants:
        if v not in out and v in MODEL_VARIANTS: out[v] = str(train_variant(v, out=Path(runs_dir) / v, **train))
    return out
