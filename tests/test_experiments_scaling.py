"""experiments/scaling.ipynb through papermill: in smoke mode (two micro widths trained for 2 steps by the notebook,
checkpoints 1 and 2, three 2 s validation clips) it writes one row per (width, checkpoint step) with the model's size and
training compute, the ceiling rows, a conclusion computed from the rows, and the figure; a scored step without a
checkpoint stops it (outside smoke mode) with a message naming the run and the step, before anything is written."""
import ast, csv, json, math, os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / 'experiments' / 'scaling.ipynb'
WIDTHS = ['micro', 'micro-half']          # the notebook's smoke widths, in order


@pytest.fixture(scope='module')
def outdir(tmp_path_factory): return tmp_path_factory.mktemp('scaling')


def _execute(kernel, outdir, **params):
    "The notebook on one thread, temporary files under outdir; `params` as papermill parameters."
    import papermill as pm
    keep = {k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OMP_WAIT_POLICY', 'TMPDIR')}
    os.environ.update(OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', OMP_WAIT_POLICY='PASSIVE', TMPDIR=str(outdir))   # the kernel inherits them
    try:
        pm.execute_notebook(str(NB), str(outdir / 'scaling.out.ipynb'), kernel_name=kernel, cwd=str(ROOT), progress_bar=False,
                            parameters=params)
    finally:
        for k, v in keep.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


@pytest.fixture(scope='module')
def smoke(kernel, outdir):
    _execute(kernel, outdir, smoke=True, out_dir=str(outdir / 'results'), figures_dir=str(outdir / 'figures'))
    return json.loads((outdir / 'results' / 'scaling.json').read_text())


def test_scaling_is_a_thin_driver():
    "One `parameters` cell of literals (smoke off, the validation split); no functions, path hacks or private imports."
    cells = [c for c in json.loads(NB.read_text())['cells'] if c['cell_type'] == 'code']
    par = [c for c in cells if 'parameters' in c['metadata'].get('tags', [])]
    assert len(par) == 1
    p = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(''.join(par[0]['source'])).body}
    assert p['smoke'] is False and p['split'] == 'validation' and p['runs'] == {} and p['variant'] == 'hsmad'
    assert (p['out_dir'], p['figures_dir'], p['name']) == ('results', 'figures', 'scaling')
    st = p['checkpoint_steps']
    assert len(st) >= 4 and st[-1] >= 4 * st[0] and len(p['widths']) >= 2         # >= 4 points over >= 4x, >= 2 widths
    code = '\n'.join(''.join(c['source']) for c in cells)
    assert 'sys.path' not in code
    for node in ast.walk(ast.parse(code)):
        assert not isinstance(node, (ast.FunctionDef, ast.ClassDef)), node.name
        if isinstance(node, ast.ImportFrom): assert not any(a.name.startswith('_') for a in node.names), ast.dump(node)


def _within(v, ci): return ci is not None and ci[0] - 1e-9 <= v <= ci[1] + 1e-9


def test_smoke_rows(smoke):
    "One row per (width, step), read from that step's checkpoint; size and compute from the checkpoint; ceiling rows heard."
    from hsmad.checkpoint import load_pretrained
    res = smoke
    assert res['smoke'] is True and res['split'] == 'validation' and res['n_clips'] == 3 and res['missing'] == []
    assert res['checkpoint_steps'] == [1, 2] and res['config_differences'] == {}
    rows = res['model_rows']
    assert [(r['width'], r['train_step']) for r in rows] == [(w, s) for w in WIDTHS for s in (1, 2)]
    for r in rows:
        s = r['train_step']
        assert r['row'] == f"{r['width']} @ {s}" and Path(r['run']).name == f'step_{s:08d}' and r['status'] == 'ok'
        pre = load_pretrained(r['run'])                                          # the parameter count, counted another way
        assert pre.step == s and r['params'] == sum(p.numel() for p in pre.model.parameters())
        info = res['runs_info'][r['width']]
        assert r['train_samples'] == s * info['batch_size'] == 2 * s
        assert info['flops_per_sample'] > 0 and math.isclose(r['train_flops'], r['train_samples'] * info['flops_per_sample'])
        assert r['schedule_steps'] == 2 and (r['w_H'], r['w_S'], r['steps']) == (2.0, 2.0, 2)
        for k in ('precision', 'recall', 'f1'): assert 0 <= r[k] <= 1 and _within(r[k], r[f'{k}_ci95']), (r['row'], k)
        assert r['style_measure'] == 'ensemble-classifier-accuracy' and _within(r['style_adherence'], r['style_adherence_ci95'])
        assert (r['tae_s'] is None) == ('tae_s' in r['not_measurable']) and len(r['clips']) == 3
    p = {w: res['runs_info'][w]['params'] for w in WIDTHS}
    assert p['micro-half'] < p['micro'] and res['runs_info']['micro-half']['size']['c_high'] == 8
    assert res['runs_info']['micro-half']['flops_per_sample'] < res['runs_info']['micro']['flops_per_sample']
    gt, rt = res['ceiling_rows']
    assert (gt['row'], rt['row']) == ('ground truth', 'codec round trip (stft)') and gt['kind'] == rt['kind'] == 'ceiling'
    assert gt['n_ref'] > 0 and gt['f1'] > 0.2                                    # the transcriber hears the validation clips
    assert set(res['trained_here_s']) == set(WIDTHS)


def test_smoke_conclusion_is_computed(smoke):
    "The conclusion quotes the rows' own numbers: the change over the last doubling per width and the width effect."
    res = smoke
    by = {(r['width'], r['train_step']): r for r in res['model_rows']}
    for w in WIDTHS:
        t = res['trend'][w]
        assert (t['from_step'], t['to_step'], t['doublings']) == (1, 2, 1.0)
        assert t['f1']['difference'] == pytest.approx(by[(w, 2)]['f1'] - by[(w, 1)]['f1'])
        assert _within(t['f1']['difference'], t['f1']['ci95']) and t['verdict'] in ('still climbing', 'falling', 'flat within its interval')
        assert f"**{w}**" in res['conclusion'] and f"{t['f1']['difference']:+.3f}" in res['conclusion']
    we = res['width_effect']
    assert (we['step'], we['wide'], we['narrow']) == (2, 'micro', 'micro-half')
    assert we['f1']['difference'] == pytest.approx(by[('micro', 2)]['f1'] - by[('micro-half', 2)]['f1'])
    assert we['params_ratio'] == pytest.approx(res['runs_info']['micro']['params'] / res['runs_info']['micro-half']['params'])


def test_smoke_files(smoke, outdir):
    "The CSV holds the same rows with the size and compute columns; the figure is drawn."
    with open(outdir / 'results' / 'scaling.csv', newline='') as f: rows = list(csv.DictReader(f))
    want = smoke['ceiling_rows'] + smoke['model_rows']
    assert [r['row'] for r in rows] == [r['row'] for r in want]
    for r, j in zip(rows[2:], smoke['model_rows']):
        assert (r['width'], int(r['train_step']), int(r['params'])) == (j['width'], j['train_step'], j['params'])
        assert math.isclose(float(r['f1']), j['f1']) and math.isclose(float(r['train_flops']), j['train_flops'])
    assert (outdir / 'figures' / 'scaling.png').stat().st_size > 5000


def test_missing_checkpoint_names_run_and_step(kernel, smoke, outdir, tmp_path):
    "Outside smoke mode a step the run does not have is an error naming the run and the step, before anything is written."
    import papermill as pm
    run = Path(smoke['runs']['micro'])
    with pytest.raises(pm.PapermillExecutionError) as e:
        _execute(kernel, tmp_path, data_root=smoke['data_root'], runs={'small': str(run)}, widths={}, checkpoint_steps=[1, 3],
                 out_dir=str(tmp_path / 'results'), figures_dir=str(tmp_path / 'figures'))
    msg = str(e.value)
    assert "run 'small'" in msg and 'no checkpoint at step 3' in msg and str(run) in msg and 'no checkpoint at step 1' not in msg
    assert not (tmp_path / 'results' / 'scaling.json').exists() and not (tmp_path / 'figures').exists()
