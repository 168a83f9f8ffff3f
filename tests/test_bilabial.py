"""The bilabial detector on Whisper's encoder states (facemotion.audio.bilabial) and its use in
the ``asr`` phone search."""

import json
from pathlib import Path

import numpy as np
import pytest

from facemotion.audio import bilabial, phones
from facemotion.audio.bilabial import BilabialDetector, add_bilabials, detections, load_detector, stack_context
from facemotion.data.bilabial import train_bilabial_command, train_detector, training_frames
from facemotion.audio.io import load_audio
from facemotion.audio.phones import PhoneSegment, force_align
from facemotion.audio.whisper import encoder_states, load_whisper
from facemotion.errors import DataError, OutputError
from facemotion.metrics.lipsync import ARCTIC_TRANSCRIPT, bilabial_detection

WAV = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"


def _probability(runs: list[tuple[int, int]], frames: int = 100) -> np.ndarray:
    p = np.zeros(frames, np.float32)
    for a, b in runs:
        p[a:b] = 0.99
    return p


def test_detections_are_runs_above_the_threshold_in_seconds():
    p = _probability([(0, 2), (10, 13)], 20)
    p[15] = bilabial.THRESHOLD  # not above
    assert detections(p) == [(0.0, 0.04), (0.2, 0.26)]


def test_add_bilabials_cuts_an_m_into_the_phones_where_none_is_near():
    segs = [PhoneSegment("SIL", 0.0, 0.5), PhoneSegment("AH", 0.5, 1.0, word="um"),
            PhoneSegment("B", 1.0, 1.1, word="but"), PhoneSegment("AH", 1.1, 1.3, word="but"),
            PhoneSegment("SIL", 1.3, 2.0)]
    # one run inside "um" (0.80-0.90 s), one 20 ms from the /b/ (already there), one in the
    # pause, one too short (40 ms)
    out = add_bilabials(segs, _probability([(40, 45), (51, 54), (70, 73), (80, 82)]))
    assert [(s.phone, s.start, s.end) for s in out] == [
        ("SIL", 0.0, 0.5), ("AH", 0.5, 0.8), ("M", 0.8, 0.9), ("AH", 0.9, 1.0), ("B", 1.0, 1.1),
        ("AH", 1.1, 1.3), ("SIL", 1.3, 1.4), ("M", 1.4, 1.46), ("SIL", 1.46, 2.0)]
    assert out[1].word == "um" and out[2].word is None
    assert add_bilabials(segs, np.zeros(100, np.float32)) == segs


def test_stack_context_repeats_the_edges():
    x = np.arange(4, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(stack_context(x, 1), [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 3]])


def test_training_separates_a_learnable_label_and_the_weights_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    labels = (rng.random(4000) < 0.2).astype(np.float32)
    states = rng.normal(size=(4000, 8)).astype(np.float32)
    states[:, 0] += 4.0 * labels
    detector = train_detector(states, labels, hidden=16, epochs=200)
    p = detector.probability(states)
    assert p[labels == 1].mean() > 0.7 and p[labels == 0].mean() < 0.1
    detector.save(tmp_path / "d.npz")
    loaded = load_detector(tmp_path / "d.npz")
    np.testing.assert_allclose(loaded.probability(states), p, atol=2e-3)  # float16 weights
    with pytest.raises(ValueError, match="expected"):
        loaded.probability(states[:, :4])
    other = train_detector(states, 1.0 - labels, hidden=16, epochs=1, seed=1)
    both = loaded.joined(other)
    both.save(tmp_path / "both.npz")
    np.testing.assert_allclose(load_detector(tmp_path / "both.npz").probability(states),
                               (loaded.probability(states) + other.probability(states)) / 2, atol=2e-3)
    with pytest.raises(ValueError, match="cannot join"):
        loaded.joined(train_detector(states, labels, hidden=8, epochs=1))
    (tmp_path / "bad.npz").write_bytes(b"not a detector")
    with pytest.raises(DataError, match="bad.npz"):
        load_detector(tmp_path / "bad.npz")


