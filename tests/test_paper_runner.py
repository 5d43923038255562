"""The runner behind `make paper`: `experiments.params.train_missing` trains the missing variants two at a time as
`python -m hsmad.train` subprocesses (2 steps of the smoke widths on the smoke mini data), leaves finished runs alone,
stops the others and raises with the end of the log when one fails; the progress line and the wall-time estimate
read the runs' own files."""
import json, os, re, sys, tempfile, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))                       # experiments.params, as the notebooks import it
from experiments.params import (JOB_START_S, SMOKE_SETS, _makespan, paper_estimate, progress_line, run_step, smoke_data, train_args,
                                train_missing)

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason='reads /proc')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    "The notebooks' smoke mini data, built under pytest's temporary folder."
    old, tempfile.tempdir = tempfile.tempdir, str(tmp_path_factory.mktemp('smoke'))
    try: yield smoke_data('runner')
    finally: tempfile.tempdir = old


@pytest.fixture
def one_thread(monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '1'); monkeypatch.setenv('MKL_NUM_THREADS', '1')
    monkeypatch.setenv('OMP_WAIT_POLICY', 'PASSIVE')


def _train(data_root, runs_dir, variants, steps=2, sets=(), **kw):
    return train_missing({}, variants, runs_dir, jobs=2, dataset='mini', data_root=str(data_root), preset='tiny', steps=steps,
                         batch_size=2, sets=SMOKE_SETS + list(sets), log_every=1, **kw)


def _processes_using(path) -> list[int]:
    "Ids of the live processes whose command line names `path`."
    pids = []
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try: cmd = (d / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError: continue
        if str(path) in cmd: pids.append(int(d.name))
    return pids


def _launch_time(log: Path) -> float:
    "When train_missing started the process of a run (the header line it writes into train.log)."
    stamp = re.search(r'^# (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) ', log.read_text(), re.M).group(1)
    return time.mktime(time.strptime(stamp, '%Y-%m-%d %H:%M:%S'))


def test_two_at_a_time_then_nothing_to_do(data_root, tmp_path, one_thread, capsys):
    runs_dir = tmp_path / 'runs'
    runs = _train(data_root, runs_dir, ['hsmad', 'global'])
    assert runs == {'hsmad': str(runs_dir / 'hsmad'), 'global': str(runs_dir / 'global')}
    printed = capsys.readouterr().out
    for v in ('hsmad', 'global'):
        run = runs_dir / v
        assert run_step(run) == 2, sorted(os.listdir(run))
        log = (run / 'train.log').read_text()
        assert '-m hsmad.train' in log and f'--variant {v}' in log and 'OMP_NUM_THREADS=1 ' in log   # a subprocess, one thread
        assert json.loads(log.strip().splitlines()[-1])['step'] == 2                                 # hsmad train's last record
        assert f'training {v} from step 0 to 2' in printed and f'{v} trained to step 2' in printed
    # both were started before either finished: side by side, not one after the other
    assert abs(_launch_time(runs_dir / 'hsmad' / 'train.log') - _launch_time(runs_dir / 'global' / 'train.log')) <= 1

    before = {p: p.stat().st_mtime_ns for p in runs_dir.rglob('*')}
    t0 = time.time()
    assert _train(data_root, runs_dir, ['hsmad', 'global']) == runs
    assert time.time() - t0 < 5                                                       # no process started
    assert {p: p.stat().st_mtime_ns for p in runs_dir.rglob('*')} == before           # nothing written, logs included
    assert 'training' not in capsys.readouterr().out


def test_one_at_a_time_in_this_process(data_root, tmp_path, one_thread, capsys):
    "jobs=1 (the default): trained here, as before; then left alone like any finished run."
    runs_dir = tmp_path / 'runs'
    kw = dict(dataset='mini', data_root=str(data_root), preset='tiny', steps=2, batch_size=2, sets=SMOKE_SETS, log_every=1)
    assert train_missing({'global': 'elsewhere'}, ['hsmad', 'global'], runs_dir, **kw) == {'hsmad': str(runs_dir / 'hsmad'), 'global': 'elsewhere'}
    assert run_step(runs_dir / 'hsmad') == 2 and not (runs_dir / 'hsmad' / 'train.log').exists() and not (runs_dir / 'global').exists()
    assert 'training hsmad from step 0 to 2 in this process' in capsys.readouterr().out
    train_missing({}, ['hsmad'], runs_dir, **kw)
    assert 'training' not in capsys.readouterr().out


def test_a_failing_variant_stops_the_others(data_root, tmp_path, one_thread):
    runs_dir = tmp_path / 'runs'
    broken = runs_dir / 'flat' / 'checkpoints' / 'step_00000001'     # a partial run (step 1) whose checkpoint is unreadable
    broken.mkdir(parents=True)
    (broken / 'model.safetensors').write_bytes(b'not a checkpoint')
    t0 = time.time()
    with pytest.raises(RuntimeError, match=r"training flat failed \(exit \d+\); the end of .*flat/train\.log") as e:
        _train(data_root, runs_dir, ['hsmad', 'flat'], steps=100000)  # hsmad would train for hours: it has to be stopped
    assert time.time() - t0 < 90
    log = (runs_dir / 'flat' / 'train.log').read_text()
    assert '--resume' in log                                          # a partial run is resumed, not retrained
    tail = log.strip().splitlines()[-1]
    assert tail and tail in str(e.value)                              # the error shows the end of the failing run's log
    assert _processes_using(runs_dir / 'hsmad') == []                 # the other one was stopped
    assert run_step(runs_dir / 'hsmad') < 100000


def test_jobs_checked():
    with pytest.raises(ValueError, match='with gpus > 0 use jobs=1'):
        train_missing({}, ['hsmad'], 'runs', jobs=2, gpus=1, dataset='mini', data_root='x')
    with pytest.raises(ValueError, match='at least 1'):
        train_missing({}, ['hsmad'], 'runs', jobs=0, dataset='mini', data_root='x')


def test_train_args(tmp_path):
    a = train_args('flat', dataset='mini', data_root='d', out=tmp_path / 'flat')
    assert '--resume' not in a and '--ckpt-every' not in a and '--keep-last' not in a      # hsmad train's own defaults
    (tmp_path / 'flat' / 'checkpoints').mkdir(parents=True)
    a = train_args('flat', dataset='mini', data_root='d', out=tmp_path / 'flat', ckpt_every=100, keep_last=0)
    assert '--resume' in a and a[a.index('--ckpt-every') + 1] == '100' and a[a.index('--keep-last') + 1] == '0'


def _metrics(run: Path, records):
    run.mkdir(parents=True, exist_ok=True)
    (run / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in records))


