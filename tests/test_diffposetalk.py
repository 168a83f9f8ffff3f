"""DiffPoseTalk recipe: losses, sampling contract, checkpoints and learning."""

import math

import pytest
import torch

from facemotion import losses
from facemotion.errors import DataError, FacemotionError
from facemotion.recipes import load_checkpoint
from facemotion.recipes.base import config_from
from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig
from recipe_helpers import TINY_CONFIG, overfit_ratio


def _recipe(**kw):
    torch.manual_seed(0)
    return DiffPoseTalk(config_from(DiffPoseTalkConfig, {**TINY_CONFIG, **kw}))


def test_nt_xent_by_hand():
    z_i = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z_j = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    z = torch.nn.functional.normalize(torch.cat([z_i, z_j]), dim=1)
    pos = {0: 2, 1: 3, 2: 0, 3: 1}
    total = 0.0
    for i in range(4):
        sims = [float(z[i] @ z[k]) / 0.1 for k in range(4)]
        denom = sum(math.exp(sims[k]) for k in range(4) if k != i)
        total += -math.log(math.exp(sims[pos[i]]) / denom)
    assert float(losses.nt_xent(z_i, z_j, 0.1)) == pytest.approx(total / 4, rel=1e-5)


def test_transition_loss_by_hand():
    target = torch.zeros(1, 6, 1)
    target[0, :3, 0] = torch.tensor([0.0, 1.0, 2.0])  # constant velocity up to the seam
    pred = torch.zeros(1, 6, 1)
    pred[0, 3:, 0] = torch.tensor([3.0, 4.0, 5.0])
    assert float(losses.transition_loss(pred, target, 3, torch.ones(1))) == pytest.approx(0.0, abs=1e-6)
    pred[0, 3:, 0] = torch.tensor([2.0, 2.0, 2.0])  # stops dead: acc (-1, 0), jerk (-1, 1, 0)
    assert float(losses.transition_loss(pred, target, 3, torch.ones(1))) == pytest.approx(0.5 + 2 / 3)


def test_sample_contract_and_second_window_conditioning():
    r = _recipe(window=100, n_prev_motions=10).eval()
    seen = []
    forward = r.denoiser.forward

    def spy(x, t, cond, drop=None):
        seen.append(cond["prev"].clone() if "prev" in cond else None)
        return forward(x, t, cond, drop)

    r.denoiser.forward = spy
    feats = torch.randn(237, r.audio_encoder.dim)
    style = r.encode_style(torch.rand(130, r.space.dim))
    out = r.sample(feats, num_samples=2, style=style, generator=torch.Generator().manual_seed(0), steps=3,
                   overlap=0, crossfade=False)
    assert out.shape == (2, 237, r.space.dim) and torch.isfinite(out).all()
    assert style.shape == (r.config.style_dim,)
    assert seen[0] is None and len(seen) == 9  # 3 windows × 3 steps, all branches in one forward
    assert seen[3].shape[0] == 2 * 3  # samples × guidance branches
    torch.testing.assert_close(seen[3][:2], r.normalise(out[:, 90:100]))
    # the default: windows start 5 frames early (0, 95, 190) and are cross-faded over them
    seen.clear()
    faded = r.sample(feats, num_samples=2, style=style, generator=torch.Generator().manual_seed(0), steps=3)
    assert faded.shape == out.shape and len(seen) == 9 and r.window_boundaries(237) == ([95, 190], 7)
    torch.testing.assert_close(seen[3][:2], r.normalise(faded[:, 85:95]))  # before the cross-fade
    torch.testing.assert_close(faded[:, :95], out[:, :95])  # window 1 is the same sample
    assert not torch.allclose(faded[:, 95:100], out[:, 95:100])
    with pytest.raises(FacemotionError):
        r.sample(feats, overlap=91)  # no room for the previous frames


def test_checkpoint_round_trip_gives_identical_samples(tmp_path):
    r = _recipe().eval()
    r.set_statistics({"motion_mean": torch.rand(7), "motion_std": torch.rand(7) + 0.5})
    path = r.save_checkpoint(tmp_path / "m.pt")
    loaded = load_checkpoint(path)
    assert not loaded.training and loaded.fps == 25.0
    assert loaded.default_sampling == {"steps": 5, "w_audio": 1.15, "w_style": 2.5, "scheduler": "dpmsolver",
                                       "overlap": 5, "crossfade": True, "lip_closure": 0.0}
    feats = torch.randn(30, r.audio_encoder.dim)
    a = r.sample(feats, style=torch.ones(16), generator=torch.Generator().manual_seed(3))
    b = loaded.sample(feats, style=torch.ones(16), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, loaded.sample(feats, style=torch.ones(16), generator=torch.Generator().manual_seed(4)))
    wave = torch.randn(16000 * 3 // 2).numpy()
    assert loaded.audio_features(wave).shape == (round(1.5 * 25), r.audio_encoder.dim)


def test_load_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="bad.pt"):
        load_checkpoint(bad)


