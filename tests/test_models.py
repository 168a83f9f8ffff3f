"""Denoiser alignment mask, start features and the style encoder (facemotion.models)."""

import torch

from facemotion.models import StyleEncoder, TransformerDenoiser, alignment_mask


def _denoiser(align=True, layers=1):
    torch.manual_seed(0)
    return TransformerDenoiser(motion_dim=5, audio_dim=6, style_dim=8, d_model=32, n_layers=layers, n_heads=2,
                               dropout=0.0, n_prev=3, align=align).eval()


def _inputs(b=2, tw=12):
    g = torch.Generator().manual_seed(1)
    return dict(x=torch.randn(b, tw, 5, generator=g), t=torch.tensor([10, 400][:b]),
                prev=torch.randn(b, 3, 5, generator=g), audio=torch.randn(b, 3 + tw, 6, generator=g),
                style=torch.randn(b, 8, generator=g))


def _run(net, x, t, **cond):
    """The denoiser on keyword inputs: ``x``, ``t`` and the conditions (None = absent)."""
    return net(x, t, {k: v for k, v in cond.items() if v is not None})


def test_alignment_mask_layout():
    m = alignment_mask(4)
    assert m.shape == (5, 4)
    assert not m[0].any()  # the condition token sees all audio
    assert torch.equal(~m[1:], torch.eye(4, dtype=torch.bool))


def test_audio_at_frame_t_only_changes_output_at_t():
    inp = _inputs()
    t = 7
    changed = {k: v.clone() for k, v in inp.items()}
    changed["audio"][:, t] += 5.0
    with torch.no_grad():
        diff = (_run(_denoiser(), **inp) - _run(_denoiser(), **changed)).abs().amax(dim=(0, 2))
        assert diff[t] > 1e-3
        assert torch.all(torch.cat([diff[:t], diff[t + 1:]]) < 1e-6)
        # without the mask the change leaks into every frame
        leak = (_run(_denoiser(align=False), **inp) - _run(_denoiser(align=False), **changed)).abs().amax(dim=(0, 2))
        assert (leak > 1e-4).sum() > 5


def test_first_window_uses_start_features_and_padding_is_ignored():
    net = _denoiser(layers=2)
    inp = _inputs()
    other = dict(inp, prev=torch.randn(2, 3, 5), audio=torch.cat([torch.randn(2, 3, 6), inp["audio"][:, 3:]], 1))
    first = torch.tensor([True, True])
    with torch.no_grad():
        torch.testing.assert_close(_run(net, **inp, first=first), _run(net, **other, first=first))
        torch.testing.assert_close(_run(net, **inp, first=first), _run(net, **dict(inp, prev=None)))
        valid = torch.ones(2, 15, dtype=torch.bool)
        valid[:, 10:] = False
        padded = dict(inp, x=inp["x"].clone())
        padded["x"][:, 7:] = 100.0  # current frames 7.. are tokens 10.. (after 3 previous)
        a, b = _run(net, **inp, valid=valid), _run(net, **padded, valid=valid)
        torch.testing.assert_close(a[:, :10], b[:, :10])


def test_style_encoder_pools_only_valid_frames():
    torch.manual_seed(0)
    enc = StyleEncoder(motion_dim=5, style_dim=16, n_layers=2, n_heads=4, dropout=0.0).eval()
    x = torch.randn(1, 30, 5)
    valid = torch.zeros(1, 30, dtype=torch.bool)
    valid[:, :20] = True
    with torch.no_grad():
        s = enc(x, valid)
        assert s.shape == (1, 16)
        torch.testing.assert_close(s, enc(x[:, :20]))
        y = x.clone()
        y[:, 20:] = 50.0
        torch.testing.assert_close(s, enc(y, valid))
