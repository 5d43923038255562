"""The command-line contract of `hsmad.errors`, case by case, for every `hsmad` command.

Each case runs one command (in this process through `hsmad.cli.main`; in a subprocess only where the contract needs
one: Ctrl-C, papermill) in a fresh copy of a small world of files, and asserts

- the exit status: 0 success, 1 the run failed, 2 bad arguments or input, 130 interrupted;
- the message: a failure is ONE line on stderr (`hsmad COMMAND: error: ...`) that contains the expected text, and
  no traceback (tracebacks only with --verbose);
- that nothing already on disk was lost or changed (every file of the world keeps its bytes, except the ones the
  case is meant to write) and that no half-written file (`.tmp-*`, `.trash-*`) is left anywhere.
"""
from __future__ import annotations
import hashlib, json, math, os, shutil, signal, subprocess, sys, time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import torch

from hsmad.checkpoint import checkpoints, load_pretrained, save_checkpoint
from hsmad.cli import main
from hsmad.generate import window_plan
from hsmad.io import atomic_write_json
from hsmad.midi import Notes
from hsmad.model import HSMAD
from hsmad.testing import micro_train_config, write_style_table, write_test_cache

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'HF_HUB_OFFLINE': '1',
       'TRANSFORMERS_OFFLINE': '1', 'MPLBACKEND': 'Agg'}
CUDA = torch.cuda.is_available()


def micro_sets(**overrides) -> list[str]:
    "`--set` arguments that make `hsmad train` use the micro test config (on the 4-channel synthetic cache)."
    cfg = micro_train_config(**overrides)
    return ['--set', *[f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]]


TRAIN = ['--device', 'cpu', '--no-progress', '--no-tensorboard', '--batch-size', '4', '--log-every', '1']


# ---------------------------------------------------------------------------------------------------------- the world
def _generate_checkpoint(run: Path, mean: float, std: float, cfg=None, weights_cfg=None) -> Path:
    "A micro model on the stft codec's 513 channels; `mean`/`std` set the level of the decoded audio."
    cfg = cfg or micro_train_config(latent_channels=513)
    torch.manual_seed(0)
    sd = HSMAD(weights_cfg or cfg).state_dict()
    g = torch.Generator().manual_seed(0)
    return save_checkpoint(run, 1, {
        'model.safetensors': sd, 'config.json': cfg.to_dict(),
        'latent_stats.json': dict(mean=[mean] * 513, std=[std] * 513, min=[-6.9] * 513, max=[10.0] * 513, codec=dict(codec='stft', sample_rate=16000, hop=256, channels=513)),
        'style.json': dict(name='minilm', style_dim=cfg.style_dim),
        'style_table.pt': {'test style': torch.nn.functional.normalize(torch.randn(cfg.style_dim, generator=g), dim=0)}})


