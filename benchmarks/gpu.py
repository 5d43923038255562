"""The paper-scale GPU path, measured: FLOPs, the training step, the host's share, 30 s of generation, the attention
kernel, a one-rank NCCL trainer smoke. One GPU in under 5 minutes; the CPU at the tiny preset prints every figure.

    .venv/bin/python benchmarks/gpu.py                          # CUDA if available (paper preset), else CPU (tiny preset)
    .venv/bin/python benchmarks/gpu.py --preset paper --micro 1 4 8 16 --json benchmarks/results/gpu_paper_h100.json
    .venv/bin/python benchmarks/gpu.py --host-only --preset paper   # the host's work per micro-batch only (runs on old code too)

Sections (each prints its figures; `--json` writes them all, default `benchmarks/results/gpu_<preset>_<device>.json`):

1. FLOPs per sample, counted on the meta device (`torch.utils.flop_counter`) at the preset's clip length and at the paper
   preset's 30 s: HSE forward, U-Net forward, one training sample (objective forward + backward), DAC decode of 30 s.
2. Host work per micro-batch, on one CPU core, on a synthetic cache of the preset's geometry: crop + SRM + labels +
   collate per crop, and the noise of one crop drawn on the CPU (what the trainer did) and on the device (what it does).
   `host old` = the serial main-thread work of the old loop (data and noise in the main thread, workers=0); `host new` =
   the data spread over `--workers` DataLoader workers (off the main thread, overlapped with the GPU) + the noise launch.
3. The training step (objective forward + backward, clipping, AdamW, EMA) at each `--micro` batch on the device, batch
   resident on the device: ms (median), peak memory, TFLOP/s, MFU against `--peak-tflops` (known GPUs looked up), and the
   projected days of the paper's budget (1 M steps at global batch 128 on 8 GPUs) GPU-bound, as written before (step +
   old host work, serial) and now (max of step and new host work). On a CPU without a peak the projection uses the
   counted FLOPs at `--assume-mfu` of `--assume-gpu` instead.
4. Generating 30 s (25 DPM-Solver++ steps, 3-way CFG, one HSE pass) including the codec's decode, fp32 and bf16, eager
   and compiled (`torch.compile` of the HSE, the U-Net and the DAC decoder); first call (with compilation) and the median
   of `--reps` after it.
5. Which `scaled_dot_product_attention` kernel ran (profiler op names) for a full-length batch and a masked one.
6. A one-rank NCCL trainer smoke: `torchrun --nproc_per_node=1 -m hsmad.train` for 3 steps on CUDA (skipped on a CPU,
   where tests/test_gpu_path.py and tests/test_train.py run the gloo equivalents).

Timing on a shared machine is noisy: compare figures from one run, and repeat.
"""
from __future__ import annotations
import argparse, contextlib, inspect, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import numpy as np
import torch

from hsmad.config import get_preset, PRESETS
from hsmad.diffusion import draw_noise

PEAK_BF16_TFLOPS = {'H200': 989.0, 'H100 SXM': 989.0, 'H100 80GB HBM3': 989.0, 'H100 PCIe': 756.0, 'H100': 756.0,
                    'A100': 312.0, 'L40S': 362.0}   # dense bf16 tensor-core peaks (vendor data sheets)
PAPER = dict(steps=1_000_000, global_batch=128, gpus=8)
T0 = time.time()


def log(*a): print(*a, flush=True)


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)


def timed(fn, dev, reps: int, warmup: int = 1) -> tuple[float, float]:
    "(first call seconds, median of `reps` later calls)."
    sync(dev); t = time.perf_counter(); fn(); sync(dev); first = time.perf_counter() - t
    for _ in range(warmup - 1): fn()
    ts = []
    for _ in range(reps):
        sync(dev); t = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter() - t)
    return first, statistics.median(ts)


