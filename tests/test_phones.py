from pathlib import Path

import numpy as np
import pytest

from facemotion.audio.io import SAMPLE_RATE, load_audio
from facemotion.audio.phones import (
    PHONES,
    VISEME_CLASSES,
    force_align,
    letter_to_sound,
    normalize_transcript,
    phone_loop,
    phone_to_viseme,
    recognize,
)
from facemotion.errors import AudioError

ROOT = Path(__file__).resolve().parents[1]
AUDIO = ROOT.parent / "shared" / "audio"
WAV = ROOT / "examples" / "cmu_arctic_slt_a0009.wav"
TEXT = "He turned sharply, and faced Gregson across the table."
pytestmark = pytest.mark.skipif(not (AUDIO / "cmu_arctic_slt_a0009_phone.lab").exists(),
                                reason=f"shared test audio missing at {AUDIO}")


def _reference():
    """HTS label file → [(phone, start s, end s)]; AX → AH, pau/sil → SIL."""
    out = []
    for line in (AUDIO / "cmu_arctic_slt_a0009_phone.lab").read_text().splitlines():
        start, end, label = line.split()
        phone = label.split("-")[1].split("+")[0].upper()
        phone = {"PAU": "SIL", "AX": "AH"}.get(phone, phone)
        out.append((phone, int(start) / 1e7, int(end) / 1e7))
    return out


@pytest.fixture(scope="module")
def wave():
    return load_audio(WAV)


def test_viseme_classes_partition_phones():
    members = [p for phones in VISEME_CLASSES.values() for p in phones]
    assert sorted(members) == sorted(PHONES)
    assert phone_to_viseme("B") == phone_to_viseme("M") == "bilabial"
    assert phone_to_viseme("UW1") == "rounded" and phone_to_viseme("V") == "labiodental"
    assert phone_to_viseme("AA") == "open"


def test_transcript_and_letter_to_sound():
    assert normalize_transcript("Um [laughter] it's <unk> well-known, 42!") == [
        "um", "it's", "well", "known", "forty", "two"]
    assert normalize_transcript("In 1999 I paid $3.50 for 1,000 apples, 2nd time & 50%") == [
        "in", "nineteen", "ninety", "nine", "i", "paid", "three", "point", "five", "dollars", "for", "one",
        "thousand", "apples", "second", "time", "and", "fifty", "percent"]
    assert letter_to_sound("blorp") == "B L AO R P"
    assert letter_to_sound("cheese") == "CH IY S"


def test_force_align_matches_reference(wave):
    segments = force_align(wave, TEXT)
    reference = _reference()
    assert [s.phone for s in segments] == [r[0] for r in reference]
    errors = [abs(s.start - r[1]) for s, r in zip(segments[1:], reference[1:])]
    assert np.mean(errors) < 0.04
    assert [s.word for s in segments if s.phone == "P"] == ["sharply"]
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segments, segments[1:]))


def test_force_align_unknown_words_and_failure(wave):
    segments = force_align(wave, "He turned zharply and faced Gregzon across the table",
                           pronunciations={"zharply": "SH AA R P L IY"})
    assert [s.phone for s in segments if s.word == "zharply"] == ["SH", "AA", "R", "P", "L", "IY"]
    assert {s.word for s in segments} >= {"gregzon"}  # letter-to-sound fallback
    with pytest.raises(AudioError, match="a.wav: transcript"):
        force_align(wave, "[noise] !!", name="a.wav")
    with pytest.raises(AudioError, match="forced alignment"):
        force_align(wave[: SAMPLE_RATE // 4], TEXT * 4)


def test_phone_loop_finds_bilabials(wave):
    segments = phone_loop(wave)
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(len(wave) / SAMPLE_RATE, abs=0.02)
    assert all(0.0 <= s.confidence <= 1.0 for s in segments)
    bilabial_refs = [r for r in _reference() if r[0] in ("P", "B", "M")]  # "sharply", "table"
    found = [r for r in bilabial_refs
             if any(s.phone in ("P", "B", "M") and s.start < r[2] + 0.03 and s.end > r[1] - 0.03 for s in segments)]
    assert len(found) >= 1
    silence = phone_loop(np.zeros(SAMPLE_RATE, dtype=np.float32))
    assert {s.phone for s in silence} == {"SIL"}


def test_phone_loop_long_audio_is_chunked(wave):
    long = np.concatenate([wave] * 3)
    segments = phone_loop(long, chunk_s=4.0)
    assert all(b.start == pytest.approx(a.end, abs=1e-6) for a, b in zip(segments, segments[1:]))
    assert segments[-1].end == pytest.approx(len(long) / SAMPLE_RATE, abs=0.02)
    assert sum(s.phone == "P" for s in segments) >= 2


def test_recognize_finds_words_and_bilabials(wave):
    segments = recognize(wave)
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(len(wave) / SAMPLE_RATE, abs=0.02)
    assert all(b.start >= a.end - 1e-6 for a, b in zip(segments, segments[1:]))
    words = {s.word for s in segments}
    assert {"turned", "table"} <= words
    bilabial_refs = [r for r in _reference() if r[0] in ("P", "B", "M")]  # "sharply", "table"
    found = [r for r in bilabial_refs
             if any(s.phone in ("P", "B", "M") and s.start < r[2] + 0.03 and s.end > r[1] - 0.03 for s in segments)]
    assert len(found) == len(bilabial_refs) == 2
    assert {s.phone for s in recognize(np.zeros(SAMPLE_RATE, dtype=np.float32))} == {"SIL"}


def test_recognize_in_parallel_equals_sequential(wave):
    long = np.concatenate([wave, np.zeros(SAMPLE_RATE // 2, np.float32)] * 3)
    sequential = recognize(long, chunk_s=3.0)
    assert sequential == recognize(long, chunk_s=3.0, workers=2)
    assert sum(s.word == "table" and s.phone == "B" for s in sequential) == 3
    assert sequential[-1].end == pytest.approx(len(long) / SAMPLE_RATE, abs=0.02)
