"""Parameter helpers of the experiment notebooks (papermill drivers); the evaluation itself is `hsmad.eval.evaluate`.

- `as_list` / `as_dict`: papermill's `-p runs X` passes a string; accept a JSON string, one item, or the real value
  (`-y "runs: [a, b]"`).
- The smoke settings (`SMOKE_SETS`, `smoke_data`): every notebook runs in seconds on a tiny mini build, for the tests.
- `train_missing`: the variants that have no finished run folder are trained (or resumed) with `hsmad.train`: one at a
  time in this process (`jobs=1`), or `jobs` at a time as `python -m hsmad.train` subprocesses on an equal share of the
  CPU cores each (`jobs>1`, logging to `<run>/train.log`). A run whose newest checkpoint is at `steps` is not touched.
  While a variant trains, a progress line at most every `progress_every` seconds, read from its `metrics.jsonl`.
- `paper_estimate`: the wall time `tools/paper.sh tiny` still needs (training at measured or assumed steps/s, then the
  evaluation), printed at its start and after every stage.

The notebooks import this module as `experiments.params`, so they run with the repository root as working directory
(as `make paper`, `make demo` and the tests run them).
"""
from __future__ import annotations
import ast, json, os, signal, subprocess, sys, tempfile, threading, time
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


# ------------------------------------------------------------------------------------------------ one run folder
def train_args(variant: str, *, dataset: str, data_root, out, preset: str = 'tiny', steps: int = 3000, batch_size: int = 0,
               sets: Sequence[str] = (), seed: int = 0, log_every: int = 50, ckpt_every: int | None = None,
               keep_last: int | None = None) -> list[str]:
    "The `hsmad train` arguments of one variant (`--resume` when `out` holds a run); `ckpt_every` / `keep_last` None: its defaults."
    out = Path(out)
    args = ['--preset', preset, '--dataset', dataset, '--data-root', str(data_root), '--steps', str(steps), '--out', str(out),
            '--variant', variant, '--seed', str(seed), '--log-every', str(log_every), '--no-progress', '--no-tensorboard']
    if batch_size: args += ['--batch-size', str(batch_size)]
    if ckpt_every is not None: args += ['--ckpt-every', str(ckpt_every)]
    if keep_last is not None: args += ['--keep-last', str(keep_last)]
    if (out / 'checkpoints').is_dir() or (out / 'metrics.jsonl').is_file(): args.append('--resume')   # hsmad train refuses to train over a run
    if sets: args += ['--set', *sets]
    return args


def run_step(out) -> int:
    "The step of the newest complete checkpoint in the run folder `out` (0 when it holds none)."
    from hsmad.checkpoint import CKPT_PREFIX, checkpoints
    ck = checkpoints(out)
    return int(ck[-1].name[len(CKPT_PREFIX):]) if ck else 0


def last_record(out) -> dict | None:
    "The last complete record of `<out>/metrics.jsonl` (read from the end of the file), or None."
    p = Path(out) / 'metrics.jsonl'
    if not p.is_file(): return None
    with open(p, 'rb') as f:
        f.seek(max(0, f.seek(0, os.SEEK_END) - 8192))
        lines = f.read().decode(errors='replace').splitlines()
    for line in reversed(lines):
        try: return json.loads(line)
        except json.JSONDecodeError: continue              # a half-written last line, or the cut first one
    return None


def train_variant(variant: str, *, dataset: str, data_root, out, preset: str = 'tiny', steps: int = 3000, batch_size: int = 0,
                  sets: Sequence[str] = (), gpus: int = 0, seed: int = 0, log_every: int = 50, ckpt_every: int | None = None,
                  keep_last: int | None = None) -> Path:
    "Train (or resume) one variant into `out` with `hsmad.train`: in this process on CPU / one GPU, with torchrun for `gpus > 1`."
    out = Path(out)
    args = train_args(variant, dataset=dataset, data_root=data_root, out=out, preset=preset, steps=steps, batch_size=batch_size,
                      sets=sets, seed=seed, log_every=log_every, ckpt_every=ckpt_every, keep_last=keep_last)
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


# ------------------------------------------------------------------------------------------------ progress lines
def _minutes(s: float) -> str:
    "A duration in words: seconds below 90 s, minutes below 90 min, else hours."
    return f'{s:.0f} s' if s < 90 else f'{s / 60:.0f} min' if s < 5400 else f'{s / 3600:.1f} h'