# ---------------------------------------------------------------- 1. FLOPs
def count_flops(cfg, seconds: float | None = None) -> dict:
    "TFLOP of one sample (batch 1) at `seconds` (default: the preset's clip), on the meta device."
    from torch.utils.flop_counter import FlopCounterMode
    from hsmad.model import HSMAD
    from hsmad.diffusion import train_scheduler, CFGDropout, diffusion_loss
    from hsmad.data.labels import AuxLabels
    T = cfg.geometry.T_H(seconds) if seconds else cfg.T_H
    out = dict(T_H=T, seconds=seconds or cfg.clip_seconds)
    with torch.device('meta'):
        m = HSMAD(cfg)
        S, z = torch.zeros(1, 3 * cfg.n_pitches, T), torch.zeros(1, cfg.latent_channels, T)
        st, t = torch.zeros(1, cfg.style_dim), torch.zeros(1, dtype=torch.long)
        with FlopCounterMode(display=False) as fc: f = m.encode_structure(S)
        out['hse_fwd'] = fc.get_total_flops() / 1e12
        with FlopCounterMode(display=False) as fc: m(z, t, f, st)
        out['unet_fwd'] = fc.get_total_flops() / 1e12
        draw = draw_noise(0, [0], cfg.latent_channels, T, cfg.train_timesteps)
        draw = type(draw)(*(x.to('meta') for x in (draw.t, draw.noise, draw.u_H, draw.u_S)))
        with FlopCounterMode(display=False) as fc:
            L = diffusion_loss(m, train_scheduler(cfg), z, S, None, st, draw, CFGDropout(0.1, 0.1),
                               AuxLabels(tempo=torch.zeros(1), key=torch.zeros(1, dtype=torch.long)))
            L['loss'].backward()
        out['train_sample'] = fc.get_total_flops() / 1e12
        out['params'] = sum(p.numel() for p in m.parameters())
    try:
        import dac
        with torch.device('meta'):
            d = dac.DAC()
            with FlopCounterMode(display=False) as fc: d.decode(torch.zeros(1, d.latent_dim, cfg.geometry.T_H(seconds or cfg.clip_seconds)))
        out['dac_decode'] = fc.get_total_flops() / 1e12
    except Exception as e:
        out['dac_decode'] = None; out['dac_error'] = f"{type(e).__name__}: {e}"[:200]
    return out


def generation_flops(fl: dict, steps: int = 25) -> float:
    "TFLOP of one guided generation: the HSE once, `steps` U-Net forwards of batch 3, the DAC decode."
    return fl['hse_fwd'] + 3 * steps * fl['unet_fwd'] + (fl['dac_decode'] or 0.0)


# ---------------------------------------------------------------- 2. host work
def synthetic_cache(root: Path, cfg, tracks: int = 4, seconds: float = 90.0):
    "A cache of the preset's geometry: random latents, ~10 notes/s (0.1-1 s long), beats every 0.5 s, a key."
    from hsmad.testing import write_synthetic_cache
    from hsmad.midi import Notes
    from hsmad.data.labels import TrackLabels
    from hsmad.data.cache import LatentCache
    rng = np.random.default_rng(0)
    frames = int(seconds * cfg.sample_rate / cfg.hop)
    rows = []
    for k in range(tracks):
        n = int(10 * seconds)
        s = np.sort(rng.uniform(0, seconds - 1, n))
        notes = Notes.from_arrays(rng.integers(36, 96, n), s, s + rng.uniform(0.1, 1.0, n), rng.integers(30, 120, n))
        lab = TrackLabels(np.arange(0, seconds, 0.5), np.arange(0, seconds, 2.0), np.zeros(1), np.array([120.0]), 3, 'midi')
        rows.append((f'S{k:03d}', 'train', frames, notes, lab))
    if not (root / 'manifest.json').is_file():
        write_synthetic_cache(root, rows, cfg.sample_rate, cfg.hop, cfg.latent_channels)
    return LatentCache(root)


