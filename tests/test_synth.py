"""The data engine: TTS timing, lip closure, jaw, blinks, seeds, resumable corpus, a rendered clip."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from facemotion.audio.io import SAMPLE_RATE
from facemotion.audio.phones import PHONES
from facemotion.data.native import load_motion, read_manifest
from facemotion.face.arkit import ARKIT_INDEX
from facemotion.synth import corpus
from facemotion.synth.animate import PHONE_VISEMES, animate, lower_face, num_frames
from facemotion.synth.speaker import Style, augment, change_voice
from facemotion.synth.text import sample_sentence
from facemotion.synth.tts import VOICES, ipa_to_arpabet, synthesize

ARTIFACTS = Path(__file__).parent / "artifacts"
VOICE = {v.key: v for v in VOICES}
BILABIAL_TEXT = "Maybe the people will bob about in a boat, before my mom pays me a bumper amount."


@pytest.fixture(scope="module")
def clips():
    """(voice key, wave, phones) for one sentence on one voice of each engine."""
    out = []
    for key, variant in (("espeak:en-us", "f2"), ("flite:slt", None), ("festival:kal_diphone", None)):
        wave, phones = synthesize(VOICE[key], BILABIAL_TEXT, variant)
        out.append((key, wave, phones))
    return out


def _centre_frames(phones, fps, num, wanted):
    return [min(num - 1, int(round(0.5 * (s + e) * fps))) for p, s, e in phones if p in wanted]


def _lip_aperture_mm(blendshapes, head):
    """Rig lip aperture (mm) per frame, or None while the built-in rig does not exist."""
    if importlib.util.find_spec("facemotion.face.space") is None:
        return None
    from facemotion.face.space import BlendshapeSpace

    space = BlendshapeSpace()
    verts = space.rig.vertices(blendshapes, np.zeros_like(head))
    import torch

    return space.lip_aperture(torch.from_numpy(np.asarray(verts))).numpy() * 1000.0


def test_tts_engines_give_contiguous_arpabet_phones(clips):
    for key, wave, phones in clips:
        assert wave.dtype == np.float32 and wave.size > SAMPLE_RATE
        assert all(p in PHONES for p, _, _ in phones), key
        starts, ends = np.array([s for _, s, _ in phones]), np.array([e for _, _, e in phones])
        np.testing.assert_allclose(starts[1:], ends[:-1], atol=1e-6, err_msg=key)
        assert ends[-1] == pytest.approx(wave.size / SAMPLE_RATE), key
        seq = [p for p, _, _ in phones if p != "SIL"]
        # "maybe the people": M EY B IY ... P IY P AH L; every engine reads it
        assert seq[:4] == ["M", "EY", "B", "IY"], (key, seq[:6])
        assert sum(p in ("P", "B", "M") for p in seq) >= 12, key
    assert ipa_to_arpabet("ɑːɹ") == ["AA", "R"] and ipa_to_arpabet("") == ["SIL"]
    assert set(PHONES) <= set(PHONE_VISEMES)


def test_every_bilabial_closes_the_lips(clips):
    fps = 25.0
    for key, wave, phones in clips:
        style = Style(articulation=1.3, width=0.2, smile=0.25, asymmetry=0.15)
        bs, head = animate(phones, wave, fps, np.random.default_rng(0), style, "surprised", 1.0)
        frames = _centre_frames(phones, fps, len(bs), {"P", "B", "M"})
        assert len(frames) >= 12
        jaw, close = bs[frames, ARKIT_INDEX["jawOpen"]], bs[frames, ARKIT_INDEX["mouthClose"]]
        assert np.all(jaw <= 0.08 + 1e-6), key
        np.testing.assert_allclose(close, jaw, atol=1e-6, err_msg=key)
        for name in ("mouthFunnel", "mouthLowerDownLeft", "mouthUpperUpRight"):
            assert np.all(bs[frames, ARKIT_INDEX[name]] == 0.0), (key, name)
        aperture = _lip_aperture_mm(bs, head)
        if aperture is not None:
            assert np.all(aperture[frames] < 2.0), (key, aperture[frames])
            vowels = _centre_frames(phones, fps, len(bs), {"AA", "AE", "AH"})
            assert np.median(aperture[vowels]) > 4.0


def test_open_vowels_open_the_jaw_more_than_closed_vowels(clips):
    fps = 25.0
    for key, wave, phones in clips:
        bs = lower_face(phones, wave, fps)
        num = len(bs)
        text = "Father saw a cat, but he knew we would see it too."
        w2, ph2 = synthesize(VOICE[key], text, "m3" if key.startswith("espeak") else None)
        bs2 = lower_face(ph2, w2, fps)
        jaw = np.concatenate([bs[:, ARKIT_INDEX["jawOpen"]], bs2[:, ARKIT_INDEX["jawOpen"]]])
        open_f = (_centre_frames(phones, fps, num, {"AA", "AE", "AO"})
                  + [num + f for f in _centre_frames(ph2, fps, len(bs2), {"AA", "AE", "AO"})])
        closed_f = (_centre_frames(phones, fps, num, {"IY", "UW", "IH", "UH"})
                    + [num + f for f in _centre_frames(ph2, fps, len(bs2), {"IY", "UW", "IH", "UH"})])
        assert len(open_f) >= 3 and len(closed_f) >= 3, key
        assert jaw[open_f].mean() > 1.5 * jaw[closed_f].mean(), (key, jaw[open_f].mean(), jaw[closed_f].mean())


def test_blink_rate_over_a_minute_of_speech():
    rng = np.random.default_rng(3)
    seconds, blinks = 0.0, 0
    fps = 25.0
    while seconds < 60.0:
        voice = VOICES[int(rng.integers(7))]  # espeak voices: fast
        wave, phones = synthesize(voice, sample_sentence(rng, 20), "m1")
        bs, _ = animate(phones, wave, fps, rng)
        lid = bs[:, ARKIT_INDEX["eyeBlinkLeft"]]
        blinks += int(np.sum((lid[1:] > 0.5) & (lid[:-1] <= 0.5)))
        seconds += wave.size / SAMPLE_RATE
        assert np.all(lid == bs[:, ARKIT_INDEX["eyeBlinkRight"]])
    rate = blinks / seconds * 60.0
    assert 10.0 <= rate <= 25.0, rate


def test_two_seeds_same_lips_different_upper_face_and_head(clips):
    _, wave, phones = clips[0]
    style = Style(brow=1.2, head=1.0)
    a, ha = animate(phones, wave, 25.0, np.random.default_rng(1), style, "happy", 0.8)
    b, hb = animate(phones, wave, 25.0, np.random.default_rng(2), style, "happy", 0.8)
    lips = [ARKIT_INDEX[n] for n in ("jawOpen", "mouthClose", "mouthPucker", "mouthFunnel", "mouthPressLeft")]
    np.testing.assert_array_equal(a[:, lips], b[:, lips])
    closed_a = a[:, ARKIT_INDEX["jawOpen"]] - a[:, ARKIT_INDEX["mouthClose"]] < 1e-6
    closed_b = b[:, ARKIT_INDEX["jawOpen"]] - b[:, ARKIT_INDEX["mouthClose"]] < 1e-6
    np.testing.assert_array_equal(closed_a, closed_b)
    blink = ARKIT_INDEX["eyeBlinkLeft"]
    assert np.abs(a[:, blink] - b[:, blink]).max() > 0.5
    assert np.abs(ha - hb).mean() > 0.005
    # same seed: identical
    c, hc = animate(phones, wave, 25.0, np.random.default_rng(1), style, "happy", 0.8)
    np.testing.assert_array_equal(a, c)
    np.testing.assert_array_equal(ha, hc)


def test_voice_change_keeps_timing_and_augment_keeps_length(clips):
    _, wave, _ = clips[1]
    slow = change_voice(wave, 1.2, 210.0, 1.2, speed=0.9)
    assert slow.size == round(wave.size / 0.9)
    assert np.abs(slow).max() == pytest.approx(0.9, abs=1e-3)
    np.testing.assert_array_equal(slow, change_voice(wave, 1.2, 210.0, 1.2, speed=0.9))
    for seed in range(4):
        y, effects = augment(slow, np.random.default_rng(seed))
        assert y.shape == slow.shape and 1 <= len(effects) <= 2 and np.abs(y).max() <= 1.0
        assert not np.allclose(y, slow)


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in (root / "clips").rglob("*") if p.is_file()}


def test_interrupted_corpus_resumes_without_duplicates(tmp_path, monkeypatch):
    # seed 1: the first shards use fast (espeak/flite) voices; one clip a shard, ~4 shards
    hours, size, seed = 30.0 / 3600, 1, 1
    full = corpus.generate_corpus(tmp_path / "full", hours, workers=2, seed=seed, shard_size=size, progress=False)
    full_ids = [r["id"] for r in read_manifest(tmp_path / "full")]

    calls = {"n": 0}
    real_append = corpus.append_manifest

    def crash_on_third(root, recs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed after writing shard 2's files, before its manifest line
        real_append(root, recs)

    monkeypatch.setattr(corpus, "append_manifest", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        corpus.generate_corpus(tmp_path / "cut", hours, workers=1, seed=seed, shard_size=size, progress=False)
    cut = tmp_path / "cut"
    partial = read_manifest(cut)
    assert {r["shard"] for r in partial} == {0, 1}
    assert any("/00002/" in f for f in _files(cut))  # orphan files of the interrupted shard
    monkeypatch.setattr(corpus, "append_manifest", real_append)

    resumed = corpus.generate_corpus(cut, hours, workers=1, seed=seed, shard_size=size, progress=False)
    records = read_manifest(cut)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) and ids == full_ids
    assert len(ids) > 3 and resumed["clips"] == full["clips"] and resumed["hours"] >= hours
    assert _files(cut) == {r[k] for r in records for k in ("audio", "motion")}
    for r in records:
        m = load_motion(cut, r)
        wave, sr = sf.read(cut / r["audio"])
        assert sr == SAMPLE_RATE and len(wave) / sr == pytest.approx(r["duration"], abs=1e-3)
        assert m["blendshapes"].shape == (num_frames(r["duration"], r["fps"]), 52)
        assert m["head_rotation"].shape == (len(m["blendshapes"]), 3)
        assert json.loads(str(m["phones"]))[-1][2] == pytest.approx(r["duration"], abs=1e-3)
        assert r["emotion"] and r["prompt"] and r["text"][-1] in ".?!"
    other = read_manifest(tmp_path / "full")
    np.testing.assert_array_equal(load_motion(cut, records[-1])["blendshapes"],
                                  load_motion(tmp_path / "full", other[-1])["blendshapes"])
    with pytest.raises(Exception, match="seed"):
        corpus.generate_corpus(cut, hours, workers=1, seed=seed + 1, shard_size=size, progress=False)


def test_render_one_generated_clip(tmp_path):
    if importlib.util.find_spec("facemotion.animation") is None:
        pytest.skip("facemotion.animation (the exporters) does not exist yet: no video rendered")
    from facemotion.animation import Animation

    rec = corpus.make_clip(tmp_path, seed=0, fps=25.0, shard=0, index=1)  # a 3.2 s "happy" clip
    assert isinstance(rec, dict)
    m = load_motion(tmp_path, rec)
    anim = Animation.from_blendshapes(m["blendshapes"], m["head_rotation"], fps=25.0,
                     audio=tmp_path / rec["audio"], seed=0)
    paths = anim.save(tmp_path / "video", formats=["mp4"], size=384)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(paths["mp4"], ARTIFACTS / "synth_clip.mp4")
    assert (ARTIFACTS / "synth_clip.mp4").stat().st_size > 10_000