@pytest.fixture(scope="module")
def arctic():
    wave = load_audio(WAV)
    return wave, force_align(wave, ARCTIC_TRANSCRIPT)


def test_the_shipped_detector_hears_the_bilabials_of_real_speech(arctic):
    wave, reference = arctic
    detector = load_detector()
    p = detector.probability(encoder_states(load_whisper(), wave))
    hits = detections(p)
    assert bilabial_detection([PhoneSegment("M", a, b) for a, b in hits], reference)[:2] == (2, 2), hits
    assert len(hits) <= 3, hits  # "sharply", "table", at most one more


def test_asr_search_adds_what_the_detector_hears(arctic, monkeypatch):
    wave, reference = arctic
    plain = phones.asr_phones(wave, bilabial=False)

    def hears_an_m(self, states):  # a detector that hears an /m/ at 1.00-1.08 s
        p = np.zeros(len(states), np.float32)
        p[50:54] = 1.0
        return p

    monkeypatch.setattr(BilabialDetector, "probability", hears_an_m)
    with_m = phones.asr_phones(wave)
    added = [s for s in with_m if s not in plain]
    assert [(s.phone, s.start, s.end) for s in added if s.phone == "M"] == [("M", 1.0, 1.08)]
    assert with_m[-1].end == plain[-1].end and all(
        a.end == pytest.approx(b.start) for a, b in zip(with_m[:-1], with_m[1:]))


def test_train_bilabial_refuses_an_existing_output_before_any_work(tmp_path):
    out = tmp_path / "d.npz"
    out.write_bytes(b"keep")
    with pytest.raises(OutputError, match="exists"):
        train_bilabial_command([tmp_path / "no-corpus"], out)
    assert out.read_bytes() == b"keep"
    with pytest.raises(DataError, match="no-corpus"):
        train_bilabial_command([tmp_path / "no-corpus"], tmp_path / "e.npz")
    assert not (tmp_path / "e.npz").exists()
    rng = np.random.default_rng(0)
    train_detector(rng.normal(size=(64, 4)).astype(np.float32), np.zeros(64, np.float32), hidden=8,
                   epochs=1).save(tmp_path / "small.npz")
    with pytest.raises(DataError, match="cannot join"):  # before any corpus is read
        train_bilabial_command([tmp_path / "no-corpus"], tmp_path / "e.npz", join=tmp_path / "small.npz")


def test_train_bilabial_on_a_tiny_corpus_learns_its_bilabials(tmp_path):
    from facemotion.synth import corpus

    corpus.generate_corpus(tmp_path / "c", 40.0 / 3600, workers=1, seed=1, shard_size=2, progress=False)
    records = [json.loads(line) for line in (tmp_path / "c" / "manifest.jsonl").read_text().splitlines()]
    for r in records:  # learn from every clip
        r["split"] = "train"
    (tmp_path / "c" / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = train_bilabial_command([tmp_path / "c"], tmp_path / "d.npz", hours=1.0)
    detector = load_detector(out)
    states, labels = training_frames([tmp_path / "c"], 1.0)
    p = detector.probability(states)
    assert labels.sum() > 5 and p[labels == 1].mean() > p[labels == 0].mean() + 0.2


def test_audio_probability_in_pieces_equals_one_piece(arctic):
    wave, _ = arctic
    detector, model = load_detector(), load_whisper()
    whole = bilabial.audio_probability(detector, model, wave)
    assert whole.shape == (int(np.ceil(len(wave) / 320)),)
    pieces = bilabial.audio_probability(detector, model, wave, chunk_s=2.0, margin_s=1.0)
    assert pieces.shape == whole.shape

    def runs(p):  # what add_bilabials takes
        return [(a, b) for a, b in detections(p) if b - a >= bilabial.MIN_DURATION_S - 1e-9]

    # each piece is encoded in a window of its own, so values differ a little; the runs agree
    assert len(runs(pieces)) == len(runs(whole)) >= 1
    np.testing.assert_allclose(runs(pieces), runs(whole), atol=0.041)
