"""HS-MAD network (hsmad.hse, hsmad.unet, hsmad.model): every variant trains, and gradients reach the
HSE through exactly the levels the variant injects. Test widths (`micro_config`), seconds on a CPU."""
import json

import pytest
import torch
import torch.nn.functional as F

from hsmad.data.labels import AuxLabels
from hsmad.hse import StructureFeatures
from hsmad.testing import micro_config
from hsmad.model import HSMAD, cli_info, info
from hsmad.diffusion import CFGDropout
from hsmad.unet import VARIANTS, variant_spec

LEVELS = ('F_event', 'F_local', 'F_global')


def injected(variant: str) -> dict[str, bool]:
    "Which HSE levels the U-Net of `variant` reads (from the variant table of nbs/21_unet)."
    s = variant_spec(variant)
    return dict(F_event=s.event, F_local=s.local, F_global=s.global_ != 'none')


def batch(cfg, B=3, T=45, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = (torch.rand(B, 3 * cfg.n_pitches, T, generator=g) < 0.1).float()
    fm = torch.ones(B, T, dtype=torch.bool)
    fm[1, 30:] = False
    z0 = torch.randn(B, cfg.latent_channels, T, generator=g)
    st = torch.randn(B, cfg.style_dim, generator=g)
    labels = AuxLabels(chroma=torch.rand(B, 12, 12, generator=g), beat=(torch.rand(B, 2, 12, generator=g) < 0.2).float(),
                       tempo=torch.full((B,), 4.8), key=torch.tensor([1, 13, 22])[:B], key_mask=torch.tensor([True, False, True])[:B])
    return S, fm, z0, st, labels


def diffusion_loss(model, feats, z0, st, fm, t=None):
    "A minimal ε-prediction step (the real objective lives in the diffusion module): masked MSE."
    noise = torch.randn_like(z0)
    t = torch.tensor([100, 500, 900][: z0.shape[0]]) if t is None else t
    a = (1 - t.float() / 1000)[:, None, None]
    z_t = a.sqrt() * z0 + (1 - a).sqrt() * noise
    pred = model(z_t, t, feats, st, fm)
    m = fm[:, None].float()
    return (((pred - noise) ** 2) * m).sum() / (m.sum() * pred.shape[1])


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_variant_trains(variant):
    torch.manual_seed(0)
    cfg = micro_config(variant=variant)
    model = HSMAD(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    S, fm, z0, st, labels = batch(cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    losses = []
    for step in range(2):
        feats = model.encode_structure(S, fm)
        u_H, u_S = torch.rand(2, len(st), generator=torch.Generator().manual_seed(step))
        feats_d, st_d = CFGDropout(cfg.p_H, cfg.p_S)(model, feats, st, u_H, u_S)
        loss = diffusion_loss(model, feats_d, z0, st_d, fm) + model.aux_loss(feats, labels)['total']
        opt.zero_grad(); loss.backward(); opt.step()
        assert torch.isfinite(loss), loss
        losses.append(loss.item())
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith('hse.stage_event') for n in moved)
    assert any(n.startswith('unet.') for n in moved)
    assert (model.hse.aux_heads is None) == (variant == 'no_aux')
    assert model.srm_binary == (variant == 'binary_srm')


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_gradient_routing(variant):
    """The diffusion loss sends gradient into the feature levels the variant injects and none into the others.

    The features are made leaves, so each level's gradient is its direct use by the U-Net (not the HSE chain
    event -> local -> global). The zero-initialised layers are given weights first: otherwise SCM's W_zero
    would hide its path at initialisation."""
    torch.manual_seed(0)
    cfg = micro_config(variant=variant)
    model = HSMAD(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and p.abs().sum() == 0: p.normal_(std=0.1)
    S, fm, z0, st, _ = batch(cfg)
    feats = model.encode_structure(S, fm)
    leaves = {k: getattr(feats, k).detach().requires_grad_() for k in LEVELS}
    feats_l = StructureFeatures(**leaves, mask_H=feats.mask_H, mask_M=feats.mask_M, mask_L=feats.mask_L, T_H=feats.T_H,
                                S_sync=feats.S_sync)
    diffusion_loss(model, feats_l, z0, st, fm).backward()
    want = injected(variant)
    for k in LEVELS:
        g = leaves[k].grad
        got = g is not None and g.abs().sum().item() > 0
        assert got == want[k], (variant, k, got)
        if got:   # and no gradient lands on padded frames
            mask = dict(F_event=feats.mask_H, F_local=feats.mask_M, F_global=feats.mask_L)[k]
            assert g[~mask].abs().sum() == 0


@pytest.mark.parametrize('variant', list(VARIANTS))
def test_gradient_reaches_hse_stages(variant):
    "End to end (no aux loss): an HSE stage gets gradient iff a level at or after it is injected."
    torch.manual_seed(0)
    cfg = micro_config(variant=variant)
    model = HSMAD(cfg)
    S, fm, z0, st, _ = batch(cfg)
    diffusion_loss(model, model.encode_structure(S, fm), z0, st, fm).backward()
    inj = injected(variant)
    want = dict(stage_event=any(inj.values()), stage_local=inj['F_local'] or inj['F_global'], stage_global=inj['F_global'])
    for stage, w in want.items():
        g = sum(p.grad.abs().sum().item() for p in getattr(model.hse, stage).parameters() if p.grad is not None)
        assert (g > 0) == w, (variant, stage, g)


def test_dropped_structure_uses_nulls():
    "With p_H = 1 the U-Net sees only the null structure: gradient reaches the nulls and not the HSE stages."
    torch.manual_seed(0)
    cfg = micro_config()
    model = HSMAD(cfg)
    with torch.no_grad():   # AdaLN starts at zero, so the style has no effect (and no gradient) before training
        for p in model.parameters():
            if p.dim() > 1 and p.abs().sum() == 0: p.normal_(std=0.1)
    S, fm, z0, st, _ = batch(cfg)
    u = torch.zeros(len(st))                                  # every coin below p: both conditions dropped
    feats, st_d = CFGDropout(1.0, 1.0)(model, model.encode_structure(S, fm), st, u, u)
    diffusion_loss(model, feats, z0, st_d, fm).backward()
    assert all(getattr(model.hse, n).grad.abs().sum() > 0 for n in ('null_event', 'null_local', 'null_global'))
    assert model.null_style.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.hse.stage_event.parameters())


def test_cli_info_json(capsys):
    assert cli_info(['--preset', 'tiny', '--variant', 'flat', '--json']) == 0
    d = json.loads(capsys.readouterr().out)
    assert d['preset'] == 'tiny' and d['variant'] == 'flat'
    assert d['params_total'] == sum(d['params'].values()) > 0
    assert d['params']['unet.scm'] == 0  # Baseline-Flat has no SCM
    assert d['levels']['T_H'] == 1875 and d['levels']['T_M'] == 472 and d['levels']['T_L'] == 118  # 30 s at 62.5 frames/s, padded to 1888


def test_cli_info_text_and_errors(capsys):
    assert cli_info(['--preset', 'paper']) == 0
    out = capsys.readouterr().out
    assert 'T_H=2583 (padded 2592), T_M=648, T_L=162' in out and 'total' in out
    assert cli_info(['--preset', 'huge']) == 2     # the command contract: an exit status, not SystemExit
    assert 'invalid choice' in capsys.readouterr().err


def test_info_counts_match_a_built_model():
    cfg = micro_config(variant='no_local')
    n = sum(p.numel() for p in HSMAD(cfg).parameters())
    assert info(cfg)['params_total'] == n


def test_bad_inputs():
    cfg = micro_config()
    model = HSMAD(cfg)
    S, fm, z0, st, _ = batch(cfg)
    with pytest.raises(ValueError, match='no real frame'):
        model.encode_structure(S, torch.zeros_like(fm))
    with pytest.raises(ValueError, match='S_sync must be'):
        model.encode_structure(S[:, :5], fm)
    feats = model.encode_structure(S, fm)
    with pytest.raises(ValueError, match='F_style must be'):
        model(z0, 3, feats, st[:, :4], fm)
    with pytest.raises(ValueError, match='unknown variant'):
        HSMAD(micro_config(variant='hsmad_v2'))


def test_local_tca_window_keeps_padding_invariance():
    "With a local TCA window (cfg.tca_window) padded queries may see no key; real frames must not notice."
    torch.manual_seed(0)
    cfg = micro_config(tca_window=2)
    model = HSMAD(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1 and p.abs().sum() == 0: p.normal_(std=0.1)
    T, extra = 37, 40
    S, z = torch.rand(1, 3 * cfg.n_pitches, T + extra), torch.randn(1, cfg.latent_channels, T + extra)
    st, m = torch.randn(1, cfg.style_dim), torch.arange(T + extra)[None] < T
    with torch.no_grad():
        a = model(z[..., :T], 5, model.encode_structure(S[..., :T]), st)
        b = model(z, 5, model.encode_structure(S, m), st, m)[..., :T]
    assert torch.isfinite(b).all()
    assert (a - b).abs().max() < 1e-5