def host_work(cfg, cache, dev, crops: int, workers: int) -> dict:
    "Per crop: data (crop + SRM + labels + collate) and noise (CPU, device) seconds on one core; a worker-fed drain."
    from hsmad.data.samples import CropDataset
    from hsmad.train import StepBatches
    torch.set_num_threads(1)
    ds = CropDataset(cache, cfg.T_H, 'train', cfg.R1, cfg.R2, style_encoder=None, length=2 ** 62, seed=cfg.seed,
                     srm_binary=cfg.srm_binary, srm_sigma_frames=cfg.srm_sigma_frames, srm_radius=cfg.srm_radius)
    ds.collate([ds[i] for i in range(2)])                                   # warm the per-track caches
    t = time.perf_counter(); b = ds.collate([ds[i] for i in range(100, 100 + crops)]); data = (time.perf_counter() - t) / crops
    T, C = b.latents.shape[-1], cfg.latent_channels
    t = time.perf_counter(); draw_noise(cfg.seed, range(crops), C, T, cfg.train_timesteps); noise_cpu = (time.perf_counter() - t) / crops
    out = dict(crops=crops, data_s=data, noise_cpu_s=noise_cpu, noise_dev_host_s=None, noise_dev_total_s=None, drain_s=None)
    if 'device' in inspect.signature(draw_noise).parameters and dev.type == 'cuda':
        draw_noise(cfg.seed, range(crops), C, T, cfg.train_timesteps, dev); sync(dev)
        sync(dev); t = time.perf_counter(); draw_noise(cfg.seed, range(crops), C, T, cfg.train_timesteps, dev)
        out['noise_dev_host_s'] = (time.perf_counter() - t) / crops
        sync(dev); out['noise_dev_total_s'] = (time.perf_counter() - t) / crops
        t = time.perf_counter(); b.to(dev, non_blocking=False); sync(dev); out['h2d_s'] = (time.perf_counter() - t) / crops
    if workers > 0:                                                         # the main thread's wait, workers feeding it
        micro = max(1, min(crops, 16))
        sb = StepBatches(0, 8, micro, micro, 1, 0)
        loader = torch.utils.data.DataLoader(ds, batch_sampler=sb, collate_fn=ds.collate, num_workers=workers, prefetch_factor=2)
        it = iter(loader); next(it)
        t = time.perf_counter(); n = sum(1 for _ in it); out['drain_s'] = (time.perf_counter() - t) / (n * micro)
        out['drain_workers'] = workers
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    return out


def host_per_micro(h: dict, mb: int, workers: int) -> tuple[float, float]:
    "(old, new) host seconds per micro-batch of `mb` crops (see the module header)."
    old = mb * (h['data_s'] + h['noise_cpu_s'])
    new = mb * h['data_s'] / max(1, workers) + mb * (h['noise_dev_host_s'] or 0.0)
    return old, new


# ---------------------------------------------------------------- 3. training step
def train_step(cfg, dev, mb: int, reps: int, checkpointing: bool = False) -> dict:
    "One optimiser step at micro-batch `mb` on `dev` (bf16 autocast on CUDA), batch resident on the device."
    from hsmad.model import HSMAD
    from hsmad.train import _Objective, activation_checkpointing, lr_schedule, ema_of
    from hsmad.data.labels import AuxLabels
    torch.manual_seed(0)
    m = HSMAD(cfg).to(dev).train()
    if checkpointing: activation_checkpointing(m)
    obj = _Objective(m, cfg)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-5, weight_decay=0.01, fused=True if dev.type == 'cuda' else None)
    sched, ema = lr_schedule(opt, cfg.replace(warmup_steps=0)), ema_of(m, cfg)
    T, C, TM = cfg.T_H, cfg.latent_channels, cfg.geometry.T_M(cfg.T_H)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(mb, C, cfg.geometry.padded(T), generator=g)[..., :T].to(dev)
    S = ((torch.rand(mb, 3 * cfg.n_pitches, T, generator=g) < 0.02).float()).to(dev)
    st = torch.nn.functional.normalize(torch.randn(mb, cfg.style_dim, generator=g), dim=-1).to(dev)
    on = lambda *s: torch.ones(*s, dtype=torch.bool, device=dev)
    aux = AuxLabels(torch.zeros(mb, 12, TM, device=dev), on(mb, TM), torch.zeros(mb, 2, TM, device=dev), on(mb, 2, TM),
                    torch.full((mb,), 4.8, device=dev), on(mb), torch.zeros(mb, dtype=torch.long, device=dev), on(mb))
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if dev.type == 'cuda' else contextlib.nullcontext()
    params = [p for p in m.parameters() if p.requires_grad]
    k = [0]
    def step():
        draw = draw_noise(0, range(k[0] * mb, (k[0] + 1) * mb), C, T, cfg.train_timesteps, dev); k[0] += 1
        opt.zero_grad(set_to_none=True)
        with amp: L = obj(z, S, None, st, draw, aux)
        L['loss'].backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step(); sched.step(); ema.step(m.parameters())
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats(dev)
    first, med = timed(step, dev, reps, warmup=2)
    peak = torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.type == 'cuda' else None
    del m, obj, opt, ema
    if dev.type == 'cuda': torch.cuda.empty_cache()
    return dict(micro_batch=mb, checkpointing=checkpointing, first_s=first, step_s=med, peak_gib=peak)


