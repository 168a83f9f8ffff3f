"""Spontaneous speech in the data engine: fillers, hesitations, breaths, voice qualities."""

from __future__ import annotations

import json

import numpy as np
import parselmouth
import pytest

from facemotion.audio.io import SAMPLE_RATE
from facemotion.data.native import load_motion
from facemotion.errors import DataError
from facemotion.metrics.lipsync import aperture_from_blendshapes
from facemotion.synth import corpus
from facemotion.synth.spontaneous import (
    FILLERS,
    VOICE_QUALITIES,
    apply_voice_quality,
    plan_utterance,
    speak_filler,
    speak_spontaneous,
)
from facemotion.synth.text import sample_sentence
from facemotion.synth.tts import VOICES, synthesize

VOICE = {v.key: v for v in VOICES}


def _pitch(wave: np.ndarray, floor: float = 75.0) -> np.ndarray:
    """Praat pitch track (Hz, 0 where unvoiced), 10 ms frames, from ``floor`` Hz."""
    sound = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE)
    return sound.to_pitch(0.01, floor, 600.0).selected_array["frequency"]


def _contiguous(phones, n_samples):
    assert phones[0][1] == pytest.approx(0.0, abs=1e-9)
    assert all(abs(a[2] - b[1]) < 1e-9 for a, b in zip(phones, phones[1:]))
    assert phones[-1][2] == pytest.approx(n_samples / SAMPLE_RATE, abs=1e-6)


def test_plan_keeps_the_sentence_and_adds_a_disfluency():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        text = sample_sentence(rng, 12)
        pieces = plan_utterance(rng, text)
        assert " ".join(p.text for p in pieces if p.kind == "words") == text
        assert any(p.kind in ("filler", "repeat") for p in pieces)
        assert all(p.text in FILLERS for p in pieces if p.kind == "filler")
        assert all(0.1 <= p.seconds <= 0.7 for p in pieces if p.kind == "pause")
        assert all(p.seconds >= 0.3 for p in pieces if p.breath)
        rng = np.random.default_rng(seed)
        assert plan_utterance(rng, sample_sentence(rng, 12)) == pieces  # a function of the seed


@pytest.mark.parametrize("key,variant", [("espeak:en-us", "m3"), ("flite:slt", None)])
def test_hums_are_voiced_bilabials_and_mm_hm_rises(key, variant):
    rng = np.random.default_rng(0)
    for filler in ("mm", "hm", "mm-hm"):
        wave, phones = speak_filler(filler, VOICE[key], variant, 1.0, 50.0, rng)
        _contiguous(phones, len(wave))
        assert [p for p, _, _ in phones] == {"mm": ["M"], "hm": ["HH", "M"], "mm-hm": ["M", "HH", "M"]}[filler]
        assert sum(e - s for p, s, e in phones if p == "M") >= 0.25  # drawn out, as hums are
        f0 = _pitch(wave)
        hum = [f0[int(s * 100) + 3:int(e * 100) - 3] for p, s, e in phones if p == "M"]
        assert all((h > 0).mean() > 0.6 for h in hum), filler  # voiced through the closure
        if filler == "mm-hm":
            assert np.median(hum[1][hum[1] > 0]) > 1.08 * np.median(hum[0][hum[0] > 0])
    with pytest.raises(ValueError, match="filler"):
        speak_filler("erm", VOICE[key], variant, 1.0, 50.0, rng)


def test_spontaneous_utterance_is_timed_and_breathes_quietly():
    text = "We will bring the maps to the market, and then we might walk home before the rain."
    breaths = 0
    for seed in range(6):
        wave, phones, spoken, summary = speak_spontaneous(VOICE["espeak:en-gb"], "f1", 1.0, 50.0, text,
                                                          np.random.default_rng(seed))
        _contiguous(phones, len(wave))
        assert spoken.endswith("rain.") and set(summary) == {"fillers", "breaths", "hesitations"}
        assert summary["fillers"] or summary["hesitations"]
        for f in summary["fillers"]:
            assert f in spoken.lower()
        speech = np.concatenate([wave[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)] for p, s, e in phones if p != "SIL"])
        rms = np.sqrt(np.mean(speech.astype(np.float64) ** 2))
        for p, s, e in phones:
            if p == "SIL" and e - s >= 0.3:
                gap = wave[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)].astype(np.float64)
                level = np.sqrt(np.mean(gap ** 2))
                breaths += level > 0
                assert level < rms * 10 ** (-15 / 20)  # a breath is far below the speech
    assert breaths >= 2


