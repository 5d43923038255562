"""Sampling cost of one guided generation: HSE run once vs at every step, one 3B forward vs three B forwards.

    .venv/bin/python benchmarks/sampling.py                       # tiny preset, 4.096 s clip, 10 steps, batch 1
    .venv/bin/python benchmarks/sampling.py --preset small --steps 25 --json benchmarks/results/sampling_small.json

Four configurations of `hsmad.diffusion.sample` on the same random-weight model, input and seed:
`cached+batched` (the default: HSE once per generation, one forward of batch 3B per step), `uncached+batched`
(HSE re-run at every step), `cached+separate` (three forwards of batch B per step), `uncached+separate`.
Each is timed as the median of `--repeats` generations after one warm-up; the four results are checked to agree.
Prints seconds per generation and the ratios to the default; `--json` writes them.
"""
from __future__ import annotations
import argparse, json, os, platform, statistics, time

import torch

from hsmad.config import PRESETS, get_preset
from hsmad.model import HSMAD
from hsmad.diffusion import sample


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default='tiny', choices=PRESETS)
    ap.add_argument('--steps', type=int, default=10)
    ap.add_argument('--batch', type=int, default=1)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--sampler', default='dpm++')
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--json', default=None)
    a = ap.parse_args(argv)
    cfg = get_preset(a.preset)
    torch.manual_seed(0)
    model = HSMAD(cfg).to(a.device).eval()
    B, T = a.batch, cfg.T_H
    S = (torch.rand(B, 3 * cfg.n_pitches, T) * (torch.rand(B, 1, T) < 0.05)).to(a.device)
    st = torch.nn.functional.normalize(torch.randn(B, cfg.style_dim), dim=-1).to(a.device)
    with torch.no_grad():        # the parts, for the report
        t0 = time.perf_counter(); feats = model.encode_structure(S); t_hse = time.perf_counter() - t0
    res, outs = {}, {}
    for cache in (True, False):
        for batched in (True, False):
            key = f"{'cached' if cache else 'uncached'}+{'batched' if batched else 'separate'}"
            run = lambda: sample(model, S, st, steps=a.steps, sampler=a.sampler, generator=torch.Generator().manual_seed(0),
                                 cache_structure=cache, batched=batched)
            outs[key] = run()                                    # warm-up
            ts = []
            for _ in range(a.repeats):
                if a.device.startswith('cuda'): torch.cuda.synchronize()
                t0 = time.perf_counter(); run()
                if a.device.startswith('cuda'): torch.cuda.synchronize()
                ts.append(time.perf_counter() - t0)
            res[key] = statistics.median(ts)
    ref = outs['cached+batched']
    agree = {k: float((v - ref).abs().max()) for k, v in outs.items()}
    base = res['cached+batched']
    out = dict(preset=a.preset, T_H=T, batch=B, steps=a.steps, sampler=a.sampler, device=a.device,
               threads=torch.get_num_threads(), host=platform.node(), load_avg=os.getloadavg(), hse_seconds=t_hse,
               seconds_per_generation=res, ratio_to_default={k: v / base for k, v in res.items()}, max_abs_diff=agree)
    print(f"preset {a.preset}: T_H={T}, batch {B}, {a.steps} {a.sampler} steps, {a.device}, {out['threads']} threads, "
          f"load {out['load_avg'][0]:.1f}; one HSE pass {t_hse * 1e3:.0f} ms")
    for k, v in res.items():
        print(f"  {k:18s} {v:8.3f} s/generation   x{v / base:5.2f}   max|diff| {agree[k]:.1e}")
    print(f"  HSE caching saves x{res['uncached+batched'] / base:.2f}; one 3B forward vs three B forwards: "
          f"x{res['cached+separate'] / base:.2f}")
    if a.json:
        os.makedirs(os.path.dirname(a.json) or '.', exist_ok=True)
        with open(a.json, 'w') as f: json.dump(out, f, indent=2)
    return out


if __name__ == '__main__': main()
