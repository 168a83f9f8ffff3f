from pathlib import Path

import numpy as np
import pytest
import torch

from facemotion.audio.encoders import (
    ConcatEncoder,
    HubertEncoder,
    MelEncoder,
    PhoneticEncoder,
    Wav2Vec2Encoder,
    build_audio_encoder,
    frame_average,
)
from facemotion.audio.io import SAMPLE_RATE, load_audio
from facemotion.audio.phones import PHONE_INDEX
from facemotion.errors import AudioError, FacemotionError

WAV = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"


@pytest.fixture(scope="module")
def speech():
    if WAV.exists():
        return load_audio(WAV)
    rng = np.random.default_rng(0)  # fallback: amplitude-modulated noise
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    return (rng.standard_normal(len(t)) * 0.1 * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)


def _tiny_model_dir(tmp_path_factory, kind):
    from transformers import HubertConfig, HubertModel, Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    config_cls, model_cls = {"wav2vec2": (Wav2Vec2Config, Wav2Vec2Model), "hubert": (HubertConfig, HubertModel)}[kind]
    config = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(16, 16, 16, 16, 16, 16, 16), num_conv_pos_embeddings=16,
                        num_conv_pos_embedding_groups=2)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp(kind)
    model_cls(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path)
    return path


def test_frame_average_resamples_exactly():
    ramp = np.arange(100, dtype=np.float32)[:, None]  # 1 s at 100 Hz
    out = frame_average(ramp, 100.0, 25, 25.0)
    np.testing.assert_allclose(out[:, 0], np.arange(25) * 4 + 1.5, atol=1e-4)
    padded = frame_average(ramp, 100.0, 30, 25.0)  # past the end → last frame
    assert padded.shape == (30, 1) and padded[-1, 0] == pytest.approx(99.0)
    up = frame_average(ramp[:4], 100.0, 8, 200.0)
    np.testing.assert_allclose(up[:, 0], [0, 0, 1, 1, 2, 2, 3, 3])


def test_mel_shape_and_normalisation(speech):
    enc = MelEncoder()
    feats = enc.encode_numpy(speech, 78, 25.0)
    assert feats.shape == (78, 80) and enc.dim == 80
    assert np.abs(feats.mean(axis=0)).max() < 0.2  # per-band normalised over the utterance
    assert 0.6 < feats.std(axis=0).mean() < 1.1
    batch = enc(torch.from_numpy(np.stack([speech, speech[::-1].copy()])), 50, 30.0)
    assert batch.shape == (2, 50, 80)
    np.testing.assert_allclose(batch[0].numpy(), enc.encode_numpy(speech, 50, 30.0), atol=1e-6)
    assert not list(enc.parameters())


def test_phonetic_features_speech_vs_silence(speech):
    enc = PhoneticEncoder()
    feats = enc.encode_numpy(speech, 78, 25.0)
    assert feats.shape == (78, enc.dim) and enc.dim == 40 + 10 + 1
    sil = PHONE_INDEX["SIL"]
    np.testing.assert_allclose(feats[:, :40].sum(axis=1), 1.0, atol=1e-5)  # soft one-hot over phones
    speech_frames = feats[20:60]  # 0.8–2.4 s is speech in the example
    assert speech_frames[:, sil].mean() < 0.2
    silence = enc.encode_numpy(np.zeros(2 * SAMPLE_RATE, dtype=np.float32), 50, 25.0)
    assert silence[:, sil].min() > 0.99
    assert np.abs(silence - feats[:50]).max() > 0.5


def test_config_round_trip_rebuilds_identical_encoder(speech):
    enc = ConcatEncoder([PhoneticEncoder(smooth=0.08, visemes=False), MelEncoder(n_mels=40)])
    config = enc.config()
    rebuilt = build_audio_encoder(config)
    assert rebuilt.config() == config and rebuilt.dim == enc.dim == 41 + 40
    np.testing.assert_array_equal(rebuilt.encode_numpy(speech, 40, 25.0), enc.encode_numpy(speech, 40, 25.0))
    assert build_audio_encoder("mel").dim == 80
    with pytest.raises(FacemotionError, match="'nope'"):
        build_audio_encoder({"name": "nope"})


@pytest.mark.parametrize("kind,cls", [("wav2vec2", Wav2Vec2Encoder), ("hubert", HubertEncoder)])
def test_transformer_encoders(tmp_path_factory, speech, kind, cls):
    model_dir = _tiny_model_dir(tmp_path_factory, kind)
    enc = build_audio_encoder({"name": kind, "trainable": False}, model_dir=model_dir)
    assert isinstance(enc, cls) and enc.dim == 32
    wave = torch.from_numpy(np.stack([speech[:32000], speech[8000:40000]]))
    out = enc(wave, 50, 25.0)
    assert out.shape == (2, 50, 32) and torch.isfinite(out).all()
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training
    np.testing.assert_allclose(enc.encode_numpy(speech[:32000], 50, 25.0), out[0].numpy(), atol=1e-5)

    trainable = build_audio_encoder({"name": kind, "model_dir": "/nowhere", "trainable": True}, model_dir=model_dir)
    assert all(p.requires_grad for p in trainable.model.encoder.parameters())
    assert not any(p.requires_grad for p in trainable.model.feature_extractor.parameters())
    trainable(wave, 30, 30.0).sum().backward()
    assert trainable.model.encoder.layers[0].attention.q_proj.weight.grad is not None
    rebuilt = build_audio_encoder(trainable.config())
    assert rebuilt.config() == trainable.config() and rebuilt.trainable


