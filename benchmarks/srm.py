"""SRM speed at paper geometry: vectorised `render_srm` against the per-note reference, one core.

    .venv/bin/python benchmarks/srm.py [--notes 2000] [--seconds 30] [--repeats 200]

Prints renders/s of both, their ratio, and the largest difference between them (the reference is
truncated at the same radius, so the two compute the same function).
"""
import argparse, time
import numpy as np
import torch
from hsmad.config import get_preset
from hsmad.midi import Notes
from hsmad.srm import render_srm, render_srm_reference


def dense_piece(n_notes: int, seconds: float, seed: int = 0) -> Notes:
    "A dense random piece: `n_notes` notes over `seconds`, lengths 20 ms to 2 s, 60 pitches, drums included."
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, seconds, n_notes)
    end = start + rng.uniform(0.02, 2.0, n_notes)
    return Notes.from_arrays(rng.integers(30, 90, n_notes), start, end, rng.integers(1, 128, n_notes),
                             program=rng.integers(0, 128, n_notes), is_drum=rng.random(n_notes) < 0.1)


def rate(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats): fn()
    return repeats / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--notes', type=int, default=2000)
    ap.add_argument('--seconds', type=float, default=30.0)
    ap.add_argument('--repeats', type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    cfg = get_preset('paper')
    geo = cfg.geometry
    T, fr = geo.T_H(a.seconds), geo.frame_rate
    notes = dense_piece(a.notes, a.seconds)
    fast = rate(lambda: render_srm(notes, T, fr), a.repeats)
    ref_repeats = max(3, a.repeats // 50)
    slow = rate(lambda: render_srm_reference(notes, T, fr, radius=cfg.srm_radius), ref_repeats)
    diff = np.abs(render_srm(notes, T, fr, dtype=torch.float64).numpy() - render_srm_reference(notes, T, fr, radius=cfg.srm_radius)).max()
    print(f"SRM benchmark: {len(notes)} notes, {a.seconds:g} s, {fr:.2f} frames/s (T_H={T}), 1 thread, torch {torch.__version__}")
    print(f"  render_srm (vectorised):  {fast:8.1f} renders/s")
    print(f"  per-note reference:       {slow:8.2f} renders/s")
    print(f"  speed-up:                 {fast / slow:8.1f}x")
    print(f"  max |difference|:         {diff:.3e}")


if __name__ == '__main__':
    main()
