"""Parameter counts of every preset and CPU forward/backward times of the HS-MAD network.

    .venv/bin/python benchmarks/model_speed.py                 # counts for all presets, times for tiny and small
    .venv/bin/python benchmarks/model_speed.py --time paper    # also the paper preset (30 s, batch 1: minutes, ~GBs)
    .venv/bin/python benchmarks/model_speed.py --json out.json

A timed step is: HSE once (`encode_structure`), U-Net forward, masked MSE + aux loss, backward; batch
`--batch` (default 1) at the preset's own clip length (`clip_seconds`). Times are the median of
`--repeats` after one warm-up step. Peak memory is the process's maximum resident set size so far.
"""
from __future__ import annotations
import argparse, json, platform, resource, statistics, sys, time

import torch
import torch.nn.functional as F

from hsmad.config import PRESETS, get_preset
from hsmad.data.labels import AuxLabels
from hsmad.model import HSMAD, info


def time_step(name: str, batch: int, repeats: int, variant: str = 'hsmad') -> dict:
    cfg = get_preset(name, variant=variant)
    torch.manual_seed(0)
    model = HSMAD(cfg).train()
    B, T = batch, cfg.T_H
    S = torch.rand(B, 3 * cfg.n_pitches, T) * (torch.rand(B, 1, T) < 0.05)
    z, st, t = torch.randn(B, cfg.latent_channels, T), torch.randn(B, cfg.style_dim), torch.randint(0, 1000, (B,))
    labels = AuxLabels(tempo=torch.full((B,), 4.8), key=torch.zeros(B, dtype=torch.long))
    fwd, bwd = [], []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        feats = model.encode_structure(S)
        pred = model(z, t, feats, st)
        loss = F.mse_loss(pred, z) + model.aux_loss(feats, labels)['total']
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        if i: fwd.append(t1 - t0); bwd.append(t2 - t1)
    return dict(preset=name, variant=variant, batch=B, T_H=T, clip_seconds=cfg.clip_seconds,
                params_total=sum(p.numel() for p in model.parameters()),
                forward_s=statistics.median(fwd), backward_s=statistics.median(bwd),
                peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--time', nargs='*', default=['tiny', 'small'], choices=PRESETS, help='presets to time (default: tiny small)')
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=None, help='torch threads (default: torch default)')
    ap.add_argument('--json', default=None, help='also write the results to this JSON file')
    a = ap.parse_args(argv)
    if a.threads: torch.set_num_threads(a.threads)
    env = dict(torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.processor() or platform.machine())
    print(f"torch {env['torch']}, {env['threads']} threads, {env['machine']}")
    counts = {p: info(get_preset(p)) for p in PRESETS}
    comps = list(next(iter(counts.values()))['params'])
    print(f"\nparameters (M)      " + ''.join(f"{p:>10s}" for p in PRESETS))
    for c in comps + ['params_hse', 'params_unet', 'params_total']:
        get = (lambda d: d['params'][c]) if c in comps else (lambda d: d[c])
        print(f"  {c:18s}" + ''.join(f"{get(counts[p]) / 1e6:10.2f}" for p in PRESETS))
    times = []
    if a.time:
        print(f"\nCPU step at batch {a.batch} (median of {a.repeats}):")
        for p in a.time:
            r = time_step(p, a.batch, a.repeats)
            times.append(r)
            print(f"  {p:6s} T_H={r['T_H']:5d} ({r['clip_seconds']:g} s)  forward {r['forward_s']:7.3f} s  "
                  f"backward {r['backward_s']:7.3f} s  peak RSS {r['peak_rss_gib']:.2f} GiB", flush=True)
    if a.json:
        with open(a.json, 'w') as f: json.dump(dict(env=env, counts=counts, times=times), f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
