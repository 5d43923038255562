"""The `hsmad` console command as a user runs it: a real subprocess, real MIDI files."""
import subprocess, sys
from pathlib import Path
import numpy as np
import pretty_midi
import pytest
from hsmad.midi import Notes, read_midi
from hsmad.srm import render_srm

HSMAD = [sys.executable, '-m', 'hsmad.cli']


def run(*args):
    return subprocess.run([*HSMAD, *map(str, args)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope='module')
def midi(tmp_path_factory):
    notes = Notes.from_arrays([60, 64, 67, 36], [0.0, 0.5, 1.0, 0.0], [1.0, 1.5, 2.5, 0.1], [100, 80, 60, 127],
                              program=[0, 0, 40, 0], is_drum=[False, False, False, True])
    return notes.write(tmp_path_factory.mktemp('m') / 'piece.mid')


def test_roll_npy_matches_library(midi, tmp_path):
    r = run('roll', midi, '-o', tmp_path / 'r.npy', '--frame-rate', 86.1328125, '--frames', 200, '--offset', 0.25)
    assert r.returncode == 0, r.stderr
    S = np.load(tmp_path / 'r.npy')
    assert S.shape == (384, 200) and S.dtype == np.float32
    np.testing.assert_array_equal(S, render_srm(read_midi(midi), 200, 86.1328125, offset=0.25).numpy())
    # the drum note at 0..0.1 s is before the window except for its release; pitch 60 sounds from frame 0
    assert S[128 + 60, 0] == 1.0 and S[60, 0] == 0.0


def test_roll_duration_binary_png(midi, tmp_path):
    r = run('roll', midi, '-o', tmp_path / 'b.npy', '--frame-rate', 50, '--duration', 3, '--binary')
    assert r.returncode == 0, r.stderr
    S = np.load(tmp_path / 'b.npy')
    assert S.shape == (384, 150) and set(np.unique(S[:256])) <= {0.0, 1.0} and S[:128].sum() == 4
    r = run('roll', midi, '-o', tmp_path / 'fig.png', '--frame-rate', 50, '--duration', 3)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'fig.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('content,expect', [(None, 'no such file'), (b'', 'file is empty'),
                                            (b'MThd\x00\x00\x00\x06\x00\x01junk', 'could not be parsed')])
def test_roll_bad_midi_is_one_clear_line(tmp_path, content, expect):
    p = tmp_path / 'bad.mid'
    if content is not None: p.write_bytes(content)
    r = run('roll', p, '-o', tmp_path / 'x.npy', '--frame-rate', 50, '--frames', 10)
    assert r.returncode == 2 and expect in r.stderr and 'Traceback' not in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / 'x.npy').exists()


def test_roll_argument_errors(midi, tmp_path):
    both = run('roll', midi, '-o', tmp_path / 'x.npy', '--frame-rate', 50, '--frames', 10, '--duration', 1)
    assert both.returncode == 2 and 'not allowed with' in both.stderr
    neither = run('roll', midi, '-o', tmp_path / 'x.npy', '--frame-rate', 50)
    assert neither.returncode == 2
    suffix = run('roll', midi, '-o', tmp_path / 'x.wav', '--frame-rate', 50, '--frames', 10)
    assert suffix.returncode == 2 and '.npy or .png' in suffix.stderr
    r = run('roll', midi, '-o', tmp_path / 'x.npy', '--frame-rate', 50, '--duration', 0.001)
    assert r.returncode == 2 and 'no frames' in r.stderr


def test_empty_midi_renders_silence(tmp_path):
    p = tmp_path / 'silent.mid'; pretty_midi.PrettyMIDI().write(str(p))
    r = run('roll', p, '-o', tmp_path / 's.npy', '--frame-rate', 50, '--frames', 20)
    assert r.returncode == 0 and np.load(tmp_path / 's.npy').sum() == 0 and '0 notes' in r.stdout


def test_help_and_unknown_command():
    assert run('--help').returncode == 0 and 'roll' in run('--help').stdout
    r = run('frobnicate')
    assert r.returncode == 2 and 'unknown command' in r.stderr
