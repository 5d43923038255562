"""The latent cache: a real SIGKILL during `hsmad data encode`, then a rerun (nothing lost, nothing redone);
Slakh2100-redux in its real format through `hsmad data encode` (the right notes per track, omitted/ left out, a
missing MIDI folder or an empty score stops the run naming the track); MAESTRO through the encoder (audio beat
tracking, masked downbeats); a DAC cache from a local checkpoint; training batches from a mini cache, aligned to
the frame on real audio."""
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hsmad.data.cache import LatentCache, cli_data, encode_dataset
from hsmad.data.codecs import get_codec
from hsmad.audio import load_audio
from hsmad.midi import Notes
from hsmad.data.samples import CropDataset

from test_data_readers import _exp, _midi, _rows, maestro_fixture, write_redux

SR = 16000


def click_dataset(root, n_tracks, seconds, seed=0):
    "Slakh-layout tracks whose mix is a click (a 2 ms noise burst) at every note onset of the MIDI."
    rng = np.random.default_rng(seed)
    for k in range(n_tracks):
        f = root / 'train' / f'Track{k + 1:05d}'
        (f / 'MIDI').mkdir(parents=True); (f / 'stems').mkdir()
        onsets = np.sort(rng.uniform(0.2, seconds - 0.5, 12))
        y = np.zeros(int(seconds * SR), np.float32)
        for t in onsets:
            i = int(round(t * SR)); y[i:i + 32] += rng.normal(0, 0.3, 32).astype(np.float32)
        sf.write(str(f / 'mix.flac'), y, SR); sf.write(str(f / 'stems' / 'S00.flac'), y, SR)
        notes = [(60 + j % 12, float(t), float(t) + 0.2, 100) for j, t in enumerate(onsets)]
        _midi(f / 'MIDI' / 'S00.mid', notes); _midi(f / 'all_src.mid', notes)
        meta = dict(UUID=str(k), stems=dict(S00=dict(inst_class='Piano', program_num=0, is_drum=False,
                                                     audio_rendered=True, midi_saved=True)))
        import yaml
        (f / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    return root


def _digest(p: Path) -> str:
    return hashlib.sha1(p.read_bytes()).hexdigest()


def test_sigkill_during_encode_then_rerun(tmp_path):
    data = click_dataset(tmp_path / 'data', n_tracks=30, seconds=20.0)
    out = tmp_path / 'cache'
    cmd = [sys.executable, '-c', 'import sys; from hsmad.data.cache import cli_data; sys.exit(cli_data(sys.argv[1:]))',
           'encode', '--dataset', 'slakh', '--data-root', str(data), '--codec', 'stft', '--out', str(out), '--no-progress']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / 'tracks').glob('Track*.json'))) >= 3: break
        time.sleep(0.005)
    assert proc.poll() is None, f"encode finished before it could be killed: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(p.stem for p in (out / 'tracks').glob('Track*.json'))
    assert 3 <= len(done) < 30, len(done)
    assert not (out / 'manifest.json').exists()
    with pytest.raises(FileNotFoundError, match='rerun the same'):
        LatentCache(out)
    # every committed track is whole: its latents load with the recorded frame count
    before = {}
    for tid in done:
        rec = json.loads((out / 'tracks' / f'{tid}.json').read_text())
        z = np.load(out / 'latents' / f'{tid}.npy', mmap_mode='r')
        assert z.shape == (rec['entry']['frames'], 513) and z.dtype == np.float16
        before[tid] = {p: (p.stat().st_mtime_ns, _digest(p)) for p in
                       (out / 'latents' / f'{tid}.npy', out / 'notes' / f'{tid}.npz', out / 'labels' / f'{tid}.npz',
                        out / 'tracks' / f'{tid}.json')}
    # the rerun: finished tracks are skipped (files untouched), the rest encoded, manifest and stats written
    s = encode_dataset('slakh', data, 'stft', out, progress=False)
    assert (s['skipped'], s['encoded'], s['complete']) == (len(done), 30 - len(done), True)
    for tid, files in before.items():
        for p, (mtime, dig) in files.items():
            assert p.stat().st_mtime_ns == mtime and _digest(p) == dig, f'{p} was rewritten'
    assert not list(out.glob('*/.tmp-*'))
    c = LatentCache(out)
    assert len(c) == 30
    # nothing lost or corrupted: every track equals a direct encoding
    codec = get_codec('stft')
    for tid in [done[0], done[-1], 'Track00030']:
        i = c.index[tid]
        z = codec.encode(load_audio(data / 'train' / tid / 'mix.flac', SR)[0])[0].numpy()
        np.testing.assert_array_equal(c.crop(i, 0, c.entries[i].frames)[0], z.astype(np.float16).astype(np.float32))
    # the statistics equal those of an uninterrupted run
    clean = tmp_path / 'clean'
    assert cli_data(['encode', '--dataset', 'slakh', '--data-root', str(data), '--codec', 'stft', '--out', str(clean),
                     '--no-progress']) == 0
    c2 = LatentCache(clean)
    np.testing.assert_allclose(c.mean, c2.mean, rtol=1e-6); np.testing.assert_allclose(c.std, c2.std, rtol=1e-6)
    assert [e.track_id for e in c.entries] == [e.track_id for e in c2.entries]