def test_transformer_model_dir_errors(tmp_path):
    with pytest.raises(AudioError, match="missing_model: wav2vec2 model directory not found"):
        Wav2Vec2Encoder(tmp_path / "missing_model")
    with pytest.raises(AudioError, match="config.json missing"):
        HubertEncoder(tmp_path)
    with pytest.raises(FacemotionError, match="model_dir"):
        build_audio_encoder({"name": "hubert"})


def test_phonetic_words_search(speech):
    enc = build_audio_encoder({"name": "phonetic", "search": "words", "vocabulary": 5000})
    assert enc.config()["vocabulary"] == 5000 and enc.dim == PhoneticEncoder().dim
    feats = enc.encode_numpy(speech, 80, 25.0)
    assert feats.shape == (80, enc.dim)
    assert np.allclose(feats[:, :len(PHONE_INDEX)].sum(axis=1), 1.0, atol=1e-4)  # phone posteriors-ish
    if WAV.exists():  # "table" ends the sentence: its /b/ near 2.7 s
        assert feats[int(2.6 * 25):int(2.85 * 25), PHONE_INDEX["B"]].max() > 0.5
    with pytest.raises(FacemotionError, match="unknown search"):
        PhoneticEncoder(search="lattice")


def test_mel_stream_gives_the_offline_frames():
    """Log-mel features pushed in uneven chunks equal the whole-utterance features at several fps;
    an utterance-normalised encoder refuses to stream."""
    from facemotion.audio.encoders import MelEncoder
    from facemotion.errors import FacemotionError

    wave = np.random.default_rng(0).normal(0, 0.1, 16000 + 1234).astype(np.float32)
    enc = MelEncoder(n_mels=16, normalize=False)
    for fps in (25.0, 30.0, 60.0):
        frames = int(round(len(wave) / 16000 * fps))
        offline = enc.encode_numpy(wave, frames, fps)
        stream, out, i = enc.stream(fps), [], 0
        for n in np.random.default_rng(1).integers(1, 3000, 100):
            out.append(stream.push(wave[i:i + n]))
            i += n
            if i >= len(wave):
                break
        out.append(stream.finish())
        streamed = np.concatenate(out)
        assert streamed.shape == offline.shape
        np.testing.assert_allclose(streamed, offline, atol=1e-5)
    with pytest.raises(FacemotionError, match="normalis"):
        MelEncoder().stream(25.0)


@pytest.mark.skipif((__import__("os").cpu_count() or 1) < 2, reason="the helper process needs two CPUs")
def test_concat_runs_the_phone_loop_in_the_helper_process_with_the_same_features(speech, monkeypatch):
    import os
    import signal

    from facemotion import processes
    from facemotion.audio import encoders

    wave = np.resize(speech, int((encoders.HELPER_MIN_S + 2) * SAMPLE_RATE))
    frames, fps = int(len(wave) / SAMPLE_RATE * 25), 25.0
    concat = ConcatEncoder([PhoneticEncoder(), MelEncoder()])
    apart = concat.encode_numpy(wave, frames, fps)
    helper = processes.helper_pool()
    workers = list(helper._processes.values())
    assert len(workers) == 1 and workers[0].is_alive() and workers[0].pid != os.getpid()
    monkeypatch.setattr(encoders, "HELPER_MIN_S", float("inf"))
    here = concat.encode_numpy(wave, frames, fps)
    assert apart.shape == (frames, concat.dim) and np.array_equal(apart, here)
    monkeypatch.undo()
    os.kill(workers[0].pid, signal.SIGKILL)  # a killed helper: the search runs here, then a new helper
    workers[0].join(5)
    assert np.array_equal(concat.encode_numpy(wave, frames, fps), here)
    assert np.array_equal(concat.encode_numpy(wave, frames, fps), here)
    assert processes.helper_pool() is not helper


def test_mel_power_gives_librosas_frames(speech):
    import librosa

    from facemotion.audio.encoders import mel_power

    for center, wave in ((True, speech), (False, speech[:16000]), (True, speech[:300])):
        ours = mel_power(wave, 80, 20.0, 7600.0, center=center)
        ref = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=512, win_length=400, hop_length=160,
                                             n_mels=80, fmin=20.0, fmax=7600.0, power=2.0, center=center).T
        assert ours.shape == ref.shape and ours.dtype == np.float32
        np.testing.assert_allclose(np.log(ours + 1e-6), np.log(ref + 1e-6), atol=1e-4)
