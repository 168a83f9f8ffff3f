"""Issue 13, deliverable 6: a trainable speech encoder trains inside the training step (never
cached), a frozen one is cached in eval mode, and waveform windows line up with motion windows."""

import numpy as np
import pytest
import torch

from facemotion.audio.encoders import build_audio_encoder
from facemotion.data.features import cache_features, load_features
from facemotion.data.native import read_manifest
from facemotion.data.windows import wave_window
from facemotion.errors import FacemotionError
from facemotion.recipes import load_checkpoint, train
from recipe_helpers import TINY_CONFIG, make_dataset


@pytest.fixture(scope="module")
def tiny_wav2vec2(tmp_path_factory):
    """A random-weight wav2vec2 with tiny sizes, saved like a downloaded model (dropout on)."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                            conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                            hidden_dropout=0.1, activation_dropout=0.1, attention_dropout=0.1)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("wav2vec2")
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path)
    return path


def test_trainable_wav2vec2_is_fine_tuned_in_the_training_step(tmp_path, tiny_wav2vec2, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the feature cache was used for a trainable encoder")

    monkeypatch.setattr("facemotion.recipes.training.cache_features", never)
    monkeypatch.setattr("facemotion.data.features.cache_features", never)
    monkeypatch.setattr("facemotion.data.windows.load_features", never)
    data = make_dataset(tmp_path / "data")
    config = {**TINY_CONFIG, "audio_encoder": {"name": "wav2vec2", "model_dir": str(tiny_wav2vec2),
                                                 "trainable": True}}
    model_path = train("diffposetalk", data, tmp_path / "run", max_steps=5, config=config, accelerator="cpu",
                       devices=1, progress=False)
    trained = load_checkpoint(model_path, audio_model_dir=tiny_wav2vec2)
    initial = build_audio_encoder({"name": "wav2vec2", "model_dir": str(tiny_wav2vec2)})
    mine, theirs = dict(trained.audio_encoder.model.named_parameters()), dict(initial.model.named_parameters())
    moved = [k for k in mine if not torch.equal(mine[k], theirs[k])]
    assert any(k.startswith("encoder.") for k in moved)  # the transformer was fine-tuned
    assert not [k for k in moved if k.startswith("feature_extractor.")]  # the CNN stays frozen (§3.2.1)
    assert torch.equal(trained.normalizer.mean("audio"), torch.zeros(16))  # no cached statistics
    feats = trained.audio_features(np.zeros(16000, np.float32))
    assert feats.shape == (25, 16) and torch.isfinite(feats).all()


def test_trainable_encoder_is_never_cached_and_frozen_one_is_cached_in_eval_mode(tmp_path, tiny_wav2vec2):
    data = make_dataset(tmp_path / "data", clips=2)
    recs = read_manifest(data)
    trainable = build_audio_encoder({"name": "wav2vec2", "model_dir": str(tiny_wav2vec2), "trainable": True})
    with pytest.raises(FacemotionError, match="trainable"):
        cache_features(data, recs, trainable, 25.0, progress=False)
    frozen = build_audio_encoder({"name": "wav2vec2", "model_dir": str(tiny_wav2vec2)}).train()
    dirs = cache_features(data, recs, frozen, 25.0, progress=False)
    from facemotion.audio.io import load_audio

    wave = load_audio(data / recs[0]["audio"])
    with torch.no_grad():
        expected = frozen.eval()(torch.from_numpy(wave)[None], 50, 25.0)[0].numpy()
    np.testing.assert_allclose(load_features(dirs, recs[0]), expected, atol=1e-5)  # no dropout


def test_wave_window_covers_the_motion_frames():
    wave = np.arange(16000, dtype=np.float32)
    w = wave_window(wave, 5, 10, 25.0)
    assert w.shape == (6400,) and w[0] == 5 * 640 and w[-1] == 15 * 640 - 1
    tail = wave_window(wave, 20, 10, 25.0)  # past the end: zero-padded
    assert tail.shape == (6400,) and tail[3199] == 15999 and not tail[3200:].any()
