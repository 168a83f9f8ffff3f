"""Metrics on tiny hand-computed cases, and the lip-sync report on synthetic traces."""

import math

import numpy as np
import pytest
import soundfile as sf

from facemotion.audio.phones import PhoneSegment
from facemotion.metrics import beat_alignment, diversity, fdd, head_motion_beats, lve, mod, mve
from facemotion.metrics import lipsync
from facemotion.metrics.lipsync import LipSyncReport, SegmentCache, measure_lipsync, segment_frames

MM = 1e-3


def test_lve_and_mve():
    gt = np.zeros((2, 3, 3))
    pred = gt.copy()
    pred[0, 0] = [3 * MM, 4 * MM, 0]  # 5 mm, lip
    pred[0, 1] = [0, 1 * MM, 0]       # 1 mm, lip
    pred[0, 2] = [0.1, 0, 0]          # 100 mm, not a lip vertex
    pred[1, 1] = [0, 0, 2 * MM]       # 2 mm, lip
    assert lve(pred, gt, [0, 1]) == pytest.approx(3.5 * MM)  # mean of per-frame maxima 5, 2
    assert mve(pred, gt) == pytest.approx((5 + 1 + 100 + 2) * MM / 6)
    with pytest.raises(ValueError):
        lve(pred[:1], gt, [0])


def test_fdd_uses_std_of_squared_displacement_of_upper_face_only():
    template = np.zeros((2, 3))
    gt = np.zeros((4, 2, 3))
    gt[:, 0, 0] = [0, 1, 0, 1]          # squared displacement 0 1 0 1 -> std 0.5
    pred = np.zeros((4, 2, 3))
    pred[:, 0, 0] = 1.0                 # constant -> std 0
    pred[:, 1, 1] = [0, 5, 0, 5]        # vertex 1 is not upper face: ignored
    assert fdd(pred, gt, [0], template) == pytest.approx(0.5)
    assert fdd(gt, gt, [0, 1], template) == 0.0


def test_mod_mean_absolute_aperture_difference():
    gt = np.zeros((2, 2, 3))
    gt[:, 0, 1] = [1 * MM, 2 * MM]      # upper lip above lower lip by 1, 2 mm
    pred = np.zeros((2, 2, 3))
    pred[:, 0, 1] = [2 * MM, 2 * MM]
    assert mod(pred, gt, 0, 1) == pytest.approx(0.5 * MM)


def _pose_from_speeds(speeds):
    yaw = np.concatenate([[0.0], np.cumsum(speeds)])
    return np.stack([np.zeros_like(yaw), yaw, np.zeros_like(yaw)], axis=1)


def test_head_motion_beats_and_beat_alignment():
    gt = _pose_from_speeds([3, 1, 3, 3, 1, 3, 3])     # speed minima between frames 1-2 and 4-5
    pred = _pose_from_speeds([3, 1, 3, 3, 3, 1, 3])
    assert head_motion_beats(gt, smooth=0).tolist() == [2, 5]
    assert head_motion_beats(pred, smooth=0).tolist() == [2, 6]
    expected = (1 + math.exp(-1 / (2 * 3.0**2))) / 2
    assert beat_alignment(pred, gt, sigma=3.0, smooth=0) == pytest.approx(expected)
    assert beat_alignment(gt, gt, smooth=0) == 1.0
    still = _pose_from_speeds([1] * 7)
    assert beat_alignment(still, gt, smooth=0) == 0.0
    assert math.isnan(beat_alignment(gt, still, smooth=0))


def test_diversity_mean_pairwise_distance():
    scalars = np.array([0.0, 1.0, 3.0]).reshape(3, 1, 1)
    assert diversity(scalars) == pytest.approx((1 + 3 + 2) / 3)
    a = np.zeros((2, 2))
    b = np.array([[3.0, 4.0], [0.0, 0.0]])              # frame distances 5, 0
    assert diversity(np.stack([a, b])) == pytest.approx(2.5)
    with pytest.raises(ValueError):
        diversity(scalars[:1])


def test_segment_frames_overlap_and_tolerance():
    assert segment_frames(0.5, 0.7, 10, 20) == slice(5, 7)
    assert segment_frames(0.5, 0.7, 10, 20, tolerance=1) == slice(4, 8)
    assert segment_frames(0.52, 0.61, 10, 20) == slice(5, 7)
    assert segment_frames(0.0, 0.1, 10, 20, tolerance=1) == slice(0, 2)