def test_tiny_model_overfits_one_clip():
    r = _recipe(p_truncate=0.0, p_drop_style=0.0, p_drop_all=0.0)
    t = torch.arange(40, dtype=torch.float32)
    motion = torch.stack([(torch.sin(t / 3) > 0).float(), 0.2 + 0 * t, 0 * t, 0.5 * torch.cos(t / 5),
                          0.05 * torch.sin(t / 7), 0 * t, 0 * t], dim=1)
    batch = {"audio": torch.randn(1, 40, 8).repeat(8, 1, 1), "motion": motion[None].repeat(8, 1, 1),
             "length": torch.full((8,), 40)}
    r.set_statistics({"motion_mean": motion.mean(0), "motion_std": motion.std(0)})
    r.set_phase(r.config.style_steps)
    assert overfit_ratio(r, batch, r.denoiser.parameters()) < 0.1


def _with_audio(encoders: list, **overrides) -> DiffPoseTalk:
    return DiffPoseTalk(config_from(DiffPoseTalkConfig, {
        **TINY_CONFIG, **overrides, "audio_encoder": {"name": "concat", "encoders": encoders}})).eval()


def test_init_from_extends_audio_channels_without_changing_outputs():
    small = _recipe().eval()
    wide = _with_audio([TINY_CONFIG["audio_encoder"], {"name": "mel", "n_mels": 3}])
    assert wide.init_from(small) == ["denoiser.audio_start", "denoiser.audio_in.weight"]
    x, audio = torch.randn(2, 20, 7), torch.randn(2, 24, small.audio_encoder.dim)
    extra = torch.randn(2, 24, 3)
    t, style = torch.tensor([5, 300]), torch.randn(2, 16)
    expected = small.denoiser(x, t, {"audio": audio, "style": style})
    torch.testing.assert_close(wide.denoiser(x, t, {"audio": torch.cat([audio, extra], -1), "style": style}),
                               expected)
    with pytest.raises(DataError, match="does not fit"):
        small.init_from(_with_audio([TINY_CONFIG["audio_encoder"]], d_model=TINY_CONFIG["d_model"] * 2))


def test_init_from_drops_and_reorders_audio_blocks():
    """A block the new config leaves out is dropped: the model computes what the old one did with
    that block's features at zero; blocks in another order keep their weights."""
    phones, mel = TINY_CONFIG["audio_encoder"], {"name": "mel", "n_mels": 3}
    wide = _with_audio([mel, phones, {"name": "mel", "n_mels": 2}])
    wide.denoiser.audio_in.weight.data.normal_()
    narrow = _with_audio([phones, mel])
    assert narrow.init_from(wide) == []
    assert narrow.audio_channel_map(wide) == [*range(3, 3 + narrow.audio_encoder.dim - 3), 0, 1, 2]
    x, t, style = torch.randn(2, 20, 7), torch.tensor([5, 300]), torch.randn(2, 16)
    a, b = torch.randn(2, 24, 3), torch.randn(2, 24, narrow.audio_encoder.dim - 3)
    expected = wide.denoiser(x, t, {"audio": torch.cat([a, b, torch.zeros(2, 24, 2)], -1), "style": style})
    torch.testing.assert_close(narrow.denoiser(x, t, {"audio": torch.cat([b, a], -1), "style": style}), expected)


