"""Dataset readers on fixtures written here: mini built from scratch, Slakh2100 layouts (missing stems, drums,
unsaved MIDI, original and redux splits), MAESTRO v3 (csv and json, stereo 48 kHz audio), bad roots."""
import json
import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import yaml

from hsmad.data.cache import cli_data
from hsmad.audio import load_audio
from hsmad.data.datasets import DatasetError, open_dataset
from hsmad.midi import MidiError


def _midi(path, notes, program=0, is_drum=False, bpm=120.0):
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program, is_drum)
    inst.notes = [pretty_midi.Note(v, p, s, e) for p, s, e, v in notes]
    pm.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


def slakh_track(folder, stems, seconds=2.0, sr=44100, channels=1):
    """Write a Slakh-layout track. `stems`: {sid: dict(meta..., notes=[(pitch, start, end, vel)])};
    audio files exist only where audio_rendered, MIDI only where midi_saved (as in Slakh)."""
    (folder / 'MIDI').mkdir(parents=True); (folder / 'stems').mkdir()
    n = int(seconds * sr)
    mix = np.zeros((n, channels), np.float32)
    meta = {}
    for sid, s in stems.items():
        s = dict(s); notes = s.pop('notes')
        meta[sid] = dict(inst_class=s.get('inst_class', 'Piano'), program_num=s.get('program_num', 0),
                         is_drum=s.get('is_drum', False), midi_program_name='x',
                         audio_rendered=s.get('audio_rendered', True), midi_saved=s.get('midi_saved', True))
        if meta[sid]['midi_saved']:
            _midi(folder / 'MIDI' / f'{sid}.mid', notes, meta[sid]['program_num'], meta[sid]['is_drum'])
        if meta[sid]['audio_rendered']:
            y = np.zeros((n, channels), np.float32)
            for p, st, e, v in notes:
                i = int(st * sr); y[i:i + 200] += 0.3
            sf.write(str(folder / 'stems' / f'{sid}.flac'), y, sr)
            mix += y
    sf.write(str(folder / 'mix.flac'), mix, sr)
    all_notes = [x for s in stems.values() for x in s['notes']]
    _midi(folder / 'all_src.mid', all_notes)
    (folder / 'metadata.yaml').write_text(yaml.safe_dump(dict(UUID='u', audio_dir='stems', midi_dir='MIDI', stems=meta)))


STEMS = dict(
    S00=dict(inst_class='Piano', program_num=0, notes=[(60, 0.5, 1.0, 100), (64, 1.0, 1.5, 90)]),
    S01=dict(inst_class='Bass', program_num=33, audio_rendered=False, notes=[(40, 0.5, 1.5, 80)]),
    S02=dict(inst_class='Drums', program_num=0, is_drum=True, notes=[(36, 0.25, 0.35, 110), (38, 0.75, 0.85, 90)]),
    S03=dict(inst_class='Guitar', program_num=25, notes=[(67, 0.2, 0.6, 70)]),
)


def test_mini_from_scratch_read_back(tmp_path):
    "CI builds a small mini dataset through the CLI and reads it back through the Slakh reader."
    assert cli_data(['build-mini', '--out', str(tmp_path / 'mini'), '--tracks', '4', '--seed', '3',
                     '--max-seconds', '5', '--workers', '2']) == 0
    rec = json.loads((tmp_path / 'mini' / 'mini.json').read_text())
    # deterministic for a seed, whatever the number of worker processes
    from hsmad.data.mini import build_mini
    build_mini(tmp_path / 'mini1', tracks=4, seed=3, max_seconds=5, workers=1, progress=False)
    for f in sorted((tmp_path / 'mini').rglob('*.flac')):
        g = tmp_path / 'mini1' / f.relative_to(tmp_path / 'mini')
        assert np.array_equal(sf.read(str(f))[0], sf.read(str(g))[0]), f"{f} differs between builds"
    build_mini(tmp_path / 'mini2', tracks=4, seed=4, max_seconds=5, workers=1, progress=False)
    assert not np.array_equal(sf.read(str(tmp_path / 'mini' / 'test' / 'Track00004' / 'mix.flac'))[0][:40000],
                              sf.read(str(tmp_path / 'mini2' / 'test' / 'Track00004' / 'mix.flac'))[0][:40000])
    assert rec['splits'] == dict(train=2, validation=1, test=1)
    tracks = open_dataset('mini', tmp_path / 'mini')
    assert len(tracks) == 4 and {t.split for t in tracks} == {'train', 'validation', 'test'}
    for t in tracks:
        assert t.audio.name == 'mix.flac' and abs(t.duration - 5.0) < 1e-6
        assert t.tempo_map and t.notes_complete and t.style
        notes = t.load_notes()
        assert len(notes) > 0 and notes.end.max() <= 5.0
        # stems/Snn.flac and MIDI/Snn.mid pair up one to one
        stems = sorted(p.stem for p in (t.audio.parent / 'stems').glob('*.flac'))
        assert stems == sorted(p.stem for p in (t.audio.parent / 'MIDI').glob('*.mid')) == [p.stem for p in t.midi]
        # pretty_midi's beats from the file match the tempo in metadata.yaml
        pm = pretty_midi.PrettyMIDI(str(t.tempo_midi()))
        assert np.allclose(np.diff(pm.get_beats()[:3]), 60 / t.meta['bpm'], atol=1e-3)


