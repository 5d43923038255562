"""Write `results/demo_report.md` from `results/demo.json` (and the run folders' training logs).

    python tools/demo_report.py --results results --runs runs/demo --figures figures [--wall-s SECONDS]

Every number in the report is read from a file `make demo` wrote; its setting (preset, steps, transcriber,
embedder, style measure) is printed beside it, and each with its 95 % interval over clips as the evaluation
(`hsmad.eval.evaluate`) wrote it (bootstrap; delete-one jackknife for FAD). The HS-MAD vs Baseline-Global comparison is paired over the same clips (2,000
resamples of the clips, seed 0): the mean per-clip F1 difference, and the differences of pooled note F1 and TAE.
"""
from __future__ import annotations

import argparse, json, os, platform, sys
from pathlib import Path

import numpy as np

from hsmad.eval.evaluate import ClipScores, compare, fmt_ci, paired_difference


def training_summary(run: Path) -> dict:
    "Steps, wall time, throughput and final losses of one run folder, from its metrics.jsonl."
    recs = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines() if l.strip()] if (run / 'metrics.jsonl').is_file() else []
    recs = [r for r in recs if 'ldm' in r]
    if not recs: return dict(run=str(run), steps=0)
    last = recs[-10:]
    from hsmad.checkpoint import checkpoints
    cks = checkpoints(run)
    cfg = json.loads((cks[-1] / 'config.json').read_text()) if cks else {}
    return dict(run=str(run), steps=recs[-1]['step'], ldm_last10=float(np.mean([r['ldm'] for r in last])),
                steps_per_s=float(np.mean([r.get('steps_per_s', np.nan) for r in last])),
                batch_size=cfg.get('batch_size'), variant=cfg.get('variant'), codec=cfg.get('codec'),
                clip_seconds=cfg.get('clip_seconds'), tca_window=cfg.get('tca_window'), lr=cfg.get('lr'))


def fmt(x, p=3):
    return '—' if x is None or (isinstance(x, float) and not np.isfinite(x)) else f'{x:.{p}f}'


