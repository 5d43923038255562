"""Time and size of the default mini build (`hsmad data build-mini`), and of its encoding with the embedded codec.

    .venv/bin/python benchmarks/mini_build.py [--tracks 60] [--workers 2] [--out JSON]
"""
import argparse, json, os, shutil, sys, tempfile, time
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--tracks', type=int, default=60); ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--codec', default='stft'); ap.add_argument('--keep', default=None, help='build here and keep it')
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    from hsmad.data.mini import build_mini
    from hsmad.data.cache import encode_dataset
    from hsmad.data.datasets import open_dataset
    root = Path(a.keep or tempfile.mkdtemp())
    rec = build_mini(root / 'mini', tracks=a.tracks, seed=0, workers=a.workers, progress=False)
    hours = sum(t.duration for t in open_dataset('mini', root / 'mini')) / 3600
    t0 = time.time()
    s = encode_dataset('mini', root / 'mini', a.codec, root / 'cache', progress=False)
    cache_bytes = sum(f.stat().st_size for f in (root / 'cache').rglob('*') if f.is_file())
    res = dict(tracks=a.tracks, workers=a.workers, cpus=os.cpu_count(), build_seconds=rec['seconds'],
               dataset_mb=round(rec['bytes'] / 2**20, 1), audio_hours=round(hours, 3), splits=rec['splits'],
               codec=a.codec, encode_seconds=round(time.time() - t0, 1), cache_mb=round(cache_bytes / 2**20, 1))
    print(json.dumps(res))
    if a.out: Path(a.out).write_text(json.dumps(res, indent=2) + '\n')
    if not a.keep: shutil.rmtree(root)
    return 0


if __name__ == '__main__':
    sys.exit(main())
