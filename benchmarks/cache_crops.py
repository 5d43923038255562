"""Random T_H-frame crops per second from a latent cache, on one core.

    .venv/bin/python benchmarks/cache_crops.py [--cache DIR | --data-root MINI] [--T-H 256] [--seconds 5] [--out JSON]

Without --cache, builds a mini dataset (--tracks, default 12) and encodes it with the embedded codec in a
temporary folder. Measures (1) latent crops: `CropSampler.draw` + `LatentCache.crop` (float16 memmap ->
float32 (C, T_H)); (2) full training samples: `CropDataset[i]` (crop, normalisation, SRM, aux labels).
Goal: >= 1000 latent crops/s on one core.
"""
import argparse, json, os, sys, tempfile, time
os.environ.setdefault('OMP_NUM_THREADS', '1')
from pathlib import Path


def rate(fn, seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(); n += 1
    return n / (time.perf_counter() - t0)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument('--cache', default=None); ap.add_argument('--data-root', default=None)
    ap.add_argument('--codec', default='stft'); ap.add_argument('--tracks', type=int, default=12)
    ap.add_argument('--T-H', type=int, default=256); ap.add_argument('--seconds', type=float, default=5.0)
    ap.add_argument('--out', default=None)
    a = ap.parse_args(argv)
    import torch; torch.set_num_threads(1)
    from hsmad.data.cache import LatentCache, CropSampler, encode_dataset
    from hsmad.data.samples import CropDataset
    tmp = None
    if a.cache is None:
        tmp = tempfile.mkdtemp(); a.cache = os.path.join(tmp, 'cache')
        if a.data_root is None:
            from hsmad.data.mini import build_mini
            a.data_root = os.path.join(tmp, 'mini'); build_mini(a.data_root, tracks=a.tracks, seed=0, progress=False)
        encode_dataset('mini', a.data_root, a.codec, a.cache, progress=False)
    c = LatentCache(a.cache)
    smp = CropSampler(c, a.T_H, seed=0)
    crop = lambda: c.crop(*smp.draw(), a.T_H)
    for _ in range(200): crop()   # warm the page cache and the memmaps
    crops = rate(crop, a.seconds)
    ds = CropDataset(c, a.T_H, split=None, length=10**9)
    k = iter(range(10**9))
    samples = rate(lambda: ds[next(k)], a.seconds)
    res = dict(cache=str(a.cache), codec=c.spec['codec'], channels=c.channels, T_H=a.T_H, tracks=len(c),
               latent_crops_per_s=round(crops, 1), training_samples_per_s=round(samples, 1), threads=1)
    print(json.dumps(res))
    if a.out: Path(a.out).write_text(json.dumps(res, indent=2) + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
