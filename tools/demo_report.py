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

FORMS = {'additive': 'the paper\'s: ε(∅,∅) + w_H·[ε(C_H,∅) − ε(∅,∅)] + w_S·[ε(∅,C_S) − ε(∅,∅)]',
         'nested': 'ε(∅,∅) + w_H·[ε(C_H,∅) − ε(∅,∅)] + w_S·[ε(C_H,C_S) − ε(C_H,∅)]: the style term under the score'}


def clamp_note(res: dict) -> str:
    "How the sampler bounded x0 in the models' rows (`clamp_x0`, recorded per row)."
    c = {r.get('row'): r.get('clamp_x0') for r in res.get('model_rows', []) if r.get('status') == 'ok'}
    on = sorted(k for k, v in c.items() if v); off = sorted(k for k, v in c.items() if v is False)
    if not on: return '; x0 not clamped' if off else ''
    return ("; x0 clamped at every step to the training latents' per-channel range" + (f" ({', '.join(on)}; not {', '.join(off)})" if off else '')
            + " (`clamp_x0`, nbs/deviations.ipynb#x0-clamp)")
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


def short(name: str, n: int = 12) -> str:
    return name if len(name) <= n else name[:n - 1] + '…'


def confusion_table(conf: dict) -> list[str]:
    "Markdown rows of a confusion matrix `{classes, counts}` (`counts[i][j]`: prompted `classes[i]`, recognised `classes[j]`)."
    cols, M = conf['classes'], conf['counts']
    L = ['| prompted \\ recognised | ' + ' | '.join(short(c) for c in cols) + ' | right |', '|---' * (len(cols) + 2) + '|']
    for i, (p, row) in enumerate(zip(cols, M)):
        n = sum(row)
        if n: L.append(f"| {p} | " + ' | '.join(f"**{v}**" if j == i else str(v) for j, v in enumerate(row)) + f" | {row[i]}/{n} |")
    return L


def style_sections(res: dict) -> list[str]:
    "Per-class accuracy and confusion of the style measure on each model's clips, and the prompt-swap experiment."
    L = []
    rows = [r for r in res['model_rows'] if r.get('style_confusion')]
    if rows:
        L += ['## Style adherence: what the measure recognised', '',
              f"`{res['style_measure']}` on the generated clips (each with its own prompt). Rows: the prompted style; columns:"
              " what the measure recognised. A column that takes every clip means the outputs share one timbre (or one"
              " artefact) whatever the prompt.", '']
        for r in rows:
            L += [f"**{r['row']}** (adherence {fmt(r.get('style_adherence'), 2)}):", ''] + confusion_table(r['style_confusion']) + ['']
    sw = res.get('prompt_swap') or {}
    if sw:
        first = next(iter(sw.values()))
        L += ['## The same score under every prompt', '',
              f"The first {first['n_clips']} MIDI crops of the plan, each generated under all {len(first['prompts'])} mini prompts"
              f" (w_H = {first['w_H']}, w_S = {first['w_S']}, {first.get('cfg_form') or 'additive'} guidance, seed {first['seed']}). Measure `{first['measure']}`: an output counts"
              " as right when, among FluidSynth renders of **the same crop** by every ensemble, the prompted ensemble's is"
              f" nearest by long-term spectrum (gain-invariant mean log-mel); chance {first['chance']:.2f}. Beside it, the"
              " style measure above on the same outputs.", '',
              '| model | nearest own ensemble | style measure on the swapped prompts |', '|---|---|---|']
        for k, r in sw.items():
            right = round(r['accuracy'] * r['n'])
            L.append(f"| {k} | {right}/{r['n']} ({fmt(r['accuracy'], 2)}) | {fmt(r.get('style_adherence'), 2)} |")
        L.append('')
        for k, r in sw.items():
            L += [f"**{k}**, nearest render by long-term spectrum:", ''] + confusion_table(r['confusion']) + ['']
    return L


def validation_records(run: Path) -> list[dict]:
    "The validation records (`val/...` keys: condition gains) of a run's metrics.jsonl."
    mp = run / 'metrics.jsonl'
    recs = [json.loads(l) for l in mp.read_text().splitlines() if l.strip()] if mp.is_file() else []
    return [{k: v for k, v in r.items() if k == 'step' or k.startswith('val/')} for r in recs if 'val/loss' in r]