def progress_line(label: str, variant: str, out, steps: int) -> str:
    "`[paper] LABEL: VARIANT step S/STEPS, R steps/s, ~M min left`, from the last record of the run's metrics.jsonl."
    rec = last_record(out)
    if not rec or not rec.get('step'): return f'[paper] {label}: {variant} starting (no step logged yet)'
    step, rate = int(rec['step']), float(rec.get('steps_per_s') or 0)
    left = f', ~{_minutes((steps - step) / rate)} left' if rate > 0 and step < steps else ''
    return f'[paper] {label}: {variant} step {step}/{steps}, {rate:.2f} steps/s{left}'


class _Progress:
    "A daemon thread printing `progress_line` of every training run in `active` at most every `every` seconds."
    def __init__(self, label: str, steps: int, every: float):
        self.label, self.steps, self.every = label, steps, every
        self.active: dict[str, tuple[Path, float]] = {}          # variant -> (run folder, time of its last line)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(min(5.0, self.every)):
            now = time.time()
            for v, (out, said) in list(self.active.items()):
                if now - said >= self.every:
                    print(progress_line(self.label, v, out, self.steps), flush=True)
                    self.active[v] = (out, now)

    def add(self, variant: str, out: Path): self.active[variant] = (out, time.time())
    def remove(self, variant: str): self.active.pop(variant, None)
    def __enter__(self): self._thread.start(); return self
    def __exit__(self, *exc): self._stop.set(); self._thread.join()


# ------------------------------------------------------------------------------------------------ several variants
def _cpu_cores() -> int:
    "The cores this run may use: OMP_NUM_THREADS when set (tools/paper.sh sets it), else the CPUs of this process."
    n = os.environ.get('OMP_NUM_THREADS', '')
    return int(n) if n.isdigit() and int(n) > 0 else len(os.sched_getaffinity(0))


def _die_with_parent():
    "A `preexec_fn` (Linux) that has the child sent SIGTERM when this process dies, so that no orphan trains on; else None."
    if not sys.platform.startswith('linux'): return None
    import ctypes
    try: prctl = ctypes.CDLL(None, use_errno=True).prctl           # resolved here: the child only calls it
    except (OSError, AttributeError): return None
    return lambda: prctl(1, signal.SIGTERM)                          # PR_SET_PDEATHSIG


def log_tail(path, chars: int = 3000) -> str:
    "The end of a text file (the last `chars` characters, from a line start)."
    text = Path(path).read_text(errors='replace') if Path(path).is_file() else ''
    if len(text) <= chars: return text
    cut = text[-chars:]
    return cut[cut.find('\n') + 1:] if '\n' in cut else cut


def _prepare_cache(train: dict) -> None:
    "Encode the latent cache once here, before several `hsmad train` processes would each start encoding it."
    from hsmad.config import get_preset, parse_overrides
    from hsmad.train import prepare_cache
    codec = parse_overrides(train.get('sets')).get('codec') or get_preset(train.get('preset', 'tiny')).codec
    root = str(train['data_root']).rstrip('/')
    prepare_cache(train['dataset'], root, codec, f'{root}-latents-{codec}', progress=False)   # hsmad train's default --cache


def _stop(procs: dict, grace: float = 60.0) -> None:
    "Ctrl-C to every process in `procs` (hsmad train keeps its checkpoints and says where it stopped), then kill the slow ones."
    for p, *_ in procs.values():
        if p.poll() is None: p.send_signal(signal.SIGINT)
    t_end = time.time() + grace
    for p, *_ in procs.values():
        try: p.wait(timeout=max(0.1, t_end - time.time()))
        except subprocess.TimeoutExpired: p.kill(); p.wait()