def test_progress_line(tmp_path):
    run = tmp_path / 'no_scm'
    assert progress_line('ablations', 'no_scm', run, 3000) == '[paper] ablations: no_scm starting (no step logged yet)'
    _metrics(run, [dict(step=1150, steps_per_s=2.0), dict(step=1200, steps_per_s=2.4)])
    with open(run / 'metrics.jsonl', 'a') as f: f.write('{"step": 12')                  # a record being written
    assert progress_line('ablations', 'no_scm', run, 3000) == '[paper] ablations: no_scm step 1200/3000, 2.40 steps/s, ~12 min left'


def test_estimate(tmp_path):
    assert _makespan([3, 3, 2, 2, 2], 2) == 7 and _makespan([5, 1], 1) == 6 and _makespan([4, 1, 1], 2) == 4
    assert _makespan([1, 1, 4], 2) == 5                                                     # in the order given
    runs = tmp_path / 'runs'
    _metrics(runs / 'baselines' / 'hsmad', [dict(step=50, steps_per_s=2.0)] * 3)           # measured, no checkpoint yet
    e = paper_estimate(runs, steps=100, jobs=2, stages=['baselines', 'ablations', 'control'], max_clips=2, sampler_steps=25)
    base, abl, ctl = e['stages']
    assert e['rates'] == {'hsmad': 2.0}
    assert base['variants'] == ['hsmad', 'global', 'flat', 'musicgen'] and base['steps_left'] == 400
    # four runs of 50 s (the measured rate stands in for the others) and their start, two at a time; then 7 of them
    assert base['train_s'] == pytest.approx(2 * (JOB_START_S + 50))
    assert 'hsmad' not in abl['variants'] and len(abl['variants']) == 7 and abl['train_s'] == pytest.approx(4 * (JOB_START_S + 50))
    assert ctl['variants'] == [] and ctl['train_s'] == 0 and ctl['models'] == 6 + 16       # prompts + the (w_H, w_S) grid
    assert e['seconds'] == pytest.approx(sum(r['train_s'] + r['eval_s'] for r in e['stages']))
    ck = runs / 'baselines' / 'hsmad' / 'checkpoints' / 'step_00000100'
    ck.mkdir(parents=True)
    assert paper_estimate(runs, 100, 2, ['baselines'], max_clips=2)['stages'][0]['steps_left'] == 300    # a finished run
