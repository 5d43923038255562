"""The symbol-conditioned MusicGen baseline through the package's own pipeline: `hsmad train --variant musicgen` on a latent
cache (tokens fitted and stored beside it), exact resume, checkpoint -> `generate` / `generate_clips`, DAC's own codes
through the token store, and `hsmad info --variant musicgen`."""
import contextlib, io, json, warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from hsmad.checkpoint import latest_checkpoint, load_pretrained
from hsmad.cli import main
from hsmad.data.cache import LatentCache
from hsmad.data.codecs import STFTCodec
from hsmad.generate import generate, generate_clips
from hsmad.midi import Notes
from hsmad.musicgen import MusicGen
from hsmad.rvq import TokenStore, token_folder, tokens_for_cache
from hsmad.testing import micro_train_config, write_style_table, write_test_cache
from hsmad.train import cli_train

MG = dict(variant='musicgen', mg_codebooks=3, mg_codebook_size=16, mg_dim=32, mg_layers=2, mg_heads=2, mg_ffn=64)


def _train(cache, out, steps, *extra):
    "`hsmad train` of the micro MusicGen on the synthetic cache, in this process."
    write_style_table(out, ['test style'], 12)
    cfg = micro_train_config(**MG)
    sets = [f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]
    args = ['--cache', str(cache), '--out', str(out), '--steps', str(steps), '--device', 'cpu', '--no-progress',
            '--no-tensorboard', '--log-every', '1', *extra, '--set', *sets]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli_train(args) == 0


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
    return write_test_cache(tmp_path_factory.mktemp('mg') / 'cache', n_tracks=3, frames=120)


