"""Dataset readers on fixtures in the releases' own formats, written here: Slakh2100-redux split folders with
omitted/, the original release and BabySlakh's flat tree, a stale absolute midi_dir, silent renders, FX stems, drums
whose MIDI says program 0, multi-stem tracks; MAESTRO v3's CSV (quoted commas, non-ASCII names) and column-oriented
JSON with 44.1 and 48 kHz stereo audio; mini's metadata against the release's; broken trees that must fail naming
the track; `hsmad data check`."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import soundfile as sf
import yaml

from hsmad.audio import load_audio
from hsmad.data.cache import cli_data
from hsmad.data.datasets import (DatasetError, SLAKH_STEM_KEYS, SLAKH_TRACK_KEYS, check_dataset, open_dataset,
                                 scan_dataset)
from hsmad.midi import MidiError

SLAKH_SR = 44100          # the release's audio: FLAC, 44.1 kHz, mono, 16-bit


def _midi(path, notes, program=0, is_drum=False, bpm=120.0, pedal=()):
    "A one-instrument MIDI file: `notes` (pitch, start, end, velocity), `pedal` (time, CC64 value)."
    pm = pretty_midi.PrettyMIDI(initial_tempo=bpm)
    inst = pretty_midi.Instrument(program, is_drum)
    inst.notes = [pretty_midi.Note(v, p, s, e) for p, s, e, v in notes]
    inst.control_changes = [pretty_midi.ControlChange(64, v, t) for t, v in pedal]
    pm.instruments.append(inst)
    path.parent.mkdir(parents=True, exist_ok=True)
    pm.write(str(path))


def stem(inst_class, program_num, notes, *, is_drum=False, audio_rendered=True, midi_saved=True,
         plugin_name='the_grandeur.nkm', midi_program_name='Acoustic Grand Piano'):
    "A stem of a Slakh track: its metadata.yaml entry (the release's keys and types) and its notes."
    return dict(audio_rendered=audio_rendered, inst_class=inst_class, is_drum=is_drum,
                midi_program_name=midi_program_name, midi_saved=midi_saved, plugin_name=plugin_name,
                program_num=program_num, notes=notes)


PIANO = stem('Piano', 0, [(60, 0.5, 1.0, 100), (64, 1.0, 1.5, 90), (67, 1.2, 1.8, 80)])
SILENT_BASS = stem('Bass', 33, [(40, 0.5, 1.5, 80), (43, 1.5, 1.9, 80)], audio_rendered=False,   # a silent render
                   plugin_name='scarbee_rickenbacker_bass.nkm', midi_program_name='Electric Bass (finger)')
DRUMS = stem('Drums', 128, [(36, 0.25, 0.35, 110), (42, 0.25, 0.3, 70), (38, 0.75, 0.85, 90), (42, 0.75, 0.8, 70)],
             is_drum=True, plugin_name='session_kit_full.nkm', midi_program_name='Drums')
GUITAR = stem('Guitar', 25, [(67, 0.2, 0.6, 70), (71, 0.6, 1.0, 70)], plugin_name='jazz_guitar2.nkm',
              midi_program_name='Acoustic Guitar (steel)')
FX = stem('Sound Effects', 103, [(72, 0.1, 1.9, 60)], audio_rendered=False, midi_saved=False, plugin_name='None',
          midi_program_name='FX 8 (sci-fi)')                                    # no patch: neither heard nor written
BAND = dict(S00=PIANO, S01=SILENT_BASS, S02=DRUMS, S03=GUITAR, S04=FX)


def write_slakh_track(folder, stems, midi_dir=None, seconds=2.0, drum_channel=True):
    """A Slakh2100 track as released. `midi_dir`: what metadata.yaml says (default: the redux's
    `TrackXXXXX/MIDI`, relative to the split folder). MIDI/Snn.mid exists where `midi_saved`, stems/Snn.flac where
    `audio_rendered`; all_src.mid holds every stem, rendered or not; a drum stem's MIDI says program 0, on channel 10
    unless `drum_channel=False`. Returns the expected note rows (pitch, start, end, velocity, program, is_drum)."""
    tid = Path(folder).name
    (folder / 'MIDI').mkdir(parents=True); (folder / 'stems').mkdir()
    n = int(seconds * SLAKH_SR)
    mix, meta, everything, expected = np.zeros(n, np.float32), {}, [], []
    for sid, s in stems.items():
        s = dict(s); notes = s.pop('notes')
        drum = s['is_drum']
        prog = 0 if drum else s['program_num']
        meta[sid] = dict(s)
        everything += notes
        if s['midi_saved']: _midi(folder / 'MIDI' / f'{sid}.mid', notes, prog, drum and drum_channel)
        if s['audio_rendered']:
            y = np.zeros(n, np.float32)
            for p, st, e, v in notes: y[int(st * SLAKH_SR):int(st * SLAKH_SR) + 200] += 0.2
            sf.write(str(folder / 'stems' / f'{sid}.flac'), y, SLAKH_SR, subtype='PCM_16')
            mix += y
            meta[sid]['integrated_loudness'] = -14.0 - len(meta)      # only rendered stems carry it
            if s['midi_saved']: expected += [(p, st, e, v, prog, drum) for p, st, e, v in notes]
    sf.write(str(folder / 'mix.flac'), mix, SLAKH_SR, subtype='PCM_16')
    _midi(folder / 'all_src.mid', everything)
    uuid = hashlib.md5(tid.encode()).hexdigest()
    md = midi_dir or f'{tid}/MIDI'
    (folder / 'metadata.yaml').write_text(yaml.safe_dump(dict(
        UUID=uuid, audio_dir=md.replace('MIDI', 'stems'), lmd_midi_dir=f'lmd_matched/O/O/H/TROOHTB128F931F9DF/{uuid}.mid',
        midi_dir=md, normalization_factor=-13.0, normalized=True, overall_gain=0.18270259567062658, stems=meta,
        target_peak=-1.0)))
    return sorted(expected)


def write_redux(root):
    "A Slakh2100-redux tree: split folders with omitted/; one track's midi_dir a stale absolute path. -> expected notes."
    exp = {}
    exp['Track00001'] = write_slakh_track(root / 'train' / 'Track00001', BAND)
    exp['Track00002'] = write_slakh_track(root / 'train' / 'Track00002', dict(S00=DRUMS, S01=PIANO), drum_channel=False,
                                          midi_dir='/home/render/slakh2100/render_output/Track00002/MIDI')
    exp['Track01501'] = write_slakh_track(root / 'validation' / 'Track01501', dict(S00=GUITAR, S01=FX, S02=PIANO))
    exp['Track01880'] = write_slakh_track(root / 'test' / 'Track01880', dict(S00=PIANO, S01=DRUMS, S02=SILENT_BASS))
    exp['Track00150'] = write_slakh_track(root / 'omitted' / 'Track00150', dict(S00=PIANO, S01=DRUMS))  # a duplicate
    return exp


def _rows(notes):
    return sorted(zip(notes.pitch.tolist(), np.round(notes.start, 4).tolist(), np.round(notes.end, 4).tolist(),
                      notes.velocity.tolist(), notes.program.tolist(), notes.is_drum.tolist()))


def _exp(rows):
    return sorted((p, round(s, 4), round(e, 4), v, prog, d) for p, s, e, v, prog, d in rows)


def test_slakh_redux_as_released(tmp_path):
    "The redux's midi_dir (relative to the split folder, or a stale absolute path) is not followed: notes are found."
    exp = write_redux(tmp_path)
    tracks = open_dataset('slakh', tmp_path)
    assert [(t.split, t.track_id) for t in tracks] == [('train', 'Track00001'), ('train', 'Track00002'),
                                                      ('validation', 'Track01501'), ('test', 'Track01880')]
    for t in tracks:
        assert t.problems == [] and t.notes_complete and t.duration == 2.0
        assert _rows(t.load_notes()) == _exp(exp[t.track_id]), t.track_id
    t1 = tracks[0]
    assert len(t1.load_notes()) == 9                         # piano 3 + drums 4 + guitar 2; silent bass and FX out
    assert t1.style == 'Piano, Drums, Guitar'                # the stems in the mix, in stem order
    assert [s.stem_id for s in t1.stems] == ['S00', 'S01', 'S02', 'S03', 'S04']
    silent, fx = t1.stems[1], t1.stems[4]
    assert silent.midi is not None and silent.audio is None and not silent.audio_rendered
    assert fx.midi is None and fx.audio is None and fx.plugin_name is None
    assert [p.name for p in t1.midi] == ['S00.mid', 'S02.mid', 'S03.mid']
    assert t1.tempo_midi().name == 'all_src.mid'
    # drums whose file says program 0 on a pitched channel are still drums, program 0
    n2 = tracks[1].load_notes()
    assert pretty_midi.PrettyMIDI(str(tmp_path / 'train/Track00002/MIDI/S00.mid')).instruments[0].is_drum is False
    assert n2.is_drum.sum() == 4 and set(n2.pitch[n2.is_drum].tolist()) == {36, 38, 42}
    assert set(n2.program[n2.is_drum].tolist()) == {0} and not n2.is_drum[n2.pitch == 60].any()
    # omitted/ only when asked for
    assert [t.track_id for t in open_dataset('slakh', tmp_path, 'omitted')] == ['Track00150']
    assert len(open_dataset('slakh', tmp_path, ['train', 'omitted'])) == 3
    assert [t.track_id for t in open_dataset('slakh', tmp_path, 'test')] == ['Track01880']


def test_slakh_original_release_and_flat_tree(tmp_path):
    "The original release (split folders by id, midi_dir: MIDI) and BabySlakh's flat tree (split by id)."
    orig = tmp_path / 'orig'
    for sp, tid in (('train', 'Track00001'), ('validation', 'Track01501'), ('test', 'Track01876')):
        write_slakh_track(orig / sp / tid, dict(S00=PIANO, S01=DRUMS), midi_dir='MIDI')
    assert {t.track_id: t.split for t in open_dataset('slakh', orig)} == dict(
        Track00001='train', Track01501='validation', Track01876='test')
    flat = tmp_path / 'flat'
    for tid in ('Track00001', 'Track01500', 'Track01501', 'Track01876', 'Track02100'):
        write_slakh_track(flat / tid, dict(S00=PIANO), midi_dir='MIDI')
    got = {t.track_id: t.split for t in open_dataset('slakh', flat)}
    assert got == dict(Track00001='train', Track01500='train', Track01501='validation', Track01876='test',
                       Track02100='test')
    assert all(len(t.load_notes()) == 3 for t in open_dataset('slakh', flat))


def test_slakh_broken_trees_fail_naming_the_track(tmp_path):
    with pytest.raises(DatasetError, match='zenodo.org/record/4599666'):
        open_dataset('slakh', tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(DatasetError, match='no TrackXXXXX folders'):
        open_dataset('slakh', tmp_path / 'empty')
    # the MIDI folder is missing
    write_redux(tmp_path / 'r1')
    os.rename(tmp_path / 'r1/train/Track00002/MIDI', tmp_path / 'r1/train/Track00002/MIDI-moved')
    with pytest.raises(DatasetError, match=r'^train/Track00002: the MIDI folder is missing .*2 stem\(s\) in the mix'):
        open_dataset('slakh', tmp_path / 'r1')
    assert len(open_dataset('slakh', tmp_path / 'r1', 'validation')) == 1       # other splits still read
    # one saved stem's file is missing; a folder without metadata; metadata that is not YAML; no mix
    write_redux(tmp_path / 'r2')
    (tmp_path / 'r2/test/Track01880/MIDI/S01.mid').unlink()
    (tmp_path / 'r2/train/Track00001/metadata.yaml').unlink()
    (tmp_path / 'r2/train/Track00002/metadata.yaml').write_text('stems: [unclosed\n')
    (tmp_path / 'r2/validation/Track01501/mix.flac').unlink()
    tracks, problems = scan_dataset('slakh', tmp_path / 'r2')
    assert [str(p) for p in problems] == [
        'error: train/Track00001: no metadata.yaml in ' + str(tmp_path / 'r2/train/Track00001'),
        f"error: train/Track00002: {problems[1].cause}",
        'error: validation/Track01501: no mix.flac in ' + str(tmp_path / 'r2/validation/Track01501'),
        'error: test/Track01880: MIDI/S01.mid is missing (metadata.yaml: audio_rendered: true, midi_saved: true)']
    assert problems[1].cause.startswith('metadata.yaml is not readable YAML')
    with pytest.raises(DatasetError, match=r'^train/Track00001: no metadata.yaml .*\(and 3 more error\(s\)'):
        open_dataset('slakh', tmp_path / 'r2')
    # a corrupt MIDI file names itself when the notes are read
    write_slakh_track(tmp_path / 'r3' / 'Track00001', dict(S00=PIANO), midi_dir='MIDI')
    (tmp_path / 'r3/Track00001/MIDI/S00.mid').write_bytes(b'not midi')
    (t,) = open_dataset('slakh', tmp_path / 'r3')
    with pytest.raises(MidiError, match='S00.mid'):
        t.load_notes()
    with pytest.raises(ValueError, match='unknown dataset'):
        open_dataset('lakh', tmp_path)


def test_slakh_notes_that_do_not_fit_their_audio(tmp_path):
    "No notes, or an implausible count per hour of audio, is an error naming the track; rendered-not-saved a warning."
    root = tmp_path / 'r'
    write_slakh_track(root / 'train' / 'Track00001', dict(S00=stem('Piano', 0, [])))
    write_slakh_track(root / 'train' / 'Track00002', dict(S00=stem('Piano', 0, [(60, 1.0, 2.0, 90)])), seconds=90.0)
    many = [(30 + i % 60, i * 0.003, i * 0.003 + 0.1, 80) for i in range(600)]         # 600 notes in 2 s
    write_slakh_track(root / 'train' / 'Track00003', dict(S00=stem('Piano', 0, many)))
    write_slakh_track(root / 'train' / 'Track00004', dict(S00=PIANO, S01=dict(GUITAR, midi_saved=False)))
    tr = {t.track_id: t for t in open_dataset('slakh', root)}      # the folders are sound: reading them works
    with pytest.raises(DatasetError, match=r'^train/Track00001: 2.0 s of audio but no notes in its MIDI '
                                           r'\(1 file\(s\) read\)'):
        tr['Track00001'].load_notes()
    with pytest.raises(DatasetError, match=r'^train/Track00002: 1 note\(s\) in 90.0 s of audio \(40/h; under 60/h'):
        tr['Track00002'].load_notes()
    with pytest.raises(DatasetError, match=r'^train/Track00003: 600 notes in 2.0 s of audio \(1080000/h; over 720000/h'):
        tr['Track00003'].load_notes()
    t4 = tr['Track00004']
    assert not t4.notes_complete and [p.error for p in t4.problems] == [False]
    assert 'S01 (Guitar) is in the mix but its MIDI was not saved' in str(t4.problems[0])
    assert len(t4.load_notes()) == 3                               # usable, with the piano's notes only


def test_mini_metadata_as_the_release_writes_it(tmp_path):
    """CI builds a small mini through the CLI: its metadata.yaml has every key of a released one with the same type
    (midi_dir TrackXXXXX/MIDI, program_num 128 for drums), the build is the same for any number of workers, and
    the Slakh reader reads it back."""
    assert cli_data(['build-mini', '--out', str(tmp_path / 'mini'), '--tracks', '4', '--seed', '0',
                     '--max-seconds', '5', '--workers', '2']) == 0
    rec = json.loads((tmp_path / 'mini' / 'mini.json').read_text())
    assert rec['splits'] == dict(train=2, validation=1, test=1)
    from hsmad.data.mini import build_mini
    build_mini(tmp_path / 'mini1', tracks=4, seed=0, max_seconds=5, workers=1, progress=False)
    for f in sorted((tmp_path / 'mini').rglob('*')):
        if f.is_file() and f.name != 'mini.json':
            g = tmp_path / 'mini1' / f.relative_to(tmp_path / 'mini')
            assert f.read_bytes() == g.read_bytes(), f"{f} differs between a 1- and a 2-worker build"
    build_mini(tmp_path / 'mini2', tracks=4, seed=1, max_seconds=5, workers=1, progress=False)
    assert not np.array_equal(sf.read(str(tmp_path / 'mini' / 'test' / 'Track00004' / 'mix.flac'))[0][:40000],
                              sf.read(str(tmp_path / 'mini2' / 'test' / 'Track00004' / 'mix.flac'))[0][:40000])
    # the release's keys and types
    write_slakh_track(tmp_path / 'real' / 'train' / 'Track00001', BAND)
    real = yaml.safe_load((tmp_path / 'real' / 'train' / 'Track00001' / 'metadata.yaml').read_text())
    assert set(real) == set(SLAKH_TRACK_KEYS) and set(real['stems']['S00']) == set(SLAKH_STEM_KEYS) | {'integrated_loudness'}
    mini = yaml.safe_load((tmp_path / 'mini' / 'train' / 'Track00002' / 'metadata.yaml').read_text())   # the jazz combo
    assert mini['midi_dir'] == 'Track00002/MIDI' and mini['audio_dir'] == 'Track00002/stems'
    for k in SLAKH_TRACK_KEYS: assert type(mini[k]) is type(real[k]), k
    for s in mini['stems'].values():
        for k in (*SLAKH_STEM_KEYS, 'integrated_loudness'): assert type(s[k]) is type(real['stems']['S00'][k]), k
    drums = [s for s in mini['stems'].values() if s['is_drum']]
    assert len(drums) == 1 and drums[0]['program_num'] == 128 and drums[0]['inst_class'] == 'Drums'
    tracks = open_dataset('mini', tmp_path / 'mini')
    assert len(tracks) == 4 and {t.split for t in tracks} == {'train', 'validation', 'test'}
    for t in tracks:
        assert t.audio.name == 'mix.flac' and abs(t.duration - 5.0) < 1e-6
        assert t.tempo_map and t.notes_complete and t.style and not t.problems
        notes = t.load_notes()
        assert len(notes) > 0 and notes.end.max() <= 5.0
        # stems/Snn.flac and MIDI/Snn.mid pair up one to one
        stems = sorted(p.stem for p in (t.audio.parent / 'stems').glob('*.flac'))
        assert stems == sorted(p.stem for p in (t.audio.parent / 'MIDI').glob('*.mid')) == [p.stem for p in t.midi]
        # pretty_midi's beats from the file match the tempo in metadata.yaml
        pm = pretty_midi.PrettyMIDI(str(t.tempo_midi()))
        assert np.allclose(np.diff(pm.get_beats()[:3]), 60 / t.meta['bpm'], atol=1e-3)
    jazz = next(t for t in tracks if t.track_id == 'Track00002').load_notes()
    assert jazz.is_drum.any() and set(jazz.pitch[jazz.is_drum].tolist()) <= {36, 38, 42}


# MAESTRO v3 as released: the CSV's header, quoting and UTF-8 text (titles with commas and quotes, accented names)
MAESTRO_CSV = '''canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration
Frédéric Chopin,"Ballade No. 1 in G Minor, Op. 23",train,2004,2004/MIDI-Unprocessed_XP_01_R1_2004_01-02_ORIG_MID--AUDIO_01_R1_2004_01_Track01_wav.midi,2004/MIDI-Unprocessed_XP_01_R1_2004_01-02_ORIG_MID--AUDIO_01_R1_2004_01_Track01_wav.wav,1.35
Antonín Dvořák,"Humoresque, Op. 101 No. 7",validation,2009,2009/MIDI-Unprocessed_07_R1_2009_01-02_ORIG_MID--AUDIO_07_R1_2009_07_R1_2009_01_WAV.midi,2009/MIDI-Unprocessed_07_R1_2009_01-02_ORIG_MID--AUDIO_07_R1_2009_07_R1_2009_01_WAV.wav,1.35
Ludwig van Beethoven,"Sonata No. 14 in C-sharp Minor, Op. 27 No. 2 ""Moonlight""",test,2018,2018/MIDI-Unprocessed_Recital1-3_MID--AUDIO_01_R1_2018_wav--2.midi,2018/MIDI-Unprocessed_Recital1-3_MID--AUDIO_01_R1_2018_wav--2.wav,1.75
Johann Sebastian Bach / Ferruccio Busoni,"Chaconne in D Minor, BWV 1004",train,2018,2018/MIDI-Unprocessed_Chamber2_MID--AUDIO_09_R3_2018_wav--1.midi,2018/MIDI-Unprocessed_Chamber2_MID--AUDIO_09_R3_2018_wav--1.wav,1.35
'''


def maestro_fixture(root, fmt='csv'):
    """A MAESTRO v3 root: metadata as CSV or as the release's column-oriented JSON, 16-bit stereo WAV at 44.1 kHz
    (2004, 2009) or 48 kHz (2018), 2 s long, a MIDI whose length (the metadata's `duration`) is shorter. The
    Beethoven performance holds the sustain pedal. Returns the rows with the release's types."""
    import csv, io
    rows = list(csv.DictReader(io.StringIO(MAESTRO_CSV)))
    for r in rows:
        r['year'], r['duration'] = int(r['year']), float(r['duration'])
        sr = 48000 if r['year'] == 2018 else 44100
        t = np.arange(2 * sr) / sr
        left = 0.4 * np.sin(2 * np.pi * 440 * t)
        (root / str(r['year'])).mkdir(parents=True, exist_ok=True)
        sf.write(str(root / r['audio_filename']), np.stack([left, -left * 0.5], 1).astype(np.float32), sr, subtype='PCM_16')
        pedal = [(0.3, 100), (1.6, 0)] if r['year'] == 2018 and 'Moonlight' in r['canonical_title'] else []
        _midi(root / r['midi_filename'], [(69, 0.1, 0.5, 64), (72, 0.9, 1.35, 70)] if not pedal else
              [(69, 0.1, 0.5, 64), (69, 0.8, 0.9, 64), (72, 1.7, 1.75, 70)], pedal=pedal)
    if fmt == 'csv':
        (root / 'maestro-v3.0.0.csv').write_bytes(MAESTRO_CSV.encode('utf-8'))
    else:   # {column: {row index: value}}, year an int and duration a float, non-ASCII escaped
        (root / 'maestro-v3.0.0.json').write_text(json.dumps({k: {str(i): r[k] for i, r in enumerate(rows)} for k in rows[0]}))
    return rows


@pytest.mark.parametrize('fmt', ['csv', 'json'])
def test_maestro_as_released(tmp_path, fmt):
    rows = maestro_fixture(tmp_path, fmt)
    tr = {t.meta['canonical_title']: t for t in open_dataset('maestro', tmp_path)}
    assert sorted(tr) == sorted(r['canonical_title'] for r in rows)
    t = tr['Sonata No. 14 in C-sharp Minor, Op. 27 No. 2 "Moonlight"']
    assert (t.split, t.meta['year'], t.meta['midi_duration']) == ('test', 2018, 1.75)
    assert t.duration == 2.0                                 # the audio's length, not the metadata's (the MIDI's)
    assert t.style == 'Classical Piano Performance' and not t.tempo_map
    d = tr['Humoresque, Op. 101 No. 7']
    assert d.meta['canonical_composer'] == 'Antonín Dvořák' and d.split == 'validation'
    assert all(type(t.meta['year']) is int and type(t.meta['midi_duration']) is float for t in tr.values())
    assert [t.split for t in open_dataset('maestro', tmp_path)] == ['test', 'train', 'train', 'validation']
    assert len(open_dataset('maestro', tmp_path, 'train')) == 2
    y, _ = load_audio(t.audio, 16000)                       # 48 kHz stereo -> 16 kHz mono: (L + R) / 2 = 0.1 sin
    assert y.shape == (32000,) and abs(np.abs(y[2000:30000]).max() - 0.1) < 0.005
    c = tr['Ballade No. 1 in G Minor, Op. 23']
    assert sf.info(str(c.audio)).samplerate == 44100 and load_audio(c.audio, 16000)[0].shape == (32000,)


def test_maestro_sustain_pedal_both_ways(tmp_path):
    "Note ends follow the pedal by default (as MAESTRO's transcription datasets do), the key releases when asked."
    maestro_fixture(tmp_path)
    (held,) = open_dataset('maestro', tmp_path, 'test')
    (raw,) = open_dataset('maestro', tmp_path, 'test', sustain_pedal=False)
    ends = lambda n: list(zip(n.pitch.tolist(), np.round(n.start, 3).tolist(), np.round(n.end, 3).tolist()))
    # pedal down 0.3-1.6: the first A is struck again at 0.8, the second rings to 1.6; the D after it is unchanged
    assert ends(held.load_notes()) == [(69, 0.1, 0.8), (69, 0.8, 1.6), (72, 1.7, 1.75)]
    assert ends(raw.load_notes()) == [(69, 0.1, 0.5), (69, 0.8, 0.9), (72, 1.7, 1.75)]


def test_maestro_reads_utf8_whatever_the_locale(tmp_path):
    "Under a C locale without Python's UTF-8 mode the preferred encoding is ASCII; the CSV is still read."
    maestro_fixture(tmp_path)
    env = dict(os.environ, LC_ALL='C', LANG='C', PYTHONUTF8='0', PYTHONCOERCECLOCALE='0',
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1])] + sys.path))
    code = ("import locale, sys; from hsmad.data.datasets import open_dataset; "
            "print(locale.getpreferredencoding(False)); "
            "print('|'.join(sorted(t.meta['canonical_composer'] for t in open_dataset('maestro', sys.argv[1])))"
            ".encode('unicode_escape').decode())")
    out = subprocess.run([sys.executable, '-c', code, str(tmp_path)], env=env, capture_output=True, text=True, check=True)
    enc, names = out.stdout.splitlines()
    assert enc.upper() in ('ANSI_X3.4-1968', 'ASCII', 'US-ASCII'), enc
    assert names.encode().decode('unicode_escape').split('|') == [
        'Antonín Dvořák', 'Frédéric Chopin', 'Johann Sebastian Bach / Ferruccio Busoni', 'Ludwig van Beethoven']


def test_maestro_bad_roots_and_rows(tmp_path):
    with pytest.raises(DatasetError, match='magenta.tensorflow.org/datasets/maestro'):
        open_dataset('maestro', tmp_path / 'missing')
    (tmp_path / 'm').mkdir()
    with pytest.raises(DatasetError, match='no maestro-v3.0.0.csv or .json'):
        open_dataset('maestro', tmp_path / 'm')
    rows = maestro_fixture(tmp_path / 'm')
    (tmp_path / 'm' / rows[0]['audio_filename']).unlink()
    with pytest.raises(DatasetError, match=r'^train/MIDI-Unprocessed_XP_01.*_Track01_wav: 2004/.*\.wav listed in '
                                           r'maestro-v3.0.0.csv but missing'):
        open_dataset('maestro', tmp_path / 'm')
    csv_path = tmp_path / 'm' / 'maestro-v3.0.0.csv'
    csv_path.write_text(MAESTRO_CSV.replace(',2009,', ',MMIX,').replace(',test,', ',dev,'), encoding='utf-8')
    tracks, problems = scan_dataset('maestro', tmp_path / 'm')
    assert [p.cause for p in problems] == [f"{rows[0]['audio_filename']} listed in maestro-v3.0.0.csv but missing",
                                           "maestro-v3.0.0.csv row 2: year 'MMIX' is not a whole number",
                                           "maestro-v3.0.0.csv row 3: split 'dev' is none of train, validation, test"]
    assert [t.meta['canonical_composer'] for t in tracks] == ['Johann Sebastian Bach / Ferruccio Busoni']


def test_data_check_on_real_format_fixtures(tmp_path, capsys):
    "`hsmad data check`: per-split counts on a sound tree (exit 0), every problem of a broken one (exit 1), no root (2)."
    write_redux(tmp_path / 'redux')
    rep = check_dataset('slakh', tmp_path / 'redux')
    assert list(rep['splits']) == ['train', 'validation', 'test'] and rep['omitted'] == 1
    tr = rep['splits']['train']
    assert (tr['tracks'], tr['stems'], tr['midi'], tr['no_midi'], tr['audio'], tr['no_audio']) == (2, 7, 6, 1, 5, 2)
    assert (tr['notes'], tr['drum_notes']) == (9 + 7, 4 + 4) and abs(tr['hours'] - 4 / 3600) < 1e-9
    assert (rep['errors'], rep['warnings'], rep['problems']) == (0, 0, [])
    assert cli_data(['check', str(tmp_path / 'redux'), '--dataset', 'slakh', '--no-progress',
                     '--json', str(tmp_path / 'rep.json')]) == 0
    out = capsys.readouterr().out
    assert 'omitted/: 1 track folder(s) not read' in out and out.rstrip().endswith('problems: none')
    assert json.loads((tmp_path / 'rep.json').read_text())['splits']['train']['notes'] == 16
    assert check_dataset('slakh', tmp_path / 'redux', ['omitted'])['splits']['omitted']['tracks'] == 1
    # broken: a MIDI folder gone, a track with no notes, a rendered stem without MIDI (a warning)
    os.rename(tmp_path / 'redux/train/Track00002/MIDI', tmp_path / 'redux/train/Track00002/MIDI-moved')
    for f in (tmp_path / 'redux/test/Track01880/MIDI').glob('*.mid'): _midi(f, [])
    m = tmp_path / 'redux/validation/Track01501/metadata.yaml'
    meta = yaml.safe_load(m.read_text()); meta['stems']['S00']['midi_saved'] = False; m.write_text(yaml.safe_dump(meta))
    assert cli_data(['check', str(tmp_path / 'redux'), '--dataset', 'slakh', '--no-progress']) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-4:] == ['problems: 2 error(s), 1 warning(s)',
                        f"  error: train/Track00002: the MIDI folder is missing ({tmp_path / 'redux/train/Track00002/MIDI'}; "
                        f"metadata.yaml lists 2 stem(s) in the mix with midi_saved: true)",
                        '  warning: validation/Track01501: S00 (Guitar) is in the mix but its MIDI was not saved '
                        '(midi_saved: false): the note table lacks its notes',
                        '  error: test/Track01880: 2.0 s of audio but no notes in its MIDI (2 file(s) read)']
    maestro_fixture(tmp_path / 'maestro')
    assert cli_data(['check', str(tmp_path / 'maestro'), '--dataset', 'maestro', '--no-progress']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ['split', 'tracks', 'stems', 'midi', 'no-midi', 'audio', 'no-audio', 'notes', 'hours',
                              'notes/h', 'drums']
    assert out[2].split()[:8] == ['train', '2', '2', '2', '0', '2', '0', '4'] and out[-1] == 'problems: none'
    assert cli_data(['check', str(tmp_path / 'nowhere'), '--dataset', 'slakh', '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.startswith('hsmad data: error: ROOT ') and 'no such folder' in err and len(err.strip().splitlines()) == 1