def test_injected_parts_and_shape_condition():
    """Denoiser and noise scheduler passed in built are the ones used; a shape input conditions."""
    from facemotion.diffusion.schedulers import make_scheduler
    from facemotion.models import TransformerDenoiser

    base = _recipe()
    net = TransformerDenoiser(base.space.dim, base.audio_encoder.dim, 16, shape_dim=4, d_model=24, n_layers=1,
                              n_heads=2, dropout=0.0, n_prev=base.config.n_prev_motions)
    noiser = make_scheduler("ddpm", 100, "epsilon")
    r = DiffPoseTalk(config_from(DiffPoseTalkConfig, {**TINY_CONFIG, "style_dim": 16}), denoiser=net,
                     scheduler=noiser).eval()
    assert r.denoiser is net and r.scheduler is noiser
    feats = torch.randn(30, r.audio_encoder.dim)
    a = r.sample(feats, generator=torch.Generator().manual_seed(0), shape=torch.zeros(4))
    b = r.sample(feats, generator=torch.Generator().manual_seed(0), shape=torch.ones(4))
    assert not torch.allclose(a, b)  # the shape reaches the denoiser
    batch = {"audio": torch.randn(2, r.train_frames, r.audio_encoder.dim),
             "motion": torch.randn(2, r.train_frames, r.space.dim), "length": torch.full((2,), r.train_frames),
             "shape": torch.randn(2, 4)}
    r.set_phase(10**6)
    loss, _ = r.training_loss(batch)
    loss.backward()
    assert net.shape_in.weight.grad.abs().sum() > 0
    with pytest.raises(DataError, match="unknown"):
        DiffPoseTalk(config_from(DiffPoseTalkConfig, {**TINY_CONFIG, "denoiser": "unet"}))


def test_block_dropout_zeroes_whole_blocks_per_sample():
    encoders = [TINY_CONFIG["audio_encoder"], {"name": "mel", "n_mels": 3}]
    cfg = {**TINY_CONFIG, "audio_encoder": {"name": "concat", "encoders": encoders}}
    recipe = DiffPoseTalk(config_from(DiffPoseTalkConfig, {**cfg, "p_drop_blocks": [0.5, 0.0]}))
    first = recipe.audio_encoder.encoders[0].dim
    torch.manual_seed(0)
    audio = torch.randn(400, 6, first + 3) + 5.0
    out = recipe._drop_blocks(audio)
    torch.testing.assert_close(out[..., first:], audio[..., first:])  # p = 0: kept
    zeroed = (out[..., :first] == 0).flatten(1).all(1)
    kept = (out[..., :first] == audio[..., :first]).flatten(1).all(1)
    assert bool((zeroed | kept).all()) and 0.4 < zeroed.float().mean() < 0.6  # whole blocks, about half
    assert DiffPoseTalk(config_from(DiffPoseTalkConfig, cfg))._drop_blocks(audio) is audio
    with pytest.raises(FacemotionError, match="2 audio encoder blocks"):
        DiffPoseTalk(config_from(DiffPoseTalkConfig, {**cfg, "p_drop_blocks": [0.5]}))


def test_lip_closure_shuts_the_lips_where_whisper_phones_say_bilabial():
    """Frames whose features carry /p b m/ evidence of Whisper's phones get the animator's closure
    while sampling (jaw at most 0.08, mouthClose = jawOpen, no lip-parting shapes); without the
    setting, or without Whisper's phones among the features, nothing is forced."""
    from facemotion.audio.phones import PHONES, VISEMES
    from facemotion.face.lips import CLOSURE_JAW

    r = _recipe(space="blendshape", audio_encoder={"name": "concat", "encoders": [
        {"name": "mel", "n_mels": 3}, {"name": "phonetic", "search": "asr"}]}).eval()
    names = list(r.space.names)
    jaw, close, funnel = names.index("jawOpen"), names.index("mouthClose"), names.index("mouthFunnel")
    mean = torch.full((r.space.dim,), 0.3)
    r.set_statistics({"motion_mean": mean, "motion_std": torch.full((r.space.dim,), 0.2)})
    feats = torch.zeros(45, r.audio_encoder.dim)
    feats[[12, 13, 30], 3 + len(PHONES) + VISEMES.index("bilabial")] = torch.tensor([0.9, 0.6, 0.3])
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    free = r.sample(feats, generator=gen(), steps=3)[0]
    shut = r.sample(feats, generator=gen(), steps=3, lip_closure=0.5)[0]
    for f in (12, 13):
        assert shut[f, jaw] <= CLOSURE_JAW + 1e-5 and shut[f, funnel].abs() < 1e-5
        assert shut[f, close] == pytest.approx(float(shut[f, jaw]), abs=1e-5)
    assert (free[[12, 13], jaw] > CLOSURE_JAW).all()  # the untrained model opens the jaw ~0.3 there
    assert shut[30, jaw] > CLOSURE_JAW  # evidence 0.3 is under the threshold
    mel_only = _recipe(space="blendshape").eval()
    with pytest.raises(FacemotionError, match="Whisper"):
        mel_only.sample(torch.zeros(30, 8), lip_closure=0.5)
    with pytest.raises(FacemotionError, match="ARKit"):
        _recipe().sample(torch.zeros(30, 8), lip_closure=0.5)