"""The Lightning trainer: feature cache, resume from last.ckpt, EMA, export (tiny config)."""

import csv

import numpy as np
import pytest
import torch

from facemotion.audio.io import load_audio
from facemotion.data.features import cache_features, feature_dir, load_features
from facemotion.data.native import read_manifest
from facemotion.errors import DataError
from facemotion.recipes import load_checkpoint, train
from facemotion.recipes.training import RecipeModule
from recipe_helpers import TINY_CONFIG, make_dataset


def test_train_resumes_and_exports(tmp_path):
    data = make_dataset(tmp_path / "data")
    out = tmp_path / "run"
    model = train("diffposetalk", data, out, max_steps=5, config=TINY_CONFIG, accelerator="cpu", devices=1)
    assert torch.load(out / "last.ckpt", weights_only=False)["global_step"] == 5
    first = load_checkpoint(model)
    train("diffposetalk", data, out, max_steps=8, config=TINY_CONFIG, accelerator="cpu", devices=1)
    ckpt = torch.load(out / "last.ckpt", weights_only=False)
    assert ckpt["global_step"] == 8  # continued, not restarted
    module_state = ckpt["state_dict"]
    # the style encoder is frozen after style_steps (2): its EMA copy equals the trained one
    for k, v in module_state.items():
        if k.startswith("recipe.style_encoder."):
            torch.testing.assert_close(module_state["ema." + k[len("recipe."):]], v)
    second = load_checkpoint(model)
    moved = [not torch.equal(a, b) for a, b in zip(first.denoiser.parameters(), second.denoiser.parameters())]
    assert any(moved)
    rows = [r for f in sorted((out / "logs").rglob("metrics.csv")) for r in csv.DictReader(open(f))]
    val = [r for r in rows if r.get("val/lve_mm")]
    assert val and all(float(r["val/lve_mm"]) > 0 for r in val)
    assert {int(r["step"]) for r in val} >= {3, 7}
    sample = second.sample(torch.randn(33, second.audio_encoder.dim), generator=torch.Generator().manual_seed(0))
    assert sample.shape == (1, 33, 7) and torch.isfinite(sample).all()
    train("diffposetalk", data, out, max_steps=3, config=TINY_CONFIG, resume=False, accelerator="cpu", devices=1)
    assert torch.load(out / "last.ckpt", weights_only=False)["global_step"] == 3  # restarted, in last.ckpt
    assert sorted(p.name for p in out.glob("*.ckpt")) == ["last.ckpt"]


def test_feature_cache_is_resumable_and_kept_block_by_block(tmp_path):
    data = make_dataset(tmp_path / "data", clips=2)
    from facemotion.audio.encoders import build_audio_encoder

    enc = build_audio_encoder(TINY_CONFIG["audio_encoder"])
    recs = read_manifest(data)
    (d,) = cache_features(data, recs, enc, 25.0, progress=False)
    assert d == feature_dir(data, enc.config(), 25.0)
    assert sorted(p.stem for p in d.glob("*.npy")) == ["c0", "c1"]
    stamp = (d / "c0.npy").stat().st_mtime_ns
    (d / "c1.npy").unlink()
    cache_features(data, recs, enc, 25.0, progress=False)
    assert (d / "c0.npy").stat().st_mtime_ns == stamp and (d / "c1.npy").exists()
    # a concat encoder that appends a block reuses the cached one and joins them in order
    both = build_audio_encoder({"name": "concat", "encoders": [enc.config(), {"name": "mel", "n_mels": 4}]})
    dirs = cache_features(data, recs, both, 25.0, progress=False)
    assert dirs[0] == d and (d / "c0.npy").stat().st_mtime_ns == stamp
    joined = load_features(dirs, recs[0])
    np.testing.assert_array_equal(joined, np.concatenate([np.load(d / "c0.npy"), np.load(dirs[1] / "c0.npy")], 1))
    wave = load_audio(data / recs[0]["audio"])
    np.testing.assert_allclose(joined, both.encode_numpy(wave, len(joined), 25.0), atol=1e-5)


def test_feature_cache_of_a_changed_block_is_not_reused(tmp_path, monkeypatch):
    """A block whose code changed what it computes (``CACHE_VERSIONS``) gets a new cache folder,
    so features written before the change are recomputed; other blocks keep theirs."""
    from facemotion.data import features

    asr = {"name": "phonetic", "search": "asr"}
    before = features.feature_dir(tmp_path, asr, 25.0)
    mel = features.feature_dir(tmp_path, {"name": "mel"}, 25.0)
    monkeypatch.setitem(features.CACHE_VERSIONS, ("phonetic", "asr"), features.CACHE_VERSIONS[("phonetic", "asr")] + 1)
    assert features.feature_dir(tmp_path, asr, 25.0) != before
    assert features.feature_dir(tmp_path, {"name": "mel"}, 25.0) == mel


def test_ema_copies_frozen_and_averages_trained_parameters():
    from facemotion.recipes.base import config_from
    from facemotion.recipes.diffposetalk import DiffPoseTalk, DiffPoseTalkConfig

    recipe = DiffPoseTalk(config_from(DiffPoseTalkConfig, TINY_CONFIG))
    module = RecipeModule(recipe)
    recipe.set_phase(10)  # denoiser phase: style encoder frozen
    with torch.no_grad():
        for p in recipe.parameters():
            p.add_(1.0)
    module.ema_updates.fill_(10**6)
    module.on_train_batch_end(None, None, 0)
    d = 1 - recipe.config.ema_decay
    se_raw, se_ema = next(recipe.style_encoder.parameters()), next(module.ema.style_encoder.parameters())
    torch.testing.assert_close(se_ema, se_raw)
    dn_raw, dn_ema = recipe.denoiser.out.bias, module.ema.denoiser.out.bias
    torch.testing.assert_close(dn_ema, dn_raw - 1.0 + d)



def test_train_init_extends_a_trained_model(tmp_path):
    data = make_dataset(tmp_path / "data", clips=2)
    base_file = train("diffposetalk", data, tmp_path / "base", max_steps=3, config=TINY_CONFIG,
                      accelerator="cpu", devices=1, progress=False)
    base = load_checkpoint(base_file)
    wide_config = {**TINY_CONFIG, "style_steps": 0, "lr": 1e-12, "audio_encoder": {
        "name": "concat", "encoders": [TINY_CONFIG["audio_encoder"], {"name": "mel", "n_mels": 4}]}}
    wide = load_checkpoint(train("diffposetalk", data, tmp_path / "wide", max_steps=1, config=wide_config,
                                 accelerator="cpu", devices=1, progress=False, init=base_file))
    weight, old = wide.denoiser.audio_in.weight, base.denoiser.audio_in.weight
    assert weight.shape == (old.shape[0], old.shape[1] + 4)
    torch.testing.assert_close(weight[:, :old.shape[1]], old, atol=1e-6, rtol=0)  # copied (lr ≈ 0)
    assert weight[:, old.shape[1]:].abs().max() < 1e-6  # the new channels start at zero
    torch.testing.assert_close(wide.style_encoder.inp.weight, base.style_encoder.inp.weight)
    with pytest.raises(DataError, match="style encoder.*--init"):  # the same config from scratch
        train("diffposetalk", data, tmp_path / "scratch", max_steps=1, config=wide_config,
              accelerator="cpu", devices=1, progress=False)
    assert not (tmp_path / "scratch").exists()