def gains_figure(cg: dict, path: Path, budget: str) -> Path | None:
    "Structure and style gain per t band against the training step, one panel per model."
    cg = {k: v for k, v in cg.items() if v}
    if not cg: return None
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(cg), figsize=(4.5 * len(cg), 6), squeeze=False, sharex=True)
    for j, (name, recs) in enumerate(cg.items()):
        bands = sorted({k.split('/')[-1] for k in recs[-1] if k.startswith('val/gain_H/')}, key=lambda b: int(b[1:].split('-')[0]))
        steps = [r['step'] for r in recs]
        for i, (g, label) in enumerate((('gain_H', 'structure gain'), ('gain_S', 'style gain'))):
            ax = axes[i, j]
            for b in bands: ax.plot(steps, [r.get(f'val/{g}/{b}', np.nan) for r in recs], marker='o', ms=3, label=f't {b[1:]}')
            ax.axhline(0, color='k', lw=0.6); ax.set_ylabel(f'{label} (loss difference)'); ax.set_title(f'{name}: {label}', fontsize=10)
            if i == 1: ax.set_xlabel('training step')
        axes[0, j].legend(fontsize=7)
    fig.suptitle(f'Loss without minus loss with each condition, fixed validation crops (EMA weights); {budget}', fontsize=9)
    fig.tight_layout(); path.parent.mkdir(parents=True, exist_ok=True); fig.savefig(path, dpi=120); plt.close(fig)
    return path


def prompt_spread(run: Path) -> dict | None:
    "How far apart the training prompts' style embeddings are: pairwise cosine similarity, raw and as LayerNorm sees them."
    p = run / 'style_table.pt'
    if not p.is_file(): return None
    import torch
    table = torch.load(p)
    if len(table) < 2: return None
    E = torch.stack([table[k].float() for k in sorted(table)])
    def cos(X):
        X = torch.nn.functional.normalize(X, dim=1); C = X @ X.T
        off = C[~torch.eye(len(X), dtype=torch.bool)]
        return dict(mean=float(off.mean()), max=float(off.max()), min=float(off.min()))
    Z = torch.nn.functional.layer_norm(E, E.shape[1:])
    return dict(n_prompts=len(E), dim=E.shape[1], norm_mean=float(E.norm(dim=1).mean()), entry_std=float(E.std(1).mean()),
                cosine=cos(E), cosine_layernorm=cos(Z), layernorm_norm_mean=float(Z.norm(dim=1).mean()))


def gains_section(cg: dict) -> list[str]:
    "The structure and style gains of the last validation record of each model, per t band."
    cg = {k: v for k, v in cg.items() if v}
    if not cg: return []
    L = ['## Does the model use its conditions? (validation gains over training)', '',
         'On fixed validation crops with fixed noise and t (`hsmad.diffusion.condition_gains`, EMA weights): structure gain'
         ' = loss with the null structure minus loss with the real one; style gain = the same for the style. Last'
         ' record of each run (the curves over training are in `figures/demo_gains.png`):', '']
    bands = sorted({k.split('/')[-1] for v in cg.values() for k in v[-1] if k.startswith('val/gain_H/')}, key=lambda b: int(b[1:].split('-')[0]))
    L += ['| model | step | loss | ' + ' | '.join(f'structure gain {b}' for b in bands) + ' | ' + ' | '.join(f'style gain {b}' for b in bands) + ' |',
          '|---' * (3 + 2 * len(bands)) + '|']
    for k, v in cg.items():
        r = v[-1]
        L.append(f"| {k} | {r['step']} | {fmt(r.get('val/loss'), 4)} | " + ' | '.join(fmt(r.get(f'val/gain_H/{b}'), 4) for b in bands)
                 + ' | ' + ' | '.join(fmt(r.get(f'val/gain_S/{b}'), 4) for b in bands) + ' |')
    return L + ['']