def test_voice_qualities_change_the_voice_not_the_timing():
    wave, _ = synthesize(VOICE["espeak:en-us"], "Maybe my mother will bring the bread home by nine.", "m1")
    f0 = _pitch(wave)
    modal_median, modal_voiced = np.median(f0[f0 > 0]), (f0 > 0).mean()
    for kind in VOICE_QUALITIES:
        y = apply_voice_quality(wave, kind, np.random.default_rng(1))
        assert y.shape == wave.shape and y.dtype == np.float32 and np.isfinite(y).all()
        assert np.abs(y).max() == pytest.approx(0.9, abs=1e-3)
        g = _pitch(y, floor=40.0)  # vocal fry lies below Praat's default floor
        if kind == "whisper":
            assert (g > 0).mean() < 0.4 * modal_voiced
        elif kind == "creaky":
            assert np.median(g[g > 0]) < 0.75 * modal_median
        else:
            assert np.median(g[g > 0]) > 1.5 * modal_median
        # the loudness contour (where the speech is) is kept
        env = lambda x: np.sqrt(np.convolve(x.astype(np.float64) ** 2, np.ones(800) / 800, "same"))  # noqa: E731
        assert np.corrcoef(env(wave), env(y))[0, 1] > 0.7, kind
    with pytest.raises(ValueError, match="voice quality"):
        apply_voice_quality(wave, "growl", np.random.default_rng(0))


def test_spontaneous_clips_shut_the_lips_through_hums(tmp_path):
    hums = shut = 0
    kinds = set()
    for index in range(12):
        rec = corpus.make_clip(tmp_path, seed=5, fps=25.0, shard=0, index=index, spontaneous=1.0)
        assert isinstance(rec, dict) and rec["spontaneous"] is not None
        kinds.add(rec["spontaneous"]["voice_quality"])
        m = load_motion(tmp_path, rec)
        aperture = aperture_from_blendshapes(m["blendshapes"]) * 1000.0  # mm
        for p, s, e in json.loads(str(m["phones"])):
            if p == "M" and e - s >= 0.25:  # a hum (words' /m/ are shorter)
                mid = range(int(round(s * 25)) + 2, int(round(e * 25)) - 1)
                hums += len(mid)
                shut += int((aperture[list(mid)] < 2.0).sum())
    assert hums >= 20 and shut / hums >= 0.9
    assert len(kinds) >= 2  # some clips in another voice quality


def test_spontaneous_fraction_is_a_corpus_setting(tmp_path):
    out = tmp_path / "c"
    out.mkdir()
    (out / "synth.json").write_text(json.dumps({"seed": 0, "fps": 25.0, "shard_size": 50}))  # an older corpus
    corpus._prepare(out, 0, 25.0, 50, 0.0)
    with pytest.raises(DataError, match="spontaneous"):
        corpus._prepare(out, 0, 25.0, 50, 0.3)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        corpus.generate_corpus(tmp_path / "d", 0.01, spontaneous=1.5, progress=False)


def test_cli_states_the_default_fraction(capsys):
    from facemotion.cli import main

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert f"default: {corpus.SPONTANEOUS_FRACTION}" in " ".join(capsys.readouterr().out.split())


def test_spontaneous_clip_does_not_depend_on_what_the_process_made_before(tmp_path):
    import soundfile as sf

    first = [corpus.make_clip(tmp_path / "a", seed=5, fps=25.0, shard=0, index=i, spontaneous=1.0) for i in (2, 3)]
    again = [corpus.make_clip(tmp_path / "b", seed=5, fps=25.0, shard=0, index=i, spontaneous=1.0) for i in (3, 2)]
    for rec_a, rec_b in zip(first, again[::-1]):
        np.testing.assert_array_equal(sf.read(tmp_path / "a" / rec_a["audio"])[0],
                                      sf.read(tmp_path / "b" / rec_b["audio"])[0])
        np.testing.assert_array_equal(load_motion(tmp_path / "a", rec_a)["blendshapes"],
                                      load_motion(tmp_path / "b", rec_b)["blendshapes"])