def _synthetic_item():
    fps = 10.0
    ap = np.full(20, 6 * MM)
    ap[5:7] = 3 * MM          # P, frames 5-6 open ...
    ap[7] = 1 * MM            # ... but shut one frame after the segment: within tolerance
    ap[9:13] = 4 * MM         # M never closes
    ap[2:4] = [10 * MM, 12 * MM]   # AA
    ap[14:16] = [1 * MM, 1.5 * MM]  # EH, lips shut
    ap[17:19] = 0.0           # IY: not an open vowel, ignored
    segs = [PhoneSegment("SIL", 0.0, 0.2), PhoneSegment("AA", 0.2, 0.4), PhoneSegment("P", 0.5, 0.7),
            PhoneSegment("M", 1.0, 1.2), PhoneSegment("EH", 1.4, 1.6), PhoneSegment("IY", 1.7, 1.9),
            PhoneSegment("B", 2.5, 2.7)]  # beyond the last frame: skipped
    return ap, fps, segs


def test_lipsync_report_by_hand():
    ap, fps, segs = _synthetic_item()
    item = measure_lipsync(ap, fps, segs, "a")
    assert item.bilabial_min == pytest.approx([1 * MM, 4 * MM])
    assert item.bilabial_segments == [segs[2], segs[3]]  # P and M; the B beyond the end is skipped
    report = LipSyncReport([item])
    assert report.num_bilabial == 2 and report.num_open == 2
    assert report.closure_rate == 0.5
    assert report.mean_bilabial_aperture == pytest.approx(3.5 * MM)
    assert report.mean_open_aperture == pytest.approx((11 + 1.25) / 2 * MM)
    assert report.open_bilabial_ratio == pytest.approx(6.125 / 3.5)
    assert report.shut_open_vowel_rate == 0.5
    # closures: frame 7 falls in the gap after P (no speech: not counted); the shut EH (14-15)
    # and IY (17-18) runs are during speech and at no bilabial
    assert (item.speech_closures, item.false_closures) == (2, 2)
    assert not report.passes()
    # a second recording with one clean closure and one wide open vowel, pooled
    good = measure_lipsync(np.r_[np.zeros(3), np.full(3, 9 * MM)], fps,
                           [PhoneSegment("B", 0.0, 0.3), PhoneSegment("AE", 0.3, 0.6)], "b")
    pooled = LipSyncReport([item, good])
    assert pooled.closure_rate == pytest.approx(2 / 3)
    assert pooled.shut_open_vowel_rate == pytest.approx(1 / 3)
    assert (good.speech_closures, good.false_closures) == (1, 0)
    assert pooled.false_closure_rate == pytest.approx(2 / 3)
    assert LipSyncReport([good]).passes()
    assert "closure rate" in pooled.summary()


def test_mouth_sound_lag_by_hand():
    """An aperture that follows the phones two frames late (80 ms at 25 fps) has a lag of +80 ms;
    the same aperture early by one frame, -40 ms; the peak is refined between frames."""
    from facemotion.metrics.lipsync import lag_correlation, peak_lag

    fps, phones = 25.0, ["AA", "M", "AE", "P", "EH", "B"] * 6
    segs = [PhoneSegment(p, 0.12 * i, 0.12 * (i + 1)) for i, p in enumerate(phones)]
    shape = np.zeros(int(0.12 * len(phones) * fps) + 4)
    for seg in segs:  # open on vowels, shut on /p b m/
        shape[int(round(seg.start * fps)):int(round(seg.end * fps))] = 10 * MM if seg.phone in "AA AE EH" else 0.0
    for shift in (2, -1):
        item = measure_lipsync(np.roll(shape, shift), fps, segs, "a")
        assert LipSyncReport([item], fps=fps).lag == pytest.approx(shift / fps, abs=0.01)
    assert peak_lag(np.array([0.0, 1.0, 3.0, 3.0, 0.0]), 25.0) == pytest.approx(0.5 / 25.0)
    assert len(lag_correlation(shape, fps, segs)) == 2 * 5 + 1