def report(results: Path, runs: Path, figures: Path, wall_s: float | None) -> str:
    res = json.loads((results / 'demo.json').read_text())
    rows = res['ceiling_rows'] + [r for r in res['model_rows'] if r.get('status') in (None, 'ok')]
    by = {r['row']: r for r in rows}
    h, g = by.get('HS-MAD'), by.get('Baseline-Global')
    tr = {v: training_summary(runs / v) for v in ('hsmad', 'global')}
    L = ['# HS-MAD demo report', '',
         f"`make demo`: mini dataset (`{res['data_root']}`), preset `{res.get('preset', 'tiny')}`, CPU only"
         + (f", {wall_s / 60:.1f} min wall time" if wall_s else '') + f" on {os.cpu_count()} cores ({platform.machine()}).", '',
         '## Setting of every number below', '',
         f"- **Models:** HS-MAD and Baseline-Global, preset `{res.get('preset')}`, {res.get('train_steps')} training steps each"
         f" (batch {tr['hsmad'].get('batch_size')}, codec `{res['codec']}`, crops of {tr['hsmad'].get('clip_seconds')} s), seed {res['seed']}; "
         f"EMA weights.",
         f"- **Generation:** {res['n_clips']} clip{'s' if res['n_clips'] != 1 else ''} of {res['clip_seconds']} s from the `{res['split']}` split, each with its own MIDI"
         f" crop and style prompt; DPM++ with {res['steps']} steps, w_H = {res['w_H']}, w_S = {res['w_S']}.",
         f"- **Note metrics:** transcriber `{res['transcriber']}`; onset-only note F1 with a 50 ms tolerance (mir_eval), pooled over"
         f" clips; TAE = RMS onset error of matched notes.",
         f"- **FAD:** embedder `{res['embedder']}` (an offline stand-in for VGGish/CLAP; compare FADs only within this table).",
         f"- **Style adherence:** `{res['style_measure']}`"
         + (" (a small classifier trained on the mini training audio: how often it recognises the prompted ensemble;"
            " an offline substitute for the CLAP score, named as such)" if res['style_measure'] == 'ensemble-classifier-accuracy' else '') + '.',
         '', '## Results', '',
         'Each number with its 95 % interval over the clips (bootstrap 95 %; FAD: delete-one jackknife); a TAE from fewer than'
         ' 20 matched onsets is not measurable.', '',
         '| row | kind | clips | matched onsets | note F1 | precision | recall | TAE (ms) | FAD | style adherence |',
         '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        why = (r.get('not_measurable') or {}).get('tae_s')
        L.append(f"| {r['row']} | {r['kind']} | {r.get('n_clips')} | {r.get('n_matched')} | {fmt_ci(r.get('f1'), r.get('f1_ci95'))} | "
                 f"{fmt(r.get('precision'))} | {fmt(r.get('recall'))} | {fmt_ci(r.get('tae_s'), r.get('tae_s_ci95'), 1, 1000, why)} | "
                 f"{fmt_ci(r.get('fad'), r.get('fad_ci95'), 2)} | {fmt_ci(r.get('style_adherence'), r.get('style_adherence_ci95'), 2)} |")
    L.append('')
    if h and g and h.get('clips') and g.get('clips'):
        d = paired_difference([c['f1'] for c in h['clips']], [c['f1'] for c in g['clips']])
        verdict = ('HS-MAD is above Baseline-Global (the interval excludes 0)' if d['ci95'][0] > 0 else
                   'Baseline-Global is above HS-MAD (the interval excludes 0)' if d['ci95'][1] < 0 else
                   'no clear difference at this budget (the interval contains 0)')
        L += ['## HS-MAD vs Baseline-Global, paired over the same clips', '',
              f"Per-clip note F1, HS-MAD minus Baseline-Global: mean {d['mean']:+.3f}, bootstrap 95 % interval "
              f"[{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}] over {d['n']} clip{'s' if d['n'] != 1 else ''}; HS-MAD higher on {d['wins']}, lower on {d['losses']}. "
              f"**{verdict}.**", '']
        bs = res.get('bootstrap') or {}
        sh, sg = (ClipScores.from_clips(r['clips'], res['clip_seconds'], res.get('drift_bins', 4)) for r in (h, g))
        pooled = {k: compare(sh, sg, k, n_boot=bs.get('n_boot', 2000), seed=bs.get('seed', 0), names=('HS-MAD', 'Baseline-Global'))
                  for k in ('f1', 'tae_s')}
        for k, (label, sc, p) in (('f1', ('pooled note F1', 1, 3)), ('tae_s', ('TAE (ms)', 1000, 1))):
            c = pooled[k]
            L.append(f"- {label}, HS-MAD minus Baseline-Global: " + (f"not measurable ({c['reason']})" if c['ci95'] is None else
                     f"{c['difference'] * sc:+.{p}f}, 95 % interval [{c['ci95'][0] * sc:+.{p}f}, {c['ci95'][1] * sc:+.{p}f}]"))
        L.append('')
        res_out = dict(paired_f1_difference=d, verdict=verdict, paired_pooled=pooled)
    else: res_out = {}
    L += ['## Training', '', '| model | steps | steps/s | final diffusion loss (mean of last 10 logs) |', '|---|---|---|---|']
    for v, name in (('hsmad', 'HS-MAD'), ('global', 'Baseline-Global')):
        t = tr[v]
        L.append(f"| {name} | {t.get('steps')} | {fmt(t.get('steps_per_s'), 2)} | {fmt(t.get('ldm_last10'), 4)} |")
    figs = json.loads((results / 'figures.json').read_text())['figures'] if (results / 'figures.json').is_file() else []
    L += ['', '## Figures', ''] + [f"- `{f['figure']}` (from `{f['source']}`)" for f in figs]
    L += ['', 'Files: `results/demo.json` (every row, per-clip scores), `results/demo.csv`, the executed notebook `executed/demo.ipynb`,'
          ' training logs in the run folders. A demo-scale model is far from converged: read the rows as a check that the'
          ' whole chain runs and that the symbolic conditioning is used, not as the paper\'s numbers.', '']
    from hsmad.io import atomic_write_json
    atomic_write_json(results / 'demo_summary.json', dict(training=tr, wall_s=wall_s, **res_out), indent=1)
    return '\n'.join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--results', default='results'); ap.add_argument('--runs', default='runs/demo')
    ap.add_argument('--figures', default='figures'); ap.add_argument('--wall-s', type=float, default=None)
    a = ap.parse_args(argv)
    results = Path(a.results)
    if not (results / 'demo.json').is_file():
        print(f"no {results / 'demo.json'}: run `make demo` first", file=sys.stderr); return 1
    md = report(results, Path(a.runs), Path(a.figures), a.wall_s)
    from hsmad.io import atomic_write
    atomic_write(results / "demo_report.md", md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
