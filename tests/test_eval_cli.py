"""The evaluation command-line functions (`cli_transcribe`, `cli_eval_notes`) run as a user runs them:
in a fresh process, on files, including bad input."""
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
from hsmad.midi import Notes, read_midi, chorale_midi

SF2 = '/usr/share/sounds/sf2/FluidR3_GM.sf2'
KEYS = ['precision', 'recall', 'f1', 'tae_s', 'velocity_r', 'n_ref', 'n_est', 'n_matched']


def run(fn, *args):
    mod, name = fn.rsplit('.', 1)
    code = f"import sys; from hsmad.{mod} import {name} as f; sys.exit(f(sys.argv[1:]))"
    return subprocess.run([sys.executable, '-c', code, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    ref = Notes.from_arrays(np.arange(60, 72), 0.5 + 0.25 * np.arange(12), 0.7 + 0.25 * np.arange(12), 20 + 8 * np.arange(12))
    ref.write(d / 'ref.mid')
    Notes.from_arrays(ref.pitch, ref.start + 0.03, ref.end, ref.velocity[::-1]).write(d / 'late.mid')
    pretty_midi.PrettyMIDI().write(str(d / 'empty.mid'))
    (d / 'corrupt.mid').write_bytes(b'MThd\x00\x00\x00\x06garbage')
    return d


def test_eval_notes_json_line(files):
    r = run('eval.metrics.cli_eval_notes', files / 'ref.mid', files / 'late.mid', '--json')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    m = json.loads(lines[0])
    assert list(m) == KEYS
    assert (m['n_ref'], m['n_est'], m['n_matched'], m['f1']) == (12, 12, 12, 1.0)
    assert abs(m['tae_s'] - 0.03) < 1e-3          # MIDI ticks quantise times to ~0.5 ms
    assert m['velocity_r'] == pytest.approx(-1.0)


def test_eval_notes_empty_estimate_is_null_not_zero(files):
    r = run('eval.metrics.cli_eval_notes', files / 'ref.mid', files / 'empty.mid', '--json')
    assert r.returncode == 0, r.stderr
    assert '"tae_s": null' in r.stdout and '"velocity_r": null' in r.stdout
    m = json.loads(r.stdout)
    assert (m['f1'], m['n_est'], m['n_matched']) == (0.0, 0, 0)


def test_eval_notes_human_readable_and_bad_input(files):
    r = run('eval.metrics.cli_eval_notes', files / 'ref.mid', files / 'empty.mid')
    assert r.returncode == 0 and 'tae_s=n/a' in r.stdout and 'f1=0.0000' in r.stdout
    r = run('eval.metrics.cli_eval_notes', files / 'ref.mid', files / 'corrupt.mid', '--json')
    assert r.returncode == 2 and 'corrupt.mid' in r.stderr and 'Traceback' not in r.stderr
    r = run('eval.metrics.cli_eval_notes', files / 'ref.mid', files / 'missing.mid')
    assert r.returncode == 2 and 'no such file' in r.stderr


def test_transcribe_then_eval_notes(tmp_path):
    "hsmad transcribe on a FluidSynth render, then hsmad eval-notes of the result against the MIDI."
    src = read_midi(chorale_midi(tmp_path / 'src.mid', 'bach/bwv66.6')).crop(0, 10)
    src.write(tmp_path / 'ref.mid')
    audio = src.to_pretty_midi().fluidsynth(fs=22050, synthesizer=SF2)
    sf.write(tmp_path / 'ref.wav', 0.9 * audio / np.abs(audio).max(), 22050)
    r = run('eval.transcribe.cli_transcribe', tmp_path / 'ref.wav', '-o', tmp_path / 'est.mid')
    assert r.returncode == 0, r.stderr
    assert 'notes (basic-pitch)' in r.stdout and (tmp_path / 'est.mid').exists()
    r = run('eval.metrics.cli_eval_notes', tmp_path / 'ref.mid', tmp_path / 'est.mid', '--json')
    m = json.loads(r.stdout)
    assert m['f1'] > 0.6 and m['tae_s'] < 0.03, m


def test_transcribe_bad_input(tmp_path):
    (tmp_path / 'x.wav').write_text('not audio')
    r = run('eval.transcribe.cli_transcribe', tmp_path / 'x.wav', '-o', tmp_path / 'o.mid')
    assert r.returncode == 2 and 'not a readable audio file' in r.stderr and 'Traceback' not in r.stderr
    sf.write(tmp_path / 's.wav', np.zeros(1600), 16000)
    r = run('eval.transcribe.cli_transcribe', tmp_path / 's.wav', '-o', tmp_path / 'o.mid', '--model', 'bytedance-piano',
            '--checkpoint', tmp_path / 'none.pth')
    assert r.returncode == 2 and 'Zenodo record 4034264' in r.stderr
    r = run('eval.transcribe.cli_transcribe', tmp_path / 's.wav', '-o', tmp_path / 'o.mid', '--model', 'nope')
    assert r.returncode == 2 and 'invalid choice' in r.stderr
