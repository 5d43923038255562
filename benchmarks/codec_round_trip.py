"""Round-trip basic-pitch note F1 of a codec over a mini (Slakh-layout) split.

F1 (onset 50 ms, pitch, offsets ignored; mir_eval) of basic-pitch's transcription of `decode(encode(x))`
against the track's MIDI, next to the same on the original mix `x`; the ratio is the codec's ceiling on
every structure metric.

    .venv/bin/python benchmarks/codec_round_trip.py --data-root DIR [--split test] [--codec stft] [--out JSON]
"""
from __future__ import annotations
import argparse, json, os, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, soundfile as sf

def transcribe(wave: np.ndarray, sr: int):
    "basic-pitch (bundled ONNX model) note events -> (intervals (n,2), pitches Hz (n,))."
    from basic_pitch.inference import predict
    from basic_pitch import ICASSP_2022_MODEL_PATH
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, 'x.wav'); sf.write(p, wave, sr)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            _, _, ev = predict(p, ICASSP_2022_MODEL_PATH)
    if not ev: return np.zeros((0, 2)), np.zeros(0)
    iv = np.array([[e[0], e[1]] for e in ev]); pi = np.array([440.0 * 2 ** ((e[2] - 69) / 12) for e in ev])
    return iv, pi

def note_f1(ref_iv, ref_p, est_iv, est_p) -> float:
    import mir_eval
    if len(est_iv) == 0 or len(ref_iv) == 0: return 0.0
    return float(mir_eval.transcription.precision_recall_f1_overlap(ref_iv, ref_p, est_iv, est_p, onset_tolerance=0.05,
                                                                     offset_ratio=None)[2])

def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--data-root', required=True); ap.add_argument('--split', default='test')
    ap.add_argument('--codec', default='stft'); ap.add_argument('--codec-path', default=None)
    ap.add_argument('--gl-iters', type=int, default=None); ap.add_argument('--max-seconds', type=float, default=None)
    ap.add_argument('--n-fft', type=int, default=None); ap.add_argument('--n-bins', type=int, default=None)
    ap.add_argument('--limit', type=int, default=None, help='first N tracks of the split')
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    from hsmad.data.codecs import get_codec
    from hsmad.audio import load_audio
    from hsmad.data.datasets import open_dataset
    kw = {k: v for k, v in dict(gl_iters=a.gl_iters, n_fft=a.n_fft, n_bins=a.n_bins).items() if v is not None}
    codec = get_codec(a.codec, a.codec_path, **kw)
    tracks = [t for t in open_dataset('slakh', a.data_root) if t.split == a.split][:a.limit]
    rows = []
    for t in tracks:
        x, _ = load_audio(t.audio, codec.sample_rate)
        if a.max_seconds: x = x[:int(a.max_seconds * codec.sample_rate)]
        notes = t.load_notes().drop_drums()
        dur = len(x) / codec.sample_rate
        keep = notes.start < dur - 0.1
        ref_iv = np.stack([notes.start[keep], notes.end[keep]], 1); ref_p = 440.0 * 2 ** ((notes.pitch[keep] - 69) / 12)
        t0 = time.time(); y = codec.decode(codec.encode(x), length=len(x))[0].numpy(); dt = time.time() - t0
        f_orig = note_f1(ref_iv, ref_p, *transcribe(x, codec.sample_rate))
        f_rt = note_f1(ref_iv, ref_p, *transcribe(y, codec.sample_rate))
        rows.append(dict(track=t.track_id, seconds=round(dur, 2), f1_original=round(f_orig, 4), f1_round_trip=round(f_rt, 4),
                         codec_seconds=round(dt, 3)))
        print(json.dumps(rows[-1]), flush=True)
    fo, fr = float(np.mean([r['f1_original'] for r in rows])), float(np.mean([r['f1_round_trip'] for r in rows]))
    res = dict(codec=repr(codec), codec_kwargs=kw, split=a.split, tracks=len(rows), f1_original=round(fo, 4), f1_round_trip=round(fr, 4),
               ratio=round(fr / fo, 4) if fo else None, per_track=rows)
    print(json.dumps({k: v for k, v in res.items() if k != 'per_track'}))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True); Path(a.out).write_text(json.dumps(res, indent=2) + '\n')
    return 0

if __name__ == '__main__':
    sys.exit(main())