def test_encode_refuses_another_codec_in_the_same_cache(tmp_path):
    data = click_dataset(tmp_path / 'data', 1, 2.0)
    encode_dataset('slakh', data, 'stft', tmp_path / 'c', progress=False)
    from hsmad.io import atomic_write
    spec = json.loads((tmp_path / 'c' / 'cache.json').read_text()); spec['channels'] = 80
    atomic_write(tmp_path / 'c' / 'cache.json', json.dumps(spec))
    with pytest.raises(ValueError, match='use another --out'):
        encode_dataset('slakh', data, 'stft', tmp_path / 'c', progress=False)


def test_encode_slakh_redux_caches_the_right_notes(tmp_path, capsys):
    "The headline path on the real format: every track's cached note table is its stems' in the mix; omitted/ only when named."
    exp = write_redux(tmp_path / 'redux')
    enc = ['encode', '--dataset', 'slakh', '--data-root', str(tmp_path / 'redux'), '--codec', 'stft', '--no-progress']
    assert cli_data(enc + ['--out', str(tmp_path / 'c')]) == 0
    c = LatentCache(tmp_path / 'c')
    assert [e.track_id for e in c.entries] == ['Track01880', 'Track00001', 'Track00002', 'Track01501']   # by split, id
    assert {e.track_id: len(c.notes(i)) for i, e in enumerate(c.entries)} == dict(
        Track00001=9, Track00002=7, Track01501=5, Track01880=7)
    for i, e in enumerate(c.entries):
        assert _rows(c.notes(i)) == _exp(exp[e.track_id]), e.track_id
        assert e.notes_complete and e.frames == 2 * 16000 // 256 + 1
    assert c.spec['sustain_pedal'] is True
    assert cli_data(enc + ['--out', str(tmp_path / 'o'), '--splits', 'omitted']) == 0
    o = LatentCache(tmp_path / 'o')
    assert [(e.track_id, e.split, len(o.notes(0))) for e in o.entries] == [('Track00150', 'omitted', 7)]
    # the other note-end rule is another cache, not a mix in this one
    assert cli_data(enc + ['--out', str(tmp_path / 'c'), '--no-sustain-pedal']) == 2
    assert 'use another --out' in capsys.readouterr().err


