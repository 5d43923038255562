"""experiments/listening.ipynb through papermill on simulated databases with known answers, and the MUSHRA box plot
that experiments/figures.ipynb draws from what it wrote."""
import ast, csv, json, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXP = ROOT / 'experiments'
TRUTH = {'reference': 100.0, 'HS-MAD': 70.0, 'Baseline-Global': 60.0, 'Baseline-Flat': 40.0, 'anchor70': 45.0, 'anchor35': 20.0}


def execute(nb, out, **params):
    import papermill as pm
    from jupyter_client.kernelspec import KernelSpecManager
    if 'python3' not in KernelSpecManager().find_kernel_specs():
        from ipykernel.kernelspec import install
        install(kernel_name='python3', prefix=sys.prefix)
    pm.execute_notebook(str(EXP / f'{nb}.ipynb'), str(out / f'{nb}.out.ipynb'), kernel_name='python3', cwd=str(ROOT),
                        progress_bar=False, parameters=params)


@pytest.fixture(scope='module')
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp('listening')
    execute('listening', out, db=str(out / 'sim.sqlite'), simulate_assessors=12, simulate_bad=2, simulate_trials=6,
            simulate_means=TRUTH, simulate_sd=0.0, simulate_assessor_sd=0.0, simulate_seed=3, out_dir=str(out / 'results'))
    return out


def test_parameters_cell_is_literals():
    import nbformat
    cells = [c for c in nbformat.read(str(EXP / 'listening.ipynb'), as_version=4).cells if 'parameters' in c.metadata.get('tags', [])]
    assert len(cells) == 1
    p = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cells[0].source).body}
    assert p['simulate_assessors'] == 0 and p['out_dir'] == 'results' and p['name'] == 'mushra'
    assert (p['ref_below'], p['anchor_above'], p['max_fraction']) == (90.0, 90.0, 0.15)   # BS.1534-3's rule by default


def test_known_answers(results):
    "Noise-free good assessors: the two bad ones and only they are excluded, the means are the true ones, the paired tests exact."
    r = json.loads((results / 'results' / 'mushra.json').read_text())
    assert r['simulated'] is True and r['simulation']['means'] == TRUTH
    assert sorted(e['participant'] for e in r['excluded']) == ['deaf01', 'lenient01']
    assert (r['n_assessors'], r['n_kept'], r['n_trials']) == (12, 10, 6)
    for row in r['conditions']:
        assert row['mean'] == TRUTH[row['condition']] and row['ci95'] == [row['mean']] * 2, row
        assert (row['n_assessors'], row['n_ratings']) == (10, 60)
        assert len(r['ratings'][row['condition']]) == 60
    comps = {c['baseline']: c for c in r['comparisons']}
    assert sorted(comps) == ['Baseline-Flat', 'Baseline-Global']
    for b, c in comps.items():
        assert (c['n_assessors'], c['wins'], c['mean_difference']) == (10, 10, TRUTH['HS-MAD'] - TRUTH[b]), c
        assert c['p'] == pytest.approx(2 / 2 ** 10) and c['p_holm'] == pytest.approx(2 * 2 / 2 ** 10)   # exact signed-rank
    rows = list(csv.DictReader(open(results / 'results' / 'mushra.csv')))
    assert [x['condition'] for x in rows] == list(TRUTH) and {x['simulated'] for x in rows} == {'True'}


def test_mushra_figure(results, tmp_path):
    "figures.ipynb draws figures/mushra.png from results/mushra.json and lists it in its manifest."
    execute('figures', tmp_path, results_dir=str(results / 'results'), figures_dir=str(tmp_path / 'figures'))
    man = json.loads((results / 'results' / 'figures.json').read_text())
    assert [(Path(d['figure']).name, Path(d['source']).name) for d in man['figures']] == [('mushra.png', 'mushra.json')]
    assert man['figures'][0]['rows'] == ['reference', 'HS-MAD', 'Baseline-Global', 'Baseline-Flat', 'anchor70', 'anchor35']
    assert (tmp_path / 'figures' / 'mushra.png').stat().st_size > 5000