@pytest.fixture(scope='module')
def run(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp('mg') / 'run'
    _train(cache, out, 4, '--ckpt-every', '4')
    return out


def test_train_writes_a_musicgen_run(cache, run):
    "The trainer fits the tokens once beside the cache, logs token cross-entropy and accuracy, and checkpoints the model with its tokenizer."
    store = TokenStore(token_folder(cache, 'rvq3x16'))
    assert store.record['tracks'] == 3 and store.record['fit']['K'] == 3
    recs = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert [r['step'] for r in recs] == [1, 2, 3, 4]
    assert {'loss', 'ce', 'acc', 'ce_0', 'ce_1', 'ce_2'} <= set(recs[-1])
    assert 0 < recs[0]['ce'] < 2 * np.log(16) and 0 <= recs[-1]['acc'] <= 1
    pre = load_pretrained(run)
    assert isinstance(pre.model, MusicGen) and pre.cfg.variant == 'musicgen' and pre.step == 4
    torch.testing.assert_close(pre.model.tokenizer.codebooks, store.tokenizer_state()['codebooks'], rtol=0, atol=0)


def test_resume_is_exact(cache, run, tmp_path):
    "2 steps, a checkpoint, --resume to 4 == 4 steps in one go (the objective keeps no random state of its own)."
    out = tmp_path / 'resumed'
    _train(cache, out, 4, '--stop-after', '2', '--ckpt-every', '2')
    _train(cache, out, 4, '--resume', '--ckpt-every', '2')
    a = torch.load(latest_checkpoint(out) / 'training_state.pt', weights_only=False)
    b = torch.load(latest_checkpoint(run) / 'training_state.pt', weights_only=False)
    assert a['step'] == b['step'] == 4
    for k in b['model']: assert torch.equal(a['model'][k], b['model'][k]), k


def test_generate_from_the_checkpoint(run):
    "A MIDI five windows long renders through `generate` (windows continue each other's tokens) and `generate_clips`."
    pre = load_pretrained(run)
    pre.mean, pre.std = torch.full((4,), -4.0), torch.full((4,), 0.5)   # ramps are no log-magnitudes: a decodable range
    codec = STFTCodec(n_bins=4, gl_iters=2)        # a 4-channel, hop-256 codec for the 4-channel synthetic cache
    notes = Notes.from_arrays([60, 64, 67], [0.0, 0.8, 1.5], [0.7, 1.6, 2.3], [90, 80, 100])
    err = io.StringIO()
    with contextlib.redirect_stderr(err): g = generate(pre, notes, 'test style', seed=3, codec=codec, progress=True)
    assert 'musicgen' in err.getvalue()
    assert g.wave.shape == (round(2.3 * 16000),) and np.isfinite(g.wave).all()
    assert len(g.windows) == 6 and g.latents.shape == (4, 144)
    assert torch.equal(generate(pre, notes, 'test style', seed=3, codec=codec).latents, g.latents)
    assert not torch.equal(generate(pre, notes, 'test style', seed=4, codec=codec).latents, g.latents)
    clips = generate_clips(pre, [notes, Notes.empty()], ['test style'] * 2, 3.0, seed=3, codec=codec)
    assert [(a.shape, sr) for a, sr in clips] == [((48000,), 16000)] * 2 and clips[1][0].sum() == 0
    np.testing.assert_array_equal(clips[0][0][:len(g.wave)], g.wave)


def test_dac_codes_through_the_store(tmp_path, monkeypatch):
    "At paper scale the tokens are DAC's own codes of the cached (continuous) latents: `tokens_for_cache` with codec 'dac'."
    import dac
    from hsmad.data.codecs import DACCodec
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.manual_seed(0)
        dac.DAC(encoder_dim=8, encoder_rates=[2, 4], decoder_dim=16, decoder_rates=[4, 2], n_codebooks=4, codebook_size=32,
                codebook_dim=4, sample_rate=16000).save(str(tmp_path / 'dac.pth'))
        monkeypatch.setenv('HSMAD_DAC_WEIGHTS', str(tmp_path / 'dac.pth'))
        cache = LatentCache(write_test_cache(tmp_path / 'cache', n_tracks=2, frames=50, channels=32))
        cfg = micro_train_config(codec='dac', latent_channels=32, **{**MG, 'mg_codebooks': 2, 'mg_codebook_size': 32})
        store = tokens_for_cache(cache, cfg, progress=False)
        assert store.name == 'dac2' and store.record['fit'] is None
        z = torch.from_numpy(np.asarray(cache.latents(0), np.float32).T)[None]         # (1, 32, 50) as encoded
        want = DACCodec(str(tmp_path / 'dac.pth')).model.quantizer(z, n_quantizers=2)[1][:, :2]
        assert torch.equal(torch.from_numpy(store.codes('T000').astype(np.int64)).T[None], want)
        m = MusicGen(cfg); m.tokenizer.load_state_dict(store.tokenizer_state())
        assert m.tokenizer.decode(want).shape == (1, 32, 50)                            # DAC's codebooks decode them


def test_hsmad_info_musicgen(capsys):
    assert main(['info', '--preset', 'tiny', '--variant', 'musicgen', '--json']) == 0
    d = json.loads(capsys.readouterr().out)
    assert d['variant'] == 'musicgen' and d['params_total'] == sum(d['params'].values()) and d['params_hsmad'] > 0
    assert d['tokens']['tokenizer'] == 'rvq4x1024' and d['tokens']['steps'] == d['tokens']['frames'] + 3


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process(cache, tmp_path):
    "2 gloo ranks x micro-batch 2 == 1 process x 2 accumulation steps (rank 0 builds the token store, the other waits)."
    import os, subprocess, sys
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'OMP_WAIT_POLICY': 'PASSIVE', 'HF_HUB_OFFLINE': '1'}
    cfg = micro_train_config(**MG)
    sets = [f'{k}={json.dumps(v)}' for k, v in cfg.to_dict().items() if k not in ('steps', 'batch_size')]
    states = []
    for name, launch in (('ddp', ['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2']), ('one', [])):
        out = tmp_path / name
        write_style_table(out, ['test style'], 12)
        args = ['--cache', str(cache), '--out', str(out), '--steps', '3', '--device', 'cpu', '--no-progress', '--no-tensorboard',
                '--batch-size', '4', '--micro-batch', '2', '--ckpt-every', '3', '--set', *sets]
        r = subprocess.run([sys.executable, *launch, '-m', 'hsmad.train', *args], env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        states.append(torch.load(latest_checkpoint(out) / 'training_state.pt', weights_only=False))
    digests = json.loads((latest_checkpoint(tmp_path / 'ddp') / 'state.json').read_text())['rank_digests']
    assert len(digests) == 2 and len(set(digests)) == 1
    for k in states[1]['model']: torch.testing.assert_close(states[0]['model'][k], states[1]['model'][k], rtol=1e-5, atol=1e-6, msg=k)