def test_encode_stops_naming_the_track(tmp_path, capsys):
    "A missing MIDI folder fails before anything is written; an empty score stops the run at that track, resumably."
    write_redux(tmp_path / 'redux')
    os.rename(tmp_path / 'redux/train/Track00002/MIDI', tmp_path / 'redux/train/Track00002/MIDI-moved')
    enc = ['encode', '--dataset', 'slakh', '--data-root', str(tmp_path / 'redux'), '--codec', 'stft', '--no-progress',
           '--out', str(tmp_path / 'c')]
    assert cli_data(enc) == 2
    err = capsys.readouterr().err
    assert err.startswith('hsmad data: error: train/Track00002: the MIDI folder is missing')
    assert f"`hsmad data check {tmp_path / 'redux'} --dataset slakh` lists every problem" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / 'c').exists()
    os.rename(tmp_path / 'redux/train/Track00002/MIDI-moved', tmp_path / 'redux/train/Track00002/MIDI')
    scores = {f: f.read_bytes() for f in (tmp_path / 'redux/test/Track01880/MIDI').glob('*.mid')}
    for f in scores: _midi(f, [])
    assert cli_data(enc) == 2
    err = capsys.readouterr().err
    assert err.startswith('hsmad data: error: test/Track01880: 2.0 s of audio but no notes')
    assert sorted(p.stem for p in (tmp_path / 'c' / 'tracks').glob('*.json')) == ['Track00001', 'Track00002', 'Track01501']
    assert not (tmp_path / 'c' / 'manifest.json').exists() and not (tmp_path / 'c' / 'latents' / 'Track01880.npy').exists()
    for f, b in scores.items(): f.write_bytes(b)
    s = encode_dataset('slakh', tmp_path / 'redux', 'stft', tmp_path / 'c', progress=False)
    assert (s['encoded'], s['skipped'], s['complete']) == (1, 3, True)


def test_alignment_on_real_audio_through_the_cache(tmp_path):
    """A click at a note onset: in a crop at any offset, the latent energy jump and the SRM onset peak sit
    on the same frame, round(onset * frame_rate) - start (+1 at most for the click's own rise)."""
    data = click_dataset(tmp_path / 'data', 1, 12.0, seed=1)
    encode_dataset('slakh', data, 'stft', tmp_path / 'c', progress=False)
    c = LatentCache(tmp_path / 'c')
    ds = CropDataset(c, T_H=128, normalize=False)
    notes = c.notes(0)
    fr = c.frame_rate
    for start in [0, 37, 100, 301, 555]:
        s = ds.sample_at(0, start)
        energy = torch.as_tensor(s.latents).exp().sum(0)          # linear magnitude summed over bins
        for t in notes.start[(notes.start * fr >= start + 2) & (notes.start * fr < start + 126)]:
            h = int(round(t * fr)) - start
            assert int(s.S_sync[:128, h - 2:h + 3].sum(0).argmax()) == 2          # SRM onset peak on frame h
            assert h - 1 <= int(energy[h - 2:h + 3].argmax()) + h - 2 <= h + 1    # audio energy peaks there too


def test_maestro_encode_uses_audio_beats(tmp_path):
    "MAESTRO has no real tempo map: beats from madmom on the audio, downbeats masked, tempo from the beats."
    root = tmp_path / 'maestro'
    rows = maestro_fixture(root)
    # replace the first performance by 12 s of a 120 BPM click track (stereo 48 kHz)
    t = np.arange(12 * 48000) / 48000
    y = np.zeros_like(t)
    for b in np.arange(0.5, 12, 0.5):
        i = int(b * 48000); y[i:i + 480] = np.sin(2 * np.pi * 1000 * t[:480]) * np.hanning(480)
    sf.write(str(root / rows[0]['audio_filename']), np.stack([y, y], 1).astype(np.float32) * 0.5, 48000)
    _midi(root / rows[0]['midi_filename'], [(60 + i % 5, 0.5 * i, 0.5 * i + 0.4, 80) for i in range(1, 23)])
    encode_dataset('maestro', root, 'stft', tmp_path / 'c', progress=False, splits=['train'])
    c = LatentCache(tmp_path / 'c')
    i = c.index[Path(rows[0]['audio_filename']).stem]
    lab = c.labels(i)
    assert lab.beat_source == 'audio' and lab.downbeats is None and lab.key is not None
    assert abs(lab.tempo_bpm[0] - 120) < 3
    import mir_eval
    assert mir_eval.beat.f_measure(np.arange(0.5, 12, 0.5), lab.beats) > 0.9
    ds = CropDataset(c, T_H=256, split='train')
    b = ds.collate([ds.sample_at(i, 100)])
    assert b.aux.beat_mask[0, 0].all() and not b.aux.beat_mask[0, 1].any()
    assert b.aux.tempo_mask[0] and abs(math.exp(float(b.aux.tempo[0])) - 120) < 3
    assert b.style_text == ['Classical Piano Performance']


