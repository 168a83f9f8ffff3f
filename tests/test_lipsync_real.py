"""Lip sync on real speech: the shipped model must close the lips on /p b m/ and open them on
open vowels (thresholds in facemotion.metrics.lipsync.THRESHOLDS); a model-free baseline must not
pass the same check."""

import os
from pathlib import Path

import numpy as np
import pytest

from facemotion.metrics.lipsync import (ARCTIC_TRANSCRIPT, SegmentCache, SpeechItem,
                                        aperture_from_blendshapes, evaluate_real_speech,
                                        load_realval, viseme_baseline)

ROOT = Path(__file__).resolve().parents[1]
REALVAL = Path(os.environ.get("FACEMOTION_REALVAL", ROOT.parent / "shared" / "audio" / "realval"))
DEFAULT_MODEL = ROOT / "src" / "facemotion" / "pretrained" / "default.pt"
# recordings rich in /p b m/ (about 30 bilabial segments with the ARCTIC example)
SUBSET = ("ps_sense_and_sensibility_01_austen_64kb-0870.wav",
          "ps_sense_and_sensibility_01_austen_64kb-0920.wav",
          "ps_sense_and_sensibility_01_austen_64kb-0930.wav",
          "ps_cards_005.wav", "mfa_mfa_puddy.flac", "mfa_mfa_bottle.flac")


@pytest.fixture(scope="module")
def items():
    if not (REALVAL / "transcripts.json").is_file():
        pytest.skip(f"real speech not found at {REALVAL} (set FACEMOTION_REALVAL)")
    chosen = [i for i in load_realval(REALVAL) if i.audio.name in SUBSET]
    assert len(chosen) == len(SUBSET)
    return chosen + [SpeechItem(ROOT / "examples" / "cmu_arctic_slt_a0009.wav", ARCTIC_TRANSCRIPT)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return SegmentCache(tmp_path_factory.mktemp("segments") / "segments.json")


def test_viseme_baseline_fails_the_check(items, cache):
    report = evaluate_real_speech(viseme_baseline(25.0, cache), items, 25.0, cache)
    assert report.num_bilabial >= 25 and not report.skipped
    assert not report.passes(), report.summary()


@pytest.fixture(scope="module")
def default_model_report(items, cache):
    """The shipped model's lip sync on the subset (seed 0, default settings)."""
    from facemotion import Animator

    if not DEFAULT_MODEL.is_file():
        pytest.skip(f"no shipped model at {DEFAULT_MODEL}")
    animator = Animator.from_pretrained("default")
    report = evaluate_real_speech(
        lambda path: aperture_from_blendshapes(animator.generate(path, seed=0)[0].blendshapes),
        items, animator.fps, cache)
    print(report.summary())
    assert report.num_bilabial >= 25 and not report.skipped
    return report


#: what the shipped model measures on this subset (seed 0): closure rate, open/bilabial ratio, shut
#: open vowels; a new model may fall short of it by about two /p b m/, a tenth of the ratio,
#: one open vowel in thirty
SHIPPED_LEVEL = (0.938, 5.34, 0.091)


def test_default_model_keeps_its_level(default_model_report):
    report, (closure, ratio, shut) = default_model_report, SHIPPED_LEVEL
    assert report.closure_rate >= closure - 0.07, report.summary()
    assert report.open_bilabial_ratio >= ratio - 0.3, report.summary()
    assert report.shut_open_vowel_rate <= shut + 0.035, report.summary()


@pytest.mark.xfail(raises=AssertionError, strict=True,
                   reason="on this subset the shipped model misses the shut-open-vowel target (THRESHOLDS; closure "
                          "0.94, ratio 5.34, shut open vowels 0.091; on all of realval + ARCTIC it meets "
                          "them, see the README); strict, so a model that meets them here makes this "
                          "marker fail and be removed")
def test_default_model_meets_the_real_speech_targets(default_model_report):
    report = default_model_report
    assert report.passes(), report.summary()


MEDIA2FACE_MODEL = ROOT / "src" / "facemotion" / "pretrained" / "media2face.pt"


def test_media2face_keyframe_edit_holds_the_key_and_keeps_closure(items, cache):
    """Media2Face §4.3 on the shipped model: an "angry" keyframe at 1 s, edited into each sample
    (strength 0.5), is held to 1e-3 in weight units, and the /p b m/ closure rate over the
    recordings stays within 0.05 of the unedited samples'."""
    from facemotion import Animator
    from facemotion.face.keyframes import parse_keyframes
    from facemotion.metrics.lipsync import aperture_from_motion

    if not MEDIA2FACE_MODEL.is_file():
        pytest.skip(f"no shipped model at {MEDIA2FACE_MODEL}")
    animator = Animator.from_pretrained("media2face")
    keys = [{"time": 1.0, "expression": "angry"}]
    key = parse_keyframes(keys, animator.fps)[0]
    motions = {}
    for item in items:
        base = animator.generate(item.audio, seed=0)[0]
        edited = animator.edit(base, keyframes=keys, strength=0.5, seed=0)
        assert np.abs(edited.blendshapes[key.frame] - key.weights).max() < 1e-3
        motions[item.audio] = {"unedited": base.motion, "edited": edited.motion}
    closure = {name: evaluate_real_speech(lambda path: aperture_from_motion(animator.space, motions[Path(path)][name]),
                                          items, animator.fps, cache).closure_rate
               for name in ("unedited", "edited")}
    assert abs(closure["edited"] - closure["unedited"]) <= 0.05, closure