@pytest.fixture(scope='module')
def template(tmp_path_factory) -> Path:
    "The world every case starts from (copied per case)."
    w = tmp_path_factory.mktemp('world')
    Notes.from_arrays([60, 64, 67], [0.0, 0.8, 1.5], [0.7, 1.6, 2.3], [90, 80, 100]).write(w / 'piece.mid')
    k = np.arange(120)
    Notes.from_arrays(48 + k % 24, 0.5 * k, 0.5 * k + 0.45, np.full(120, 90)).write(w / 'long.mid')      # 60 s
    pretty_midi.PrettyMIDI().write(str(w / 'empty.mid'))
    (w / 'bad.mid').write_bytes(b'MThd\x00\x00\x00\x06garbage')
    (w / 'file.txt').write_text('a file, not a folder')
    (w / 'not_audio.wav').write_text('not audio')
    sf.write(w / 'old.wav', np.full(1600, 0.25, np.float32), 16000)          # an earlier result that must survive
    (w / 'folder').mkdir(); (w / 'folder' / 'keep.txt').write_text('x')
    (w / 'mini').mkdir()
    atomic_write_json(w / 'mini' / 'mini.json', dict(dataset='mini', layout='slakh2100', tracks=4, seed=3, sample_rate=16000,
                                                     max_seconds=5.0, built=4))
    (w / 'halfcache').mkdir(); atomic_write_json(w / 'halfcache' / 'cache.json', dict(dataset='mini', codec='stft'))
    (w / 'clf.safetensors').write_bytes(b'not a classifier')
    write_test_cache(w / 'cache')
    # a run killed after logging step 6 but before checkpoint 6: newest checkpoint step 4, metrics.jsonl up to 6
    from hsmad.train import Trainer, TrainSettings
    write_style_table(w / 'run', ['test style'], 12)
    Trainer(micro_train_config(steps=6), TrainSettings(out=str(w / 'run'), cache=str(w / 'cache'), ckpt_every=4, log_every=1,
                                                       device='cpu', progress=False, tensorboard=False)).fit()
    shutil.rmtree(w / 'run' / 'checkpoints' / 'step_00000006')
    # checkpoints for generate: loud, NaN, truncated, of other widths, with a broken config.json
    _generate_checkpoint(w / 'gen', 3.0, 0.5)
    _generate_checkpoint(w / 'gen_nan', 0.0, float('nan'))
    t = _generate_checkpoint(w / 'gen_trunc', 3.0, 0.5) / 'model.safetensors'
    t.write_bytes(t.read_bytes()[: t.stat().st_size // 2])
    _generate_checkpoint(w / 'gen_wide', 3.0, 0.5, weights_cfg=micro_train_config(latent_channels=513, c_high=24))
    (_generate_checkpoint(w / 'gen_badcfg', 3.0, 0.5) / 'config.json').write_text('{"name": "micro", ')
    return w


def snapshot(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*')) if p.is_file()}


def run_inprocess(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


# ---------------------------------------------------------------------------------------------------------- the table
@dataclass
class Case:
    id: str
    argv: list                      # '{w}' is the world folder of the case
    code: int                       # expected exit status
    msg: str = ''                   # expected in the one line on stderr (failures) or in stderr (successes)
    changes: tuple = ()             # world paths (prefixes) the case may write or replace
    check: Callable | None = None   # check(world, template, stdout, stderr) for what the case wrote
    skip: str | None = None


def _check_loud(w: Path, template: Path, out: str, err: str):
    r = json.loads(out)
    y, sr = sf.read(str(w / 'old.wav'))
    assert (sr, len(y)) == (16000, round(2.3 * 16000)) and r['windows'] == 6
    assert r['peak_in'] > 1 and r['gain_db'] < 0 and 0.5 < np.abs(y).max() <= 0.99 + 1e-4, r       # scaled, not clipped
    assert 'scaled by' in err and 'Traceback' not in err


def _check_resume(w: Path, template: Path, out: str, err: str):
    old = (template / 'run' / 'metrics.jsonl').read_text().splitlines()
    new = [l for l in (w / 'run' / 'metrics.jsonl').read_text().splitlines()]
    rewound = (w / 'run' / 'metrics.rewound.jsonl').read_text().splitlines()
    assert new[:4] == old[:4] and [json.loads(l)['step'] for l in new] == [1, 2, 3, 4, 5, 6]
    assert rewound == old[4:] and set(old) <= set(new) | set(rewound)          # no record lost
    assert [c.name for c in checkpoints(w / 'run')] == ['step_00000004', 'step_00000006']
    assert 'moved to metrics.rewound.jsonl' in err


def _check_overwrite(w: Path, template: Path, out: str, err: str):
    aside = [p for p in w.iterdir() if p.name.startswith('run.replaced-')]
    assert len(aside) == 1 and snapshot(aside[0]) == snapshot(template / 'run'), aside        # moved, byte for byte
    assert [c.name for c in checkpoints(w / 'run')] == ['step_00000001'] and load_pretrained(w / 'run').step == 1
    assert 'was moved to' in err and str(aside[0]) in err


def _check_roll(w: Path, template: Path, out: str, err: str):
    assert np.load(w / 'old.npy').shape == (384, 20) and err == ''


W = '{w}'
FR = ('--frame-rate', '50', '--frames', '10')


def roll(*extra, midi='piece.mid', out=f'{W}/r.npy'):
    return ['roll', f'{W}/{midi}', '-o', out, *extra]


def gen(*extra, midi='piece.mid', ck='gen', style='test style', out=f'{W}/g.wav'):
    return ['generate', f'{W}/{midi}', '--checkpoint', f'{W}/{ck}', '--style', style, '-o', out, *extra]


def train(*extra, out=f'{W}/r2', cache=f'{W}/cache'):
    return ['train', *(['--cache', cache] if cache else []), '--out', out, *extra]


def encode(dataset, root, *extra, out=f'{W}/c2'):
    return ['data', 'encode', '--dataset', dataset, '--data-root', f'{W}/{root}', '--out', out, '--no-progress', *extra]


NO_CUDA = 'CUDA is available' if CUDA else None
CASES = [
    # --- hsmad (the dispatcher)
    Case('main-no-command', [], 2, 'no command given'),
    Case('main-unknown-command', ['frobnicate'], 2, "unknown command 'frobnicate'"),
    Case('main-demo-renamed', ['demo'], 2, 'is now `hsmad srm-figure`'),
    # --- roll
    Case('roll-bad-midi', roll(*FR, midi='bad.mid'), 2, 'bad.mid: could not be parsed'),
    Case('roll-missing-midi', roll(*FR, midi='none.mid'), 2, 'none.mid: no such file'),
    Case('roll-frames-huge', roll('--frame-rate', '50', '--frames', '100000000'), 2, '<= 1,000,000'),
    Case('roll-duration-huge', roll('--frame-rate', '86', '--duration', '1e7'), 2, 'render shorter windows'),
    Case('roll-frame-rate-nan', roll('--frame-rate', 'nan', '--frames', '10'), 2, "--frame-rate: must be a finite number > 0, got 'nan'"),
    Case('roll-frames-zero', roll('--frame-rate', '50', '--frames', '0'), 2, '--frames: must be an integer >= 1'),
    Case('roll-offset-negative', roll(*FR, '--offset', '-1'), 2, '--offset: must be a finite number >= 0'),
    Case('roll-out-unwritable', roll(*FR, out='/proc/r.npy'), 2, 'cannot write in /proc'),
    Case('roll-out-under-a-file', roll(*FR, out=f'{W}/file.txt/r.npy'), 2, 'file.txt is a file, not a folder'),
    Case('roll-out-suffix', roll(*FR, out=f'{W}/r.wav'), 2, 'must end in .npy or .png'),
    Case('roll-out-is-a-folder', roll(*FR, out=f'{W}/folder'), 2, 'must end in .npy or .png'),
    Case('roll-ok', roll('--frame-rate', '50', '--frames', '20', out=f'{W}/old.npy'), 0, changes=('old.npy',), check=_check_roll),
    Case('roll-verbose-traceback', ['--verbose', *roll(*FR, midi='bad.mid')], 2, 'Traceback'),
    # --- srm-figure
    Case('srm-figure-out-is-a-file', ['srm-figure', '--out', f'{W}/file.txt'], 2, f'--out {W}/file.txt: is a file'),
    Case('srm-figure-work-unwritable', ['srm-figure', '--out', f'{W}/figs', '--work', '/proc/work'], 2, 'cannot write in /proc'),
    # --- info
    Case('info-seconds-negative', ['info', '--seconds', '-5'], 2, '--seconds: must be a finite number > 0'),
    Case('info-seconds-nan', ['info', '--seconds', 'nan'], 2, "got 'nan'"),
    Case('info-preset-unknown', ['info', '--preset', 'huge'], 2, "invalid choice: 'huge'"),
    # --- data
    Case('data-no-subcommand', ['data'], 2, 'the following arguments are required'),
    Case('build-mini-tracks-zero', ['data', 'build-mini', '--out', f'{W}/m2', '--tracks', '0'], 2, '--tracks: must be an integer >= 1'),
    Case('build-mini-seed-negative', ['data', 'build-mini', '--out', f'{W}/m2', '--seed', '-1'], 2, '--seed: must be an integer >= 0'),
    Case('build-mini-other-seed', ['data', 'build-mini', '--out', f'{W}/mini', '--tracks', '4', '--seed', '4', '--max-seconds', '5'], 2,
         'built with seed=3 (mini.json), not seed=4'),
    Case('build-mini-other-tracks', ['data', 'build-mini', '--out', f'{W}/mini', '--tracks', '6', '--seed', '3', '--max-seconds', '5'], 2,
         'built with tracks=4'),
    Case('build-mini-into-a-non-dataset', ['data', 'build-mini', '--out', f'{W}/folder', '--tracks', '4'], 2, "holds no mini dataset (e.g. 'keep.txt')"),
    Case('build-mini-out-is-a-file', ['data', 'build-mini', '--out', f'{W}/file.txt'], 2, 'is a file, not a folder'),
    Case('encode-mini-as-slakh', encode('slakh', 'mini'), 2, 'is the mini dataset (mini.json), not Slakh2100'),
    Case('encode-not-maestro', encode('maestro', 'folder'), 2, 'no maestro-v3.0.0.csv'),
    Case('encode-root-missing', encode('mini', 'none'), 2, f'--data-root {W}/none: no such folder'),
    Case('encode-out-unwritable', encode('mini', 'mini', out='/proc/c2'), 2, 'cannot write in /proc'),
    Case('encode-codec-path-missing', encode('mini', 'mini', '--codec', 'dac', '--codec-path', f'{W}/none.pth'), 2,
         f'--codec-path {W}/none.pth: no such file'),
    Case('check-mini-as-slakh', ['data', 'check', f'{W}/mini', '--dataset', 'slakh', '--no-progress'], 2, 'is the mini dataset (mini.json), not Slakh2100'),
    Case('check-root-missing', ['data', 'check', f'{W}/none', '--dataset', 'maestro', '--no-progress'], 2, f'ROOT {W}/none: no such folder'),
    Case('check-json-unwritable', ['data', 'check', f'{W}/folder', '--dataset', 'mini', '--no-progress', '--json', '/proc/c.json'], 2,
         'cannot write in /proc'),
    # --- listen
    Case('listen-no-subcommand', ['listen'], 2, 'the following arguments are required'),
    Case('listen-build-bad-source', ['listen', 'build', '--ref', 'gt', '--system', f'a={W}/folder', '--out', f'{W}/t'], 2, 'give a source as NAME=DIR'),
    Case('listen-build-missing-folder', ['listen', 'build', '--ref', f'gt={W}/none', '--system', f'a={W}/folder', '--out', f'{W}/t'], 2,
         f'{W}/none: no such folder'),
    Case('listen-build-out-unwritable', ['listen', 'build', '--ref', f'gt={W}/folder', '--system', f'a={W}/folder', '--out', '/proc/t'], 2,
         'cannot write in /proc'),
    Case('listen-build-lufs-nan', ['listen', 'build', '--ref', f'gt={W}/folder', '--system', f'a={W}/folder', '--out', f'{W}/t', '--lufs', 'nan'], 2,
         '--lufs: must be a finite number'),
    Case('listen-serve-port-zero', ['listen', 'serve', f'{W}/folder', '--port', '0'], 2, '--port: must be an integer'),
    Case('listen-serve-missing-test', ['listen', 'serve', f'{W}/none'], 2, f'TEST_DIR {W}/none: no such folder'),
    Case('listen-export-out-suffix', ['listen', 'export', f'{W}/folder', '--out', f'{W}/r.txt'], 2, '.csv'),
    # --- train
    Case('train-steps-zero', train('--steps', '0'), 2, '--steps: must be an integer >= 1'),
    Case('train-steps-negative', train('--steps', '-1'), 2, '--steps: must be an integer >= 1'),
    Case('train-ckpt-every-zero', train('--ckpt-every', '0'), 2, '--ckpt-every: must be an integer >= 1'),
    Case('train-set-lr-abc', train('--set', 'lr=abc'), 2, "config field lr must be a float, got 'abc'"),
    Case('train-set-unknown-field', train('--set', 'bogus=1'), 2, "unknown config field(s) ['bogus']"),
    Case('train-set-no-equals', train('--set', 'lr'), 2, '--set expects name=value'),
    Case('train-variant-unknown', train('--variant', 'nonsense'), 2, "invalid choice: 'nonsense'"),
    Case('train-dataset-vs-cache', train('--dataset', 'maestro'), 2, "holds latents of 'synthetic' (cache.json), not 'maestro'"),
    Case('train-slakh-root-is-mini', train('--dataset', 'slakh', '--data-root', f'{W}/mini', cache=None), 2,
         'is the mini dataset (mini.json), not Slakh2100'),
    Case('train-no-data', train(cache=None), 2, 'give --data-root DIR'),
    Case('train-cache-not-encoded', train('--dataset', 'mini', cache=f'{W}/halfcache'), 2, 'is not an encoded cache'),
    Case('train-out-is-a-file', train(out=f'{W}/file.txt'), 2, 'is a file, not a folder'),
    Case('train-out-unwritable', train(out='/proc/run'), 2, 'cannot write in /proc'),
    Case('train-out-holds-a-run', train(*TRAIN, out=f'{W}/run'), 2,
         'holds another run (1 checkpoint(s), newest step_00000004, 6 record(s) in metrics.jsonl); add --resume'),
    Case('train-resume-and-overwrite', train('--resume', '--overwrite', out=f'{W}/run'), 2, 'argument --overwrite: not allowed with argument --resume'),
    Case('train-device-cuda-without-cuda', train('--device', 'cuda'), 2, 'CUDA is not available here', skip=NO_CUDA),
    Case('train-device-unknown', train('--device', 'gpu'), 2, "--device 'gpu': not a device"),
    Case('train-resume-keeps-history', train('--resume', '--steps', '6', '--ckpt-every', '2', *TRAIN, *micro_sets(), out=f'{W}/run'), 0,
         changes=('run/metrics.jsonl', 'run/metrics.rewound.jsonl', 'run/checkpoints'), check=_check_resume),
    Case('train-overwrite-moves-aside', train('--overwrite', '--steps', '1', *TRAIN, *micro_sets(style_dim=384), out=f'{W}/run'), 0,
         changes=('run',), check=_check_overwrite),
    # --- generate
    Case('generate-w-h-nan', gen('--w-h', 'nan'), 2, "--w-h: must be a finite number >= 0, got 'nan'"),
    Case('generate-steps-zero', gen('--steps', '0'), 2, '--steps: must be an integer >= 1'),
    Case('generate-style-empty', gen(style='  '), 2, '--style: must not be empty'),
    Case('generate-style-10000-chars', gen(style='x' * 10000), 2, '--style: has 10,000 characters; at most 1,000'),
    Case('generate-device-cuda-without-cuda', gen('--device', 'cuda'), 2, 'CUDA is not available here', skip=NO_CUDA),
    Case('generate-out-unwritable', gen(out='/proc/g.wav'), 2, 'cannot write in /proc'),
    Case('generate-out-suffix', gen(out=f'{W}/g.mp3'), 2, 'must end in .wav'),
    Case('generate-out-is-a-folder', gen(out=f'{W}/folder'), 2, 'must end in .wav'),
    Case('generate-bad-midi', gen(midi='bad.mid'), 2, 'bad.mid: could not be parsed'),
    Case('generate-midi-without-notes', gen(midi='empty.mid'), 2, 'empty.mid: has no notes'),
    Case('generate-checkpoint-missing', gen(ck='nothing'), 2, f'--checkpoint {W}/nothing: no such file or folder'),
    Case('generate-checkpoint-not-a-run', gen(ck='folder'), 2, 'holds no checkpoint'),
    Case('generate-truncated-safetensors', gen(ck='gen_trunc'), 2, 'model.safetensors: cannot be read'),
    Case('generate-weights-of-other-widths', gen(ck='gen_wide'), 2, 'weights do not match the config'),
    Case('generate-broken-config-json', gen(ck='gen_badcfg'), 2, 'config.json: not valid JSON'),
    Case('generate-nan-audio', gen('--steps', '2', '--no-progress', ck='gen_nan', out=f'{W}/old.wav'), 1, 'non-finite samples'),
    Case('generate-loud-is-scaled-not-clipped', gen('--steps', '2', '--no-progress', out=f'{W}/old.wav'), 0, 'scaled by',
         changes=('old.wav',), check=_check_loud),
    # --- transcribe
    Case('transcribe-audio-missing', ['transcribe', f'{W}/none.wav', '-o', f'{W}/t.mid'], 2, f'AUDIO {W}/none.wav: no such file'),
    Case('transcribe-not-audio', ['transcribe', f'{W}/not_audio.wav', '-o', f'{W}/t.mid'], 2, 'not a readable audio file'),
    Case('transcribe-out-unwritable', ['transcribe', f'{W}/old.wav', '-o', '/proc/t.mid'], 2, 'cannot write in /proc'),
    Case('transcribe-out-suffix', ['transcribe', f'{W}/old.wav', '-o', f'{W}/t.wav'], 2, 'must end in .mid or .midi'),
    # --- eval-notes
    Case('eval-notes-tolerance-negative', ['eval-notes', f'{W}/piece.mid', f'{W}/piece.mid', '--onset-tolerance', '-1'], 2,
         '--onset-tolerance: must be a finite number > 0'),
    Case('eval-notes-tolerance-nan', ['eval-notes', f'{W}/piece.mid', f'{W}/piece.mid', '--onset-tolerance', 'nan'], 2, "got 'nan'"),
    Case('eval-notes-bad-midi', ['eval-notes', f'{W}/piece.mid', f'{W}/bad.mid'], 2, 'bad.mid: could not be parsed'),
    # --- adherence
    Case('adherence-classifier-missing', ['adherence', 'score', '--classifier', f'{W}/none.safetensors', '--style', 'x', f'{W}/old.wav'], 2,
         f'--classifier {W}/none.safetensors: no such file'),
    Case('adherence-style-count', ['adherence', 'score', '--classifier', f'{W}/clf.safetensors', '--style', 'a', '--style', 'b', '--style', 'c',
                                   f'{W}/old.wav', f'{W}/old.wav'], 2, '--style given 3 times for 2 audio files'),
    Case('adherence-epochs-zero', ['adherence', 'train', '--data-root', f'{W}/mini', '--out', f'{W}/c.safetensors', '--epochs', '0'], 2,
         '--epochs: must be an integer >= 1'),
    Case('adherence-out-unwritable', ['adherence', 'train', '--data-root', f'{W}/mini', '--out', '/proc/c.safetensors'], 2, 'cannot write in /proc'),
]
@pytest.fixture
def world(template, tmp_path) -> Path:
    "A fresh copy of the world for one case."
    w = tmp_path / 'w'
    shutil.copytree(template, w)
    return w


def _assert_nothing_lost(w: Path, before: dict, changes: tuple):
    after = snapshot(w)
    for path, digest in before.items():
        if any(path == c or path.startswith(c.rstrip('/') + '/') for c in changes): continue
        assert after.get(path) == digest, f"{path} was {'changed' if path in after else 'lost'}"
    partial = [p for p in w.rglob('*') if p.name.startswith(('.tmp-', '.trash-'))]
    assert not partial, f"half-written files left: {partial}"


@pytest.mark.parametrize('case', CASES, ids=[c.id for c in CASES])
def test_contract(case: Case, world: Path, template: Path, capsys):
    if case.skip: pytest.skip(case.skip)
    argv = [a.replace('{w}', str(world)) for a in case.argv]
    before = snapshot(world)
    rc, out, err = run_inprocess(argv, capsys)
    msg = case.msg.replace('{w}', str(world))
    assert rc == case.code, f"exit {rc}, expected {case.code}; stderr:\n{err}"
    if case.code != 0 and 'Traceback' not in msg:
        lines = err.splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
        assert lines[0].startswith('hsmad') and ': error: ' in lines[0] and msg in lines[0], lines[0]
    else:
        assert msg in err, err
    if '--verbose' not in argv: assert 'Traceback' not in err
    _assert_nothing_lost(world, before, case.changes)
    if case.check: case.check(world, template, out, err)


def test_one_code_per_kind_of_failure():
    "The same failure has the same exit status in every command (a bad MIDI file was 1 in generate, 2 in eval-notes)."
    bad_midi = {c.argv[0]: c.code for c in CASES if 'bad.mid' in ' '.join(c.argv) and c.code != 0}
    assert set(bad_midi) >= {'roll', 'generate', 'eval-notes'} and set(bad_midi.values()) == {2}, bad_midi
    unwritable = {c.argv[0]: c.code for c in CASES if any(a.startswith('/proc/') for a in c.argv)}
    assert set(unwritable) >= {'roll', 'srm-figure', 'data', 'train', 'generate', 'transcribe', 'adherence'} and set(unwritable.values()) == {2}
    # every command of the dispatcher is in the table
    from hsmad.cli import COMMANDS
    assert set(COMMANDS) <= {c.argv[0] for c in CASES if c.argv}


# ----------------------------------------------------------------------------- Ctrl-C: a real SIGINT to a subprocess
def _sigint_default():
    "In the child: SIGINT back to its default, so Python installs its KeyboardInterrupt handler even when the test runner's\n    shell started us with SIGINT ignored (a background job in a non-interactive shell, as some CI runners are)."
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt(cmd: list[str], ready: Callable[[], bool], timeout: float = 300) -> tuple[int, str]:
    "Run `hsmad CMD` in a subprocess, send SIGINT once `ready()`; its exit status and stderr."
    p = subprocess.Popen([sys.executable, '-m', 'hsmad.cli', *cmd], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_sigint_default)
    try:
        t0 = time.time()
        while not ready() and p.poll() is None and time.time() - t0 < timeout: time.sleep(0.05)
        assert p.poll() is None, f"the command ended before it could be interrupted: {p.communicate()}"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill(); p.communicate()
    return p.returncode, err


def test_ctrl_c_generate_writes_nothing(world):
    "Ctrl-C while windows are sampled: exit 130, one line saying nothing was written, the earlier file untouched."
    before = snapshot(world)
    p = subprocess.Popen([sys.executable, '-m', 'hsmad.cli', 'generate', str(world / 'long.mid'), '--checkpoint', str(world / 'gen'),
                          '--style', 'test style', '-o', str(world / 'old.wav'), '--steps', '20'],
                         env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_default)
    try:
        first = p.stderr.readline()           # the window plan, logged before the first window is sampled
        n = len(window_plan(math.ceil(59.95 * 62.5), 32, 8))   # 0.512 s windows overlapping by 8 frames
        assert f'59.9 s of MIDI: {n} window(s) of 0.51 s' in first, first
        time.sleep(1.0)
        p.send_signal(signal.SIGINT)
        out, rest = p.communicate(timeout=120)
    finally:
        if p.poll() is None: p.kill(); p.communicate()
    assert p.returncode == 130, first + rest
    assert rest.splitlines()[-1] == f"hsmad generate: interrupted (Ctrl-C); nothing was written ({world / 'old.wav'} is unchanged)", rest
    assert 'Traceback' not in rest and 'generate:' in rest      # the progress bar counted windows
    _assert_nothing_lost(world, before, ())


def test_ctrl_c_train_says_how_to_resume(world):
    "Ctrl-C after a checkpoint: exit 130, the step reached and the newest checkpoint named, --resume suggested; it loads."
    run = world / 'r3'
    write_style_table(run, ['test style'], 12)
    before = snapshot(world)
    rc, err = _interrupt(['train', '--cache', str(world / 'cache'), '--out', str(run), '--steps', '100000', '--ckpt-every', '2', *TRAIN,
                          *micro_sets()], ready=lambda: len(checkpoints(run)) >= 2)
    assert rc == 130, err
    last = err.splitlines()[-1]
    assert last.startswith('hsmad train: interrupted (Ctrl-C); training stopped at step ') and 'of 100000; the newest checkpoint is step_' in last, err
    assert 'the same command with --resume continues from it' in last and 'Traceback' not in err
    assert load_pretrained(run).step >= 2
    _assert_nothing_lost(world, before, ('r3/',))


# ----------------------------------------------------------------------------------- papermill: experiments/train.ipynb
def test_train_notebook_parameters_parse():
    "papermill reads every line of the parameters cell (it warned about two before)."
    import papermill
    params = papermill.inspect_notebook(str(ROOT / 'experiments' / 'train.ipynb'))
    assert list(params) == ['dataset', 'data_root', 'preset', 'variant', 'steps', 'batch_size', 'gpus', 'seed', 'out_dir', 'smoke']
    assert params['batch_size']['default'] == '0' and params['gpus']['default'] == '0'


def test_train_notebook_refuses_a_root_of_another_dataset(world, tmp_path):
    "`-p dataset slakh` on the mini folder: refused before any work, with the reason in the console (not only an exit status)."
    before = snapshot(world)
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT / 'experiments' / 'train.ipynb'), str(tmp_path / 'out.ipynb'),
                        '-p', 'dataset', 'slakh', '-p', 'data_root', str(world / 'mini'), '-p', 'out_dir', str(world / 'r4'), '-k', 'python3'],
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert f"-p data_root {world / 'mini'}: is the mini dataset (mini.json), not Slakh2100" in r.stderr, r.stderr[-3000:]
    assert not (world / 'r4').exists()
    _assert_nothing_lost(world, before, ())


@pytest.mark.slow
def test_train_notebook_surfaces_the_command_error(world, tmp_path):
    "A failure inside `hsmad train` shows its own one-line error in papermill's console."
    r = subprocess.run([sys.executable, '-m', 'papermill', str(ROOT / 'experiments' / 'train.ipynb'), str(tmp_path / 'out.ipynb'),
                        '-p', 'data_root', str(world / 'mini'), '-p', 'variant', 'nonsense', '-p', 'out_dir', str(world / 'r5'), '-k', 'python3'],
                       env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode != 0
    assert "training failed (exit 2): hsmad train: error: argument --variant: invalid choice: 'nonsense'" in r.stderr, r.stderr[-3000:]