# ---------------------------------------------------------------- 4. generation
def make_codec(cfg, dev, tmp: Path, precision: str):
    from hsmad.data.codecs import get_codec
    if cfg.codec != 'dac': return get_codec(cfg.codec)
    import dac
    p = tmp / 'dac_random.pth'
    if not p.is_file(): torch.manual_seed(0); dac.DAC().save(str(p))     # random weights: the real model's size and cost
    return get_codec('dac', p, device=dev, precision=precision)


def generation(cfg, dev, seconds: float, steps: int, precision: str, compiled: bool, reps: int, tmp: Path) -> dict:
    "30 s of audio: `sample` (25 steps, 3-way CFG) and the codec's decode; first call and median of `reps`."
    from hsmad.model import HSMAD
    from hsmad.diffusion import sample
    torch.manual_seed(0)
    m = HSMAD(cfg).to(dev).eval()
    codec = make_codec(cfg, dev, tmp, precision)
    if compiled:
        m.hse.compile(); m.unet.compile()
        if hasattr(codec, 'model'): codec.model.decoder.compile()
    T = cfg.geometry.T_H(seconds)
    g = torch.Generator().manual_seed(0)
    S = ((torch.rand(1, 3 * cfg.n_pitches, T, generator=g) < 0.02).float()).to(dev)
    st = torch.nn.functional.normalize(torch.randn(1, cfg.style_dim, generator=g), dim=-1).to(dev)
    parts = {}
    def run():
        sync(dev); t = time.perf_counter()
        z = sample(m, S, st, steps=steps, generator=torch.Generator().manual_seed(0), precision=precision)
        sync(dev); t1 = time.perf_counter()
        y = codec.decode(z.float().cpu() if not hasattr(codec, 'model') else z.float(), length=int(seconds * cfg.sample_rate))
        sync(dev); parts['sample_s'], parts['decode_s'] = t1 - t, time.perf_counter() - t1
        return y
    first, med = timed(run, dev, reps)
    return dict(precision=precision, compiled=compiled, seconds_audio=seconds, steps=steps, first_s=first, total_s=med, **parts)


def cpu_dac_decode(seconds: float) -> float | None:
    "Seconds the CPU takes to DAC-decode one second of audio (random weights, float32, all threads): the codec as written before."
    try: import dac
    except Exception: return None
    torch.manual_seed(0)
    d = dac.DAC().eval()
    z = torch.randn(1, d.latent_dim, int(seconds * d.sample_rate / d.hop_length))
    with torch.no_grad():
        d.decode(z[..., :8]); t = time.perf_counter(); d.decode(z)
    return (time.perf_counter() - t) / seconds


# ---------------------------------------------------------------- 5. attention kernel
SDPA_OPS = ('_scaled_dot_product_flash_attention', '_scaled_dot_product_efficient_attention', '_scaled_dot_product_cudnn_attention',
            '_scaled_dot_product_flash_attention_for_cpu', '_scaled_dot_product_attention_math', '_efficient_attention_forward',
            '_flash_attention_forward')