def test_dac_cache_from_local_checkpoint(tmp_path):
    import dac
    m = dac.DAC(encoder_dim=4, encoder_rates=[2, 4, 8, 8], decoder_dim=32, decoder_rates=[8, 8, 4, 2], n_codebooks=2,
                codebook_size=8, sample_rate=44100)
    m.save(str(tmp_path / 'dac.pth'))
    data = click_dataset(tmp_path / 'data', 2, 1.5)
    with pytest.raises(FileNotFoundError, match='descript-audio-codec/releases'):
        encode_dataset('slakh', data, 'dac', tmp_path / 'bad', progress=False)
    assert cli_data(['encode', '--dataset', 'slakh', '--data-root', str(data), '--codec', 'dac', '--codec-path',
                     str(tmp_path / 'dac.pth'), '--out', str(tmp_path / 'c'), '--no-progress']) == 0
    c = LatentCache(tmp_path / 'c')
    assert (c.sample_rate, c.hop, c.channels) == (44100, 512, 64)
    assert c.entries[0].frames == math.ceil(1.5 * 44100 / 512)       # 16 kHz audio resampled to 44.1 kHz
    ds = CropDataset(c, T_H=64)
    b = ds.collate([ds[0], ds[1]])
    assert b.latents.shape == (2, 64, 64) and b.aux.chroma.shape == (2, 12, 16)
    assert abs(b.frame_rate - 86.1328125) < 1e-9


def test_training_batch_from_mini(tmp_path):
    "Build mini, encode, batch with the embedded style encoder: shapes, normalisation, masks, labels."
    from hsmad.data.mini import build_mini
    from hsmad.data.style import get_style_encoder
    from hsmad.config import get_preset
    build_mini(tmp_path / 'mini', tracks=3, seed=0, max_seconds=6.0, workers=1, progress=False)
    encode_dataset('mini', tmp_path / 'mini', 'stft', tmp_path / 'c', progress=False)
    c = LatentCache(tmp_path / 'c')
    cfg = get_preset('tiny')
    style = get_style_encoder(cfg.style_encoder)
    ds = CropDataset(c, T_H=cfg.T_H, split=None, style_encoder=style, R1=cfg.R1, R2=cfg.R2)
    loader = ds.loader(batch_size=3, num_workers=0)
    b = next(iter(loader))
    assert b.latents.shape == (3, cfg.latent_channels, cfg.T_H) and b.S_sync.shape == (3, 384, cfg.T_H)
    assert b.style_emb.shape == (3, cfg.style_dim)
    assert b.aux.chroma.shape == (3, 12, cfg.T_H // 4) and b.aux.key.dtype == torch.long
    assert bool(b.aux.key_mask.all()) and bool(b.aux.tempo_mask.all())      # mini knows key and tempo
    assert (b.aux.key >= 0).all() and (b.aux.key < 24).all()
    # mini's tracks (6 s, 376 frames) are longer than T_H = 256: no padding
    assert b.frame_mask.all()
    # worker processes give the same crops as the main process (seeded by (seed, epoch, index))
    b2 = next(iter(ds.loader(batch_size=3, num_workers=2)))
    assert b2.track_ids == b.track_ids and torch.equal(b2.starts, b.starts) and torch.equal(b2.latents, b.latents)
    # normalised latents over a whole track have mean ~0 and std ~1 where the data varies
    i = c.index['Track00001']
    z = c.normalize(c.crop(i, 0, c.entries[i].frames)[0])
    assert abs(float(z.mean())) < 0.1 and 0.8 < float(z.std()) < 1.2
    # the key label is the one music21 gave the score
    from hsmad.data.labels import key_index
    meta_key = c.entries[c.index[b.track_ids[0]]].meta['key']
    assert int(b.aux.key[0]) == key_index(meta_key)
    # beats from the mini MIDI's tempo map fall every 60/bpm seconds
    bpm = c.entries[c.index[b.track_ids[0]]].meta['bpm']
    assert abs(math.exp(float(b.aux.tempo[0])) - bpm) < 1e-3