def test_evaluate_real_speech_caches_alignments(tmp_path, monkeypatch):
    ap, fps, segs = _synthetic_item()
    wav = tmp_path / "speech.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.1, 32000).astype(np.float32), 16000)
    calls = []

    def fake_align(wave, text, name=""):
        calls.append(text)
        return segs

    monkeypatch.setattr("facemotion.audio.phones.force_align", fake_align)
    items = [lipsync.SpeechItem(wav, "a transcript")]
    cache_file = tmp_path / "cache" / "segments.json"
    for _ in range(2):
        report = lipsync.evaluate_real_speech(lambda path: ap, items, fps, SegmentCache(cache_file))
        assert report.closure_rate == 0.5 and report.shut_open_vowel_rate == 0.5
    assert calls == ["a transcript"]       # the second run read the cache file
    assert cache_file.is_file()


def test_segment_cache_keeps_each_whisper_model_apart(tmp_path, monkeypatch):
    wav = tmp_path / "speech.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)
    calls = []

    def fake_decode(wave, search, asr_model_dir=None):
        calls.append(asr_model_dir)
        return [PhoneSegment("M", 0.0, 0.5 if asr_model_dir is None else 0.7)]

    monkeypatch.setattr("facemotion.audio.phones.decode_phones", fake_decode)
    cache_file = tmp_path / "segments.json"
    other = tmp_path / "whisper-base"
    for _ in range(2):
        for model_dir, end in ((None, 0.5), (other, 0.7)):
            cache = SegmentCache(cache_file, model_dir)
            assert cache.segments(wav, None, "asr")[0].end == end
            cache.save()
    assert calls == [None, other.resolve()]  # decoded once per model, then read from the cache


def test_load_realval_lists_items(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    (tmp_path / "transcripts.json").write_text('{"x.wav": "[laughter] hello"}')
    items = lipsync.load_realval(tmp_path)
    assert items == [lipsync.SpeechItem(tmp_path / "x.wav", "[laughter] hello")]
    (tmp_path / "transcripts.json").write_text('{"y.wav": "hi"}')
    from facemotion.errors import DataError

    with pytest.raises(DataError, match="y.wav"):
        lipsync.load_realval(tmp_path)


def test_evaluate_real_speech_skips_unalignable_recordings(tmp_path, monkeypatch):
    from facemotion.errors import AudioError

    wav = tmp_path / "speech.wav"
    sf.write(wav, np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32), 16000)

    def failing_align(wave, text, name=""):
        raise AudioError(f"{name}: forced alignment failed")

    monkeypatch.setattr("facemotion.audio.phones.force_align", failing_align)
    ran = []
    report = lipsync.evaluate_real_speech(lambda p: ran.append(p), [lipsync.SpeechItem(wav, "x")],
                                          25.0, SegmentCache(tmp_path / "c.json"))
    assert report.items == [] and ran == [] and str(wav) in report.skipped[0]
    assert math.isnan(report.closure_rate)


def test_sample_diversity_separates_expression_and_head_pose():
    import torch

    from facemotion.face.space import BlendshapeSpace
    from facemotion.metrics import sample_diversity

    motions = torch.zeros(2, 3, 55)
    motions[1, :, 52:] = torch.tensor([0.03, 0.04, 0.0])  # second sample: head turned, same face
    div = sample_diversity(BlendshapeSpace(), motions)
    assert div["head_pose"] == pytest.approx(0.05)
    assert div["expression"] == pytest.approx(0.0, abs=1e-9)
    motions[1, :, 0] = 1.0                                 # eyeBlinkLeft moves the upper face
    assert sample_diversity(BlendshapeSpace(), motions)["expression"] > 1e-4


def test_bilabial_detection_by_hand():
    S = PhoneSegment
    reference = [S("M", 0.10, 0.20), S("AA", 0.20, 0.40), S("P", 0.50, 0.55), S("B", 1.00, 1.05)]
    found = [S("B", 0.23, 0.30),   # 30 ms after the /m/: within 40 ms, found
             S("M", 0.70, 0.80),   # 150 ms after the /p/: false
             S("P", 0.97, 1.02),   # overlaps the /b/
             S("AA", 0.5, 0.55)]   # not bilabial: neither
    assert lipsync.bilabial_detection(found, reference) == (2, 3, 1, 3)
    assert lipsync.bilabial_detection(found, reference, tolerance=0.0) == (1, 3, 2, 3)