def _train_parallel(todo: dict[str, Path], train: dict, jobs: int, progress: _Progress, poll: float = 1.0) -> None:
    "Train the variants of `todo` (`{variant: run folder}`) `jobs` at a time as `python -m hsmad.train` subprocesses."
    import hsmad
    threads = str(max(1, _cpu_cores() // jobs))
    path = [str(Path(hsmad.__file__).resolve().parents[1]), os.environ.get('PYTHONPATH', '')]   # the children import this hsmad
    env = dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONPATH=os.pathsep.join(p for p in path if p))
    train = {k: v for k, v in train.items() if k != 'gpus'}
    _prepare_cache(train)
    pending, running = list(todo.items()), {}                 # running: variant -> (process, run folder, log file, start time)
    orphan_guard = _die_with_parent()
    try:
        while pending or running:
            while pending and len(running) < jobs:
                v, out = pending.pop(0)
                out.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, '-m', 'hsmad.train', *train_args(v, out=out, **train), '--device', 'cpu']
                log = open(out / 'train.log', 'a')
                log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} OMP_NUM_THREADS={threads} {' '.join(cmd)}\n"); log.flush()
                p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=orphan_guard)
                running[v] = (p, out, log, time.time())
                progress.add(v, out)
                print(f'[paper] {progress.label}: training {v} from step {run_step(out)} to {progress.steps} '
                      f'({threads} thread(s), log {out / "train.log"})', flush=True)
            time.sleep(poll)
            for v, (p, out, log, t0) in list(running.items()):
                rc = p.poll()
                if rc is None: continue
                del running[v]; log.close(); progress.remove(v)
                if rc: raise RuntimeError(f"training {v} failed (exit {rc}); the end of {out / 'train.log'}:\n{log_tail(out / 'train.log')}")
                print(f'[paper] {progress.label}: {v} trained to step {run_step(out)} in {_minutes(time.time() - t0)}', flush=True)
    finally:
        _stop(running)
        for _, _, log, _ in running.values(): log.close()


def train_missing(runs: dict, variants: Sequence[str], runs_dir, *, jobs: int = 1, label: str | None = None,
                  progress_every: float = 60.0, **train) -> dict:
    """`runs` completed with `<runs_dir>/<variant>` for each trainable variant (`hsmad.checkpoint.MODEL_VARIANTS`) not in it.
    A run folder whose newest checkpoint is at `train['steps']` is used as it is; the others are trained or resumed, one at a
    time in this process (`jobs=1`) or `jobs` at a time as subprocesses (CPU only). `train`: the arguments of `train_variant`."""
    from hsmad.checkpoint import MODEL_VARIANTS
    if jobs < 1: raise ValueError(f"jobs must be at least 1, got {jobs}")
    if jobs > 1 and train.get('gpus', 0): raise ValueError("jobs > 1 shares the CPU cores between variants; with gpus > 0 use jobs=1")
    steps, label = int(train.get('steps', 3000)), label or Path(runs_dir).name
    out = dict(runs)
    todo = {v: Path(runs_dir) / v for v in variants if v not in out and v in MODEL_VARIANTS}
    for v, run in list(todo.items()):
        done = run_step(run)
        if done >= steps:
            if done > steps: print(f'[paper] {label}: {v} in {run} is at step {done}, past {steps}; evaluated as it is', flush=True)
            out[v] = str(run); del todo[v]
    if todo:
        with _Progress(label, steps, progress_every) as progress:
            if jobs == 1:
                for v, run in todo.items():
                    print(f'[paper] {label}: training {v} from step {run_step(run)} to {steps} in this process', flush=True)
                    progress.add(v, run)
                    train_variant(v, out=run, **train)
                    progress.remove(v)
            else: _train_parallel(todo, train, jobs, progress)
    return out | {v: str(run) for v, run in todo.items()}


# ------------------------------------------------------------------------------------------------ the run's wall time
# The rates the estimate assumes until a run has logged its own. Training: steps per second of one `hsmad train --preset
# tiny` job on one thread, two jobs side by side on 2 cores: one job alone on an idle core ran 2.5 steps/s; two side by
# side on a machine shared with other work (load 5) ran 0.7-1.4 each; 2.0 assumes the two cores are the run's own.
# Evaluation (measured with the baselines notebook, 2 threads, load 4.5): per clip of 4 s and model row, generation at
# 25 sampler steps (HS-MAD 0.83 s per audio second, Baseline-Global 0.49) and its scoring (transcription, FAD
# embedding, style); per stage once (the style classifier and the reference clips).
ASSUMED_STEPS_PER_S = 2.0
JOB_START_S = 30.0           # a training process's start (imports, data, model) before its first step, seen at load 5
EVAL_GENERATE_S, EVAL_SCORE_S, EVAL_STAGE_S = 3.0, 2.0, 60.0


def _notebook_defaults(nb: str) -> dict:
    "The literal values of an experiment notebook's parameters cell."
    cells = json.loads((Path(__file__).parent / f'{nb}.ipynb').read_text())['cells']
    src = next(''.join(c['source']) for c in cells if 'parameters' in c['metadata'].get('tags', []))
    return {t.id: ast.literal_eval(a.value) for a in ast.parse(src).body if isinstance(a, ast.Assign) for t in a.targets}