def test_slakh_redux_layout_with_missing_stems_and_drums(tmp_path):
    root = tmp_path / 'redux'
    slakh_track(root / 'train' / 'Track00007', STEMS)
    slakh_track(root / 'test' / 'Track01999', {k: STEMS[k] for k in ('S00', 'S02')}, channels=2)
    slakh_track(root / 'omitted' / 'Track00300', {'S00': STEMS['S00']})
    stems3 = dict(STEMS, S03=dict(STEMS['S03'], midi_saved=False))
    slakh_track(root / 'validation' / 'Track00010', stems3)
    tr = {t.track_id: t for t in open_dataset('slakh', root)}
    assert {k: t.split for k, t in tr.items()} == dict(Track00007='train', Track01999='test', Track00300='omitted',
                                                         Track00010='validation')
    t = tr['Track00007']
    assert t.style == 'Piano, Drums, Guitar'            # the bass stem was not rendered: not in the mix, not in the style
    n = t.load_notes()
    assert sorted(n.pitch.tolist()) == [36, 38, 60, 64, 67] and 40 not in n.pitch
    assert n.is_drum.sum() == 2 and set(n.program[n.is_drum].tolist()) == {0}
    assert t.notes_complete
    v = tr['Track00010']
    assert not v.notes_complete and 67 not in v.load_notes().pitch   # guitar rendered but its MIDI not saved
    y, _ = load_audio(tr['Track01999'].audio, 16000)                       # stereo 44.1 kHz -> mono 16 kHz
    assert y.ndim == 1 and len(y) == 32000
    assert len(open_dataset('slakh', root, split='test')) == 1


def test_slakh_original_layout_splits_by_id(tmp_path):
    for tid in ('Track00001', 'Track01500', 'Track01501', 'Track01876', 'Track02100'):
        slakh_track(tmp_path / tid, {'S00': STEMS['S00']}, seconds=1.0)
    got = {t.track_id: t.split for t in open_dataset('slakh', tmp_path)}
    assert got == dict(Track00001='train', Track01500='train', Track01501='validation', Track01876='test', Track02100='test')


def test_slakh_bad_roots(tmp_path):
    with pytest.raises(DatasetError, match='zenodo.org/record/4599666'):
        open_dataset('slakh', tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no TrackXXXXX folders'):
        open_dataset('slakh', tmp_path / 'empty')
    (tmp_path / 'broken' / 'train' / 'Track00001').mkdir(parents=True)
    with pytest.raises(DatasetError, match='no metadata.yaml'):
        open_dataset('slakh', tmp_path / 'broken')
    slakh_track(tmp_path / 'corrupt' / 'Track00001', {'S00': STEMS['S00']})
    (tmp_path / 'corrupt' / 'Track00001' / 'MIDI' / 'S00.mid').write_bytes(b'not midi')
    (t,) = open_dataset('slakh', tmp_path / 'corrupt')
    with pytest.raises(MidiError, match='S00.mid'):
        t.load_notes()
    with pytest.raises(ValueError, match='unknown dataset'):
        open_dataset('lakh', tmp_path)


def maestro_fixture(root, fmt='csv'):
    rows = []
    for i, (split, year) in enumerate([('train', 2004), ('validation', 2006), ('test', 2018)]):
        name = f'{year}/MIDI-Unprocessed_{i:02d}'
        t = np.arange(int(1.5 * 48000)) / 48000
        left = 0.4 * np.sin(2 * np.pi * 440 * t)
        (root / str(year)).mkdir(parents=True, exist_ok=True)
        sf.write(str(root / f'{name}.wav'), np.stack([left, -left * 0.5], 1).astype(np.float32), 48000)
        _midi(root / f'{name}.midi', [(69, 0.1, 1.2, 64)])
        rows.append(dict(canonical_composer='Bach', canonical_title=f'Piece {i}', split=split, year=year,
                         midi_filename=f'{name}.midi', audio_filename=f'{name}.wav', duration=1.5))
    if fmt == 'csv':
        import csv
        with open(root / 'maestro-v3.0.0.csv', 'w', newline='') as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    else:   # the release's json: {column: {row index: value}}
        cols = {k: {str(i): r[k] for i, r in enumerate(rows)} for k in rows[0]}
        (root / 'maestro-v3.0.0.json').write_text(json.dumps(cols))
    return rows


@pytest.mark.parametrize('fmt', ['csv', 'json'])
def test_maestro(tmp_path, fmt):
    maestro_fixture(tmp_path, fmt)
    tr = open_dataset('maestro', tmp_path)
    assert [t.split for t in tr] == ['test', 'train', 'validation']
    t = tr[1]
    assert t.style == 'Classical Piano Performance' and not t.tempo_map and t.duration == 1.5
    assert t.meta['canonical_composer'] == 'Bach'
    assert t.load_notes().pitch.tolist() == [69]
    y, _ = load_audio(t.audio, 16000)            # 48 kHz stereo -> 16 kHz mono: (L + R) / 2 = 0.25 * L
    assert y.shape == (24000,)
    assert abs(np.abs(y[2000:22000]).max() - 0.1) < 0.005


def test_maestro_bad_roots(tmp_path):
    with pytest.raises(DatasetError, match='magenta.tensorflow.org/datasets/maestro'):
        open_dataset('maestro', tmp_path / 'missing')
    (tmp_path / 'm').mkdir()
    with pytest.raises(DatasetError, match='no maestro-v3.0.0.csv or .json'):
        open_dataset('maestro', tmp_path / 'm')
    rows = maestro_fixture(tmp_path / 'm')
    (tmp_path / 'm' / rows[0]['audio_filename']).unlink()
    with pytest.raises(DatasetError, match='listed in the MAESTRO metadata but missing'):
        open_dataset('maestro', tmp_path / 'm')