def paired_section(h: dict, g: dict, res: dict, title: str) -> tuple[list[str], dict]:
    "HS-MAD vs Baseline-Global paired over the same clips: per-clip F1 difference, pooled F1 and TAE differences."
    d = paired_difference([c['f1'] for c in h['clips']], [c['f1'] for c in g['clips']])
    verdict = ('HS-MAD is above Baseline-Global (the interval excludes 0)' if d['ci95'][0] > 0 else
               'Baseline-Global is above HS-MAD (the interval excludes 0)' if d['ci95'][1] < 0 else
               'no clear difference at this budget (the interval contains 0)')
    L = [f'## {title}', '',
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
    return L, dict(paired_f1_difference=d, verdict=verdict, paired_pooled=pooled)


def rows_table(rows: list[dict]) -> list[str]:
    L = ['| row | kind | clips | matched onsets | note F1 | precision | recall | TAE (ms) | FAD | style adherence |',
         '|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        why = (r.get('not_measurable') or {}).get('tae_s')
        L.append(f"| {r['row']} | {r['kind']} | {r.get('n_clips')} | {r.get('n_matched')} | {fmt_ci(r.get('f1'), r.get('f1_ci95'))} | "
                 f"{fmt(r.get('precision'))} | {fmt(r.get('recall'))} | {fmt_ci(r.get('tae_s'), r.get('tae_s_ci95'), 1, 1000, why)} | "
                 f"{fmt_ci(r.get('fad'), r.get('fad_ci95'), 2)} | {fmt_ci(r.get('style_adherence'), r.get('style_adherence_ci95'), 2)} |")
    return L + ['']


def heldout_section(res: dict) -> tuple[list[str], dict]:
    "The same measures on works the mini dataset never uses, and the paired comparison there."
    held = res.get('heldout')
    if not held: return [], {}
    from hsmad.data.mini import HELDOUT_WORKS
    rows = held['ceiling_rows'] + [r for r in held['model_rows'] if r.get('status') in (None, 'ok')]
    L = ['## Held-out works (never in the mini dataset)', '',
         f"{held['n_clips']} clips of {res['clip_seconds']} s from works no mini build uses ({', '.join(f'`{w}`' for w in HELDOUT_WORKS)};"
         f" `{held['data_root']}`), rendered like mini, scored with the same measures and the same style classifier.", ''] + rows_table(rows)
    by = {r['row']: r for r in rows}
    if by.get('HS-MAD') and by.get('Baseline-Global'):
        P, out = paired_section(by['HS-MAD'], by['Baseline-Global'], res, 'HS-MAD vs Baseline-Global on the held-out works, paired')
        return L + P, dict(heldout=out)
    return L, {}


def report(results: Path, runs: Path, figures: Path, wall_s: float | None, trained_before: bool = False) -> str:
    res = json.loads((results / 'demo.json').read_text())
    rows = res['ceiling_rows'] + [r for r in res['model_rows'] if r.get('status') in (None, 'ok')]
    by = {r['row']: r for r in rows}
    h, g = by.get('HS-MAD'), by.get('Baseline-Global')
    tr = {v: training_summary(runs / v) for v in ('hsmad', 'global')}
    L = ['# HS-MAD demo report', '',
         f"`make demo`: mini dataset (`{res['data_root']}`), preset `{res.get('preset', 'tiny')}`, CPU only"
         + (f", {wall_s / 60:.1f} min wall time" if wall_s else '') + f" on {os.cpu_count()} cores ({platform.machine()})"
         + ("; both runs were already trained by an earlier `make demo` (their folders held the last checkpoint), so this"
            " wall time is generation, evaluation and figures only (training: the table at the end)" if trained_before else '') + '.', '',
         '## Setting of every number below', '',
         f"- **Models:** HS-MAD and Baseline-Global, preset `{res.get('preset')}`, {res.get('train_steps')} training steps each"
         f" (batch {tr['hsmad'].get('batch_size')}, codec `{res['codec']}`, crops of {tr['hsmad'].get('clip_seconds')} s), seed {res['seed']}; "
         f"EMA weights.",
         f"- **Generation:** {res['n_clips']} clip{'s' if res['n_clips'] != 1 else ''} of {res['clip_seconds']} s from the `{res['split']}` split, each with its own MIDI"
         f" crop and style prompt; DPM++ with {res['steps']} steps, w_H = {res['w_H']}, w_S = {res['w_S']}, {res.get('cfg_form') or 'additive'} guidance ({FORMS.get(res.get('cfg_form') or 'additive', '')})"
         + clamp_note(res) + ".",
         f"- **Note metrics:** transcriber `{res['transcriber']}`; onset-only note F1 with a 50 ms tolerance (mir_eval), pooled over"
         f" clips; TAE = RMS onset error of matched notes.",
         f"- **FAD:** embedder `{res['embedder']}` (an offline stand-in for VGGish/CLAP; compare FADs only within this table).",
         f"- **Style adherence:** `{res['style_measure']}`"
         + (" (a small classifier trained on the mini training audio: how often it recognises the prompted ensemble;"
            " an offline substitute for the CLAP score, named as such)" if res['style_measure'] == 'ensemble-classifier-accuracy' else '') + '.',
         '', '## Results', '',
         'Each number with its 95 % interval over the clips (bootstrap 95 %; FAD: delete-one jackknife); a TAE from fewer than'
         ' 20 matched onsets is not measurable.', '',
] + rows_table(rows)
    if h and g and h.get('clips') and g.get('clips'):
        P, res_out = paired_section(h, g, res, 'HS-MAD vs Baseline-Global, paired over the same clips')
        L += P
    else: res_out = {}
    Hd, held_out = heldout_section(res)
    L += Hd; res_out.update(held_out)
    L += style_sections(res)
    cg = {name: validation_records(runs / v) for v, name in (('hsmad', 'HS-MAD'), ('global', 'Baseline-Global'))}
    gp = gains_figure(cg, figures / 'demo_gains.png', f"preset {res.get('preset')}, {res.get('train_steps')} steps")
    L += gains_section(cg)
    sp = prompt_spread(runs / 'hsmad')
    if sp:
        L += ['**The prompts\' embeddings** (the HS-MAD run\'s `style_table.pt`): '
              f"{sp['n_prompts']} prompts, {sp['dim']}-d, norm {sp['norm_mean']:.2f} (entries of std {sp['entry_std']:.3f}); pairwise cosine"
              f" similarity mean {sp['cosine']['mean']:.2f} (max {sp['cosine']['max']:.2f}); after the LayerNorm the style path applies"
              f" (`style_norm`), norm {sp['layernorm_norm_mean']:.1f} and cosine mean {sp['cosine_layernorm']['mean']:.2f}"
              f" (max {sp['cosine_layernorm']['max']:.2f}).", '']
    if gp: L += [f'![structure and style gains over training]({os.path.relpath(gp, results)})', '']
    L += ['## Training', '', '| model | steps | steps/s | final diffusion loss (mean of last 10 logs) |', '|---|---|---|---|']
    for v, name in (('hsmad', 'HS-MAD'), ('global', 'Baseline-Global')):
        t = tr[v]
        L.append(f"| {name} | {t.get('steps')} | {fmt(t.get('steps_per_s'), 2)} | {fmt(t.get('ldm_last10'), 4)} |")
    figs = json.loads((results / 'figures.json').read_text())['figures'] if (results / 'figures.json').is_file() else []
    L += ['', '## Figures', ''] + [f"- `{f['figure']}` (from `{f['source']}`)" for f in figs]
    if gp: L.append(f"- `{gp}` (from the runs' `metrics.jsonl` validation records; also in `results/demo_summary.json`)")
    L += ['', 'Files: `results/demo.json` (every row, per-clip scores), `results/demo.csv`, the executed notebook `executed/demo.ipynb`,'
          ' training logs in the run folders. A demo-scale model is far from converged: read the rows as a check that the'
          ' whole chain runs and that the symbolic conditioning is used, not as the paper\'s numbers.', '']
    from hsmad.io import atomic_write_json
    atomic_write_json(results / 'demo_summary.json', dict(training=tr, wall_s=wall_s, trained_before=trained_before, condition_gains=cg, prompt_spread=sp, **res_out), indent=1)
    return '\n'.join(L)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--results', default='results'); ap.add_argument('--runs', default='runs/demo')
    ap.add_argument('--figures', default='figures'); ap.add_argument('--wall-s', type=float, default=None)
    ap.add_argument('--trained-before', action='store_true', help='the runs were trained by an earlier invocation')
    a = ap.parse_args(argv)
    results = Path(a.results)
    if not (results / 'demo.json').is_file():
        print(f"no {results / 'demo.json'}: run `make demo` first", file=sys.stderr); return 1
    md = report(results, Path(a.runs), Path(a.figures), a.wall_s, a.trained_before)
    from hsmad.io import atomic_write
    atomic_write(results / "demo_report.md", md)
    return 0


if __name__ == '__main__':
    sys.exit(main())