def measured_rate(out) -> float | None:
    "The median steps/s of the last five records of a run's metrics.jsonl, or None when it has none."
    p = Path(out) / 'metrics.jsonl'
    if not p.is_file(): return None
    rates = []
    for line in p.read_text(errors='replace').splitlines()[-5:]:
        try: rates.append(float(json.loads(line)['steps_per_s']))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError): continue
    return sorted(rates)[len(rates) // 2] if rates else None


def _makespan(durations: Sequence[float], jobs: int) -> float:
    "Wall time of `durations` run `jobs` at a time, in their order, each started as soon as a slot frees (as `train_missing`)."
    slots = [0.0] * jobs
    for d in durations: slots[slots.index(min(slots))] += d
    return max(slots)


def paper_estimate(runs_dir, steps: int, jobs: int, stages: Sequence[str] = ('baselines', 'ablations', 'control'),
                   data_root=None, max_clips: int | None = None, sampler_steps: int | None = None) -> dict:
    """The wall time `tools/paper.sh tiny` needs for `stages`: the steps each variant still lacks (its run folder under
    `runs_dir/<stage>/`) at its measured rate (or `ASSUMED_STEPS_PER_S`) `jobs` at a time, then the evaluation of every
    model row on the stage's clips. Variants and clip counts are the notebooks' defaults (what tools/paper.sh runs)."""
    runs_dir, rows, trained = Path(runs_dir), [], set()
    runs = {}
    for st in ('baselines', 'ablations'):
        for v in _notebook_defaults(st)['variants']:
            runs.setdefault(v, runs_dir / st / v)              # HS-MAD of the ablations is the baselines' run (tools/paper.sh)
    measured = {v: r for v, run in runs.items() if (r := measured_rate(run))}
    fallback = sorted(measured.values())[len(measured) // 2] if measured else None
    for st in stages:
        p = _notebook_defaults(st)
        variants = [v for v in p.get('variants', ['hsmad']) if v not in trained]
        trained |= set(variants)
        todo = {v: max(0, steps - run_step(runs[v])) for v in variants}
        rate = {v: measured.get(v) or fallback or ASSUMED_STEPS_PER_S for v in todo}
        train_s = _makespan([JOB_START_S + n / rate[v] for v, n in todo.items() if n], jobs) if any(todo.values()) else 0.0
        models = len(p['variants']) if 'variants' in p else p['max_prompts'] + len(p['w_H_grid']) * len(p['w_S_grid'])
        clips = min(max_clips or p['max_clips'], _clip_count(data_root, p, max_clips or p['max_clips']))
        per_clip = models * (EVAL_GENERATE_S * (sampler_steps or p['steps']) / 25 + EVAL_SCORE_S) + 2 * EVAL_SCORE_S  # + the ceiling rows
        rows.append(dict(stage=st, variants=[v for v, n in todo.items() if n], steps_left=sum(todo.values()),
                         train_s=train_s, eval_s=EVAL_STAGE_S + clips * per_clip, models=models, clips=clips))
    return dict(stages=rows, jobs=jobs, steps=steps, seconds=sum(r['train_s'] + r['eval_s'] for r in rows),
                rates={v: round(r, 2) for v, r in measured.items()})


def _clip_count(data_root, p: dict, max_clips: int) -> int:
    "How many clips a stage evaluates on `data_root` (its plan), or `max_clips` when the dataset is not there."
    if not data_root or not Path(data_root).is_dir(): return max_clips
    from hsmad.data.datasets import open_dataset
    from hsmad.eval.evaluate import clip_plan
    return len(clip_plan(open_dataset(p['dataset'], data_root, p['split']), p['clip_seconds'], max_clips))


def describe_estimate(e: dict, short: bool = False) -> str:
    "For tools/paper.sh: one line per stage and the total, or (`short`) only the time left."
    total = f"~{_minutes(e['seconds'])}"
    if short: return f"[paper] {total} left for {', '.join(r['stage'] for r in e['stages'])} (estimate; hypotheses and figures take a few minutes more)"
    lines = [f"[paper] estimate: {r['stage']}: train {', '.join(r['variants']) or 'nothing'} ({r['steps_left']} steps, "
             f"{_minutes(r['train_s'])} with {e['jobs']} job(s)) + evaluate {r['models']} models x {r['clips']} clips "
             f"(~{_minutes(r['eval_s'])})" for r in e['stages']]
    src = f"measured steps/s {e['rates']}" if e['rates'] else f"{ASSUMED_STEPS_PER_S} steps/s per job assumed: no run has logged yet"
    return '\n'.join(lines + [f"[paper] estimate: {total} in all at {e['steps']} steps per variant ({src}), "
                              f"plus a few minutes for hypotheses and figures"])