def attention_kernels(cfg, dev) -> dict:
    "SDPA implementations the profiler saw in one HSE + U-Net forward: full-length clips vs a masked batch."
    from torch.profiler import profile, ProfilerActivity
    from hsmad.model import HSMAD
    torch.manual_seed(0)
    m = HSMAD(cfg).to(dev).eval()
    T = cfg.T_H
    S = torch.zeros(2, 3 * cfg.n_pitches, T, device=dev); z = torch.randn(2, cfg.latent_channels, T, device=dev)
    st, t = torch.zeros(2, cfg.style_dim, device=dev), torch.tensor([10, 500], device=dev)
    fm = torch.ones(2, T, dtype=torch.bool, device=dev); fm[1, T // 2:] = False
    out = {}
    amp = torch.autocast('cuda', dtype=torch.bfloat16) if dev.type == 'cuda' else contextlib.nullcontext()
    for name, mask in (('full', None), ('masked', fm)):
        with torch.no_grad(), amp, profile(activities=[ProfilerActivity.CPU]) as prof:
            m(z, t, m.encode_structure(S, mask), st, mask); sync(dev)
        counts = {}
        for e in prof.key_averages():
            key = e.key.split('::')[-1]
            if key in SDPA_OPS: counts[key] = counts.get(key, 0) + e.count
        out[name] = counts
    return out


# ---------------------------------------------------------------- 6. NCCL smoke
def nccl_smoke(tmp: Path) -> dict:
    "`torchrun --nproc_per_node=1 -m hsmad.train` for 3 micro steps on CUDA: NCCL, DDP, bf16, device noise, a checkpoint."
    from hsmad.testing import micro_train_config, write_test_cache, write_style_table
    cache, run = write_test_cache(tmp / 'smoke_cache'), tmp / 'smoke_run'
    write_style_table(run, ['test style'], 12)
    cfg = micro_train_config()
    sets = [f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=1', '-m', 'hsmad.train',
           '--cache', str(cache), '--out', str(run), '--steps', '3', '--batch-size', '4', '--device', 'cuda', '--no-progress',
           '--no-tensorboard', '--log-every', '1', '--set', *sets]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    ok = r.returncode == 0 and (run / 'checkpoints' / 'step_00000003' / 'model.safetensors').is_file()
    return dict(ok=ok, returncode=r.returncode, seconds=time.perf_counter() - t, tail=(r.stdout + r.stderr)[-600:])


# ---------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--preset', default=None, choices=PRESETS, help='default: paper on CUDA, tiny on the CPU')
    ap.add_argument('--device', default='auto')
    ap.add_argument('--micro', type=int, nargs='*', default=[1, 4, 8, 16])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--steps', type=int, default=25, help='sampler steps of the generation')
    ap.add_argument('--seconds', type=float, default=30.0, help='audio generated')
    ap.add_argument('--workers', type=int, default=8, help='DataLoader workers per GPU assumed for "host new"')
    ap.add_argument('--peak-tflops', type=float, default=None, help='bf16 dense peak of the device (default: looked up)')
    ap.add_argument('--assume-gpu', default='A100', choices=['A100', 'H100 SXM'], help='projection on a CPU: this GPU ...')
    ap.add_argument('--assume-mfu', type=float, default=0.4, help='... at this model-FLOPs utilisation')
    ap.add_argument('--no-compile', action='store_true', help='skip the compiled generation')
    ap.add_argument('--host-only', action='store_true', help='section 2 only (also runs on older hsmad code)')
    ap.add_argument('--host-crops', type=int, default=16)
    ap.add_argument('--budget', type=float, default=270.0, help='seconds after which the remaining optional parts are skipped')
    ap.add_argument('--json', default=None)
    a = ap.parse_args(argv)
    dev = torch.device('cuda' if (a.device == 'auto' and torch.cuda.is_available()) else ('cpu' if a.device == 'auto' else a.device))
    preset = a.preset or ('paper' if dev.type == 'cuda' else 'tiny')
    cfg = get_preset(preset)
    name = torch.cuda.get_device_name(dev) if dev.type == 'cuda' else (platform.processor() or platform.machine())
    peak = a.peak_tflops or (next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None) if dev.type == 'cuda' else None)
    res = dict(preset=preset, device=str(dev), device_name=name, torch=torch.__version__, threads=torch.get_num_threads(),
               cpus=os.cpu_count(), load_avg=os.getloadavg(), peak_bf16_tflops=peak, host=platform.node())
    log(f"HS-MAD GPU path benchmark: preset {preset}, {dev} ({name}), torch {torch.__version__}, {os.cpu_count()} CPUs, "
        f"load {res['load_avg'][0]:.1f}, peak {peak or 'unknown'} TFLOP/s bf16")
    tmp = Path(tempfile.mkdtemp(prefix='hsmad-gpu-bench-'))

    if not a.host_only:
        log("\n1. FLOPs per sample (meta device, batch 1)")
        fl = {preset: count_flops(cfg)}
        if preset != 'paper': fl['paper'] = count_flops(get_preset('paper'))
        for k in fl:
            fk = fl[k] if fl[k]['seconds'] == a.seconds else count_flops(get_preset(k), a.seconds)
            fl[k].update(generation=generation_flops(fk, a.steps), generation_seconds=a.seconds)
        for k, f in fl.items():
            dd = 'n/a' if f['dac_decode'] is None else f"{f['dac_decode']:.2f}"
            log(f"  {k:6s} {f['params'] / 1e6:7.1f} M params, {f['seconds']:g} s = {f['T_H']} frames: HSE fwd {f['hse_fwd']:.3f}, "
                f"U-Net fwd {f['unet_fwd']:.3f}, training sample {f['train_sample']:.3f}, DAC decode {dd} TFLOP; "
                f"{a.seconds:g} s generation ({a.steps} steps, 3-way CFG, DAC decode) {f['generation']:.1f} TFLOP")
        res['flops_tflop'] = fl

    log(f"\n2. Host work per crop (one core, synthetic {preset} cache, T_H={cfg.T_H})")
    cache = synthetic_cache(tmp / 'cache', cfg)
    h = host_work(cfg, cache, dev, a.host_crops, min(a.workers, max(1, (os.cpu_count() or 2) - 1)))
    res['host'] = h
    f = lambda v: 'n/a' if v is None else f"{v * 1e3:8.2f} ms"
    log(f"  data (crop + SRM + labels + collate) {f(h['data_s'])}; noise on the CPU {f(h['noise_cpu_s'])}; noise on the device: "
        f"host {f(h['noise_dev_host_s'])}, with its kernels {f(h['noise_dev_total_s'])}; worker-fed main thread "
        f"({h.get('drain_workers', 0)} workers here) {f(h['drain_s'])}")
    for mb in a.micro:
        old, new = host_per_micro(h, mb, a.workers)
        log(f"  micro-batch {mb:2d}: host old {old * 1e3:8.1f} ms (serial, main thread)   host new {new * 1e3:8.1f} ms "
            f"({a.workers} workers, noise on the device)")
    if a.host_only: return _finish(res, a, preset, dev)

    log(f"\n3. Training step on {dev} ({'bf16 autocast' if dev.type == 'cuda' else 'float32'}), median of {a.reps}")
    fs = fl[preset]['train_sample']
    steps = []
    for mb in a.micro:
        if time.time() - T0 > a.budget: log(f"  micro-batch {mb}: skipped (over the {a.budget:g} s budget)"); continue
        try: r = train_step(cfg, dev, mb, a.reps)
        except torch.cuda.OutOfMemoryError as e:
            log(f"  micro-batch {mb}: out of memory"); steps.append(dict(micro_batch=mb, oom=True)); torch.cuda.empty_cache(); continue
        old, new = host_per_micro(h, mb, a.workers)
        r.update(tflops=fs * mb / r['step_s'], host_old_s=old, host_new_s=new)
        r['mfu'] = r['tflops'] / peak if peak else None
        acc = PAPER['global_batch'] / (PAPER['gpus'] * mb)
        r['days_gpu_bound'] = PAPER['steps'] * acc * r['step_s'] / 86400
        r['days_as_written'] = PAPER['steps'] * acc * (r['step_s'] + old) / 86400
        r['days_now'] = PAPER['steps'] * acc * max(r['step_s'], new) / 86400
        steps.append(r)
        mem = 'n/a' if r['peak_gib'] is None else f"{r['peak_gib']:.1f} GiB"
        mfu_s = 'n/a' if r['mfu'] is None else f"{100 * r['mfu']:.1f} %"
        log(f"  micro-batch {mb:2d}: {r['step_s'] * 1e3:9.1f} ms/step, peak {mem}, {r['tflops']:7.2f} TFLOP/s, MFU "
            f"{mfu_s}; host old {old * 1e3:.0f} / new "
            f"{new * 1e3:.0f} ms; 1 M steps x batch 128 on 8 such devices: {r['days_now']:.1f} d now, {r['days_as_written']:.1f} d as written")
    if dev.type == 'cuda' and a.micro and time.time() - T0 < a.budget:
        mb = max(a.micro)
        try:
            r = train_step(cfg, dev, mb, a.reps, checkpointing=True); steps.append(r)
            log(f"  micro-batch {mb:2d} with activation checkpointing: {r['step_s'] * 1e3:.1f} ms/step, peak {r['peak_gib']:.1f} GiB")
        except torch.cuda.OutOfMemoryError: log(f"  micro-batch {mb} with checkpointing: out of memory"); torch.cuda.empty_cache()
    res['train_step'] = steps
    pf = fl['paper']
    gpu_peak = peak if dev.type == 'cuda' and preset == 'paper' and peak else PEAK_BF16_TFLOPS[a.assume_gpu]
    mfu = a.assume_mfu
    proj = {}
    hp = host_work(get_preset('paper'), synthetic_cache(tmp / 'cache_paper', get_preset('paper'), tracks=2, seconds=60.0), dev,
                   4, 0) if preset != 'paper' else h
    for mb in (16,):
        t_gpu = pf['train_sample'] * mb / (gpu_peak * mfu)
        old, new = host_per_micro(hp, mb, a.workers)
        acc = PAPER['global_batch'] / (PAPER['gpus'] * mb)
        proj = dict(gpu=a.assume_gpu if gpu_peak != peak else name, mfu=mfu, micro_batch=mb, step_gpu_s=t_gpu, host_old_s=old,
                    host_new_s=new, host_paper=hp, days_gpu_bound=PAPER['steps'] * acc * t_gpu / 86400,
                    days_as_written=PAPER['steps'] * acc * (t_gpu + old) / 86400, days_now=PAPER['steps'] * acc * max(t_gpu, new) / 86400)
    res['paper_projection'] = proj
    log(f"  paper budget (1 M steps, batch 128, 8 x {proj['gpu']} at {100 * mfu:.0f} % MFU, micro-batch 16): GPU "
        f"{proj['step_gpu_s']:.2f} s/step; host old {proj['host_old_s']:.2f} s, new {proj['host_new_s']:.2f} s per micro-batch "
        f"-> {proj['days_now']:.1f} days now, {proj['days_as_written']:.1f} days as written ({proj['days_gpu_bound']:.1f} GPU-bound)")

    log(f"\n4. Generating {a.seconds:g} s ({a.steps} steps, 3-way CFG, codec {cfg.codec}) on {dev}")
    gens = []
    for comp in ((False, True) if not a.no_compile else (False,)):
        for prec in ('fp32', 'bf16'):
            if time.time() - T0 > a.budget and (comp or prec == 'bf16'):
                log(f"  {prec} {'compiled' if comp else 'eager'}: skipped (over the {a.budget:g} s budget)"); continue
            r = generation(cfg, dev, a.seconds, a.steps, prec, comp, max(1, a.reps - 1), tmp)
            gens.append(r)
            log(f"  {prec} {'compiled' if comp else 'eager   '}: {r['total_s']:7.2f} s (sampling {r['sample_s']:.2f} s + decode "
                f"{r['decode_s']:.2f} s); first call {r['first_s']:.1f} s")
    res['generation'] = gens
    per_s = cpu_dac_decode(3.0)
    res['dac_decode_cpu_s_per_audio_s'] = per_s
    if per_s is not None:
        log(f"  DAC decode on this machine's CPU (as written before: the codec always ran there): {per_s:.2f} s per second of "
            f"audio, {per_s * a.seconds:.0f} s for {a.seconds:g} s")
    gf = pf['generation']
    res['generation_projection'] = dict(tflop=gf, gpu=proj['gpu'], mfu=mfu, seconds=gf / (gpu_peak * mfu))
    log(f"  paper preset, {a.seconds:g} s: {gf:.1f} TFLOP -> {gf / (gpu_peak * mfu) * 1e3:.0f} ms on one {proj['gpu']} at "
        f"{100 * mfu:.0f} % MFU")

    log(f"\n5. Attention kernels (profiler op names, one HSE + U-Net forward on {dev})")
    res['attention'] = attention_kernels(cfg, dev)
    for k, v in res['attention'].items(): log(f"  {k:6s}: {v}")

    log("\n6. One-rank NCCL trainer smoke")
    if dev.type == 'cuda':
        res['nccl_smoke'] = nccl_smoke(tmp)
        log(f"  {'ok' if res['nccl_smoke']['ok'] else 'FAILED'} in {res['nccl_smoke']['seconds']:.1f} s"
            + ('' if res['nccl_smoke']['ok'] else '\n' + res['nccl_smoke']['tail']))
    else:
        res['nccl_smoke'] = dict(skipped='no CUDA: NCCL needs a GPU (gloo equivalents: tests/test_gpu_path.py, tests/test_train.py)')
        log(f"  skipped: {res['nccl_smoke']['skipped']}")
    return _finish(res, a, preset, dev)


def _finish(res: dict, a, preset: str, dev) -> dict:
    res['wall_s'] = time.time() - T0
    out = a.json or f"benchmarks/results/gpu_{preset}_{dev.type}{'_host' if a.host_only else ''}.json"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2, default=str) + '\n')
    log(f"\nwrote {out} ({res['wall_s']:.0f} s)")
    return res


if __name__ == '__main__': main()
