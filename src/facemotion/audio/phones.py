"""Phone segmentation (pocketsphinx phone loop or word recognition) and forced alignment, plus
viseme classes.

Phones are CMU/ARPAbet symbols without stress digits; silences and fillers are ``"SIL"``.
Both decoders need 16 kHz mono input (``facemotion.audio.io.load_audio`` gives that).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
import threading
from typing import Mapping

import numpy as np

from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import AudioError
from facemotion.processes import map_in_threads

PHONES: tuple[str, ...] = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G",
    "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH",
    "UH", "UW", "V", "W", "Y", "Z", "ZH",
)
"""The 39 ARPAbet phones of the pocketsphinx en-us model, preceded by ``"SIL"``."""

PHONE_INDEX: dict[str, int] = {p: i for i, p in enumerate(PHONES)}

VISEME_CLASSES: dict[str, tuple[str, ...]] = {
    "silence": ("SIL",),
    "bilabial": ("P", "B", "M"),
    "labiodental": ("F", "V"),
    "dental": ("TH", "DH"),
    "rounded": ("UW", "OW", "W", "UH", "AO", "OY", "ER", "R"),
    "open": ("AA", "AE", "AH", "AW", "AY", "EH"),
    "spread": ("IY", "IH", "EY", "Y"),
    "postalveolar": ("SH", "ZH", "CH", "JH"),
    "alveolar": ("T", "D", "N", "L", "S", "Z"),
    "velar": ("K", "G", "NG", "HH"),
}
"""Viseme classes (mouth shapes) → phones; every phone of ``PHONES`` is in exactly one class."""

VISEMES: tuple[str, ...] = tuple(VISEME_CLASSES)
_PHONE_VISEME = {p: v for v, phones in VISEME_CLASSES.items() for p in phones}

EXTRA_PRONUNCIATIONS: dict[str, str] = {
    "aligner": "AH L AY N ER",
    "yknow": "Y AH N OW",
    "poofy": "P UW F IY",
    "pooty": "P UW T IY",
    "puddy": "P AH D IY",
}
"""Words missing from pocketsphinx's cmudict that the test recordings need."""

_FRAME_RATE = 100.0  # pocketsphinx frames per second (-frate default)


@dataclasses.dataclass(frozen=True)
class PhoneSegment:
    """One phone: ARPAbet symbol without stress (``"SIL"`` for silence), times in seconds.

    ``word`` is the word it belongs to (forced alignment only) and ``confidence`` a score
    in [0, 1] from the segment's per-frame acoustic score (phone loop only).
    """

    phone: str
    start: float
    end: float
    word: str | None = None
    confidence: float | None = None


def phone_to_viseme(phone: str) -> str:
    """Viseme class name (a key of ``VISEME_CLASSES``) of an ARPAbet phone (stress digits allowed).

    Raises:
        KeyError: unknown phone.
    """
    return _PHONE_VISEME[normalize_phone(phone)]


def normalize_phone(phone: str) -> str:
    """``"AH0"`` → ``"AH"``; silences and fillers (``"sil"``, ``"+NSN+"``, ``"<s>"``) → ``"SIL"``."""
    phone = phone.strip().upper().rstrip("012")
    return phone if phone in PHONE_INDEX and phone != "SIL" else "SIL"


def _model_dir() -> str:
    import pocketsphinx

    return os.path.join(pocketsphinx.get_model_path(), "en-us")


@functools.lru_cache(maxsize=1)
def _phone_loop_decoder():
    from pocketsphinx import Decoder

    return Decoder(allphone=os.path.join(_model_dir(), "en-us-phone.lm.bin"), lm=None, bestpath=False,
                   lw=2.0, pip=0.3, beam=1e-15, pbeam=1e-15, loglevel="FATAL")


def _new_align_decoder():
    from pocketsphinx import Decoder

    return Decoder(lm=None, bestpath=False, loglevel="FATAL")


VOCABULARY_SIZE = 10000
"""Words known to :func:`recognize`: the most frequent English words (``wordfreq``) that cmudict has."""


_FREE_DECODERS: dict[tuple, list] = {}
_FREE_LOCK = threading.Lock()


@contextlib.contextmanager
def _borrowed_decoder(kind: str, vocabulary: int = 0):
    """A pocketsphinx decoder used by one thread at a time: taken from the free ones of its kind
    kept for the process, or built (``"words"``: :func:`recognize`'s, ~110 MB, ``vocabulary``
    words; ``"align"``: cmudict for :func:`force_align`), about as many as threads ever decode at
    once, and given back afterwards, also after an :class:`AudioError` (a transcript that does not
    align: the next search resets the decoder) but not after another error (its state is unknown)."""
    key = (kind, int(vocabulary))
    with _FREE_LOCK:
        decoder = (_FREE_DECODERS.setdefault(key, []) or [None]).pop()
    if decoder is None:
        decoder = _new_word_decoder(int(vocabulary)) if kind == "words" else _new_align_decoder()
    try:
        yield decoder
    except AudioError:
        with _FREE_LOCK:
            _FREE_DECODERS[key].append(decoder)
        raise
    with _FREE_LOCK:
        _FREE_DECODERS[key].append(decoder)


@functools.lru_cache(maxsize=2)
def _vocabulary_entries(vocabulary: int) -> tuple[str, ...]:
    """cmudict lines of the ``vocabulary`` most frequent English words."""
    from wordfreq import top_n_list

    entries: dict[str, list[str]] = {}
    with open(os.path.join(_model_dir(), "cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            entries.setdefault(line.split(" ", 1)[0].split("(")[0], []).append(line)
    words = [w for w in top_n_list("en", 3 * vocabulary) if w in entries][:vocabulary]
    return tuple(line for word in words for line in entries[word])


def _new_word_decoder(vocabulary: int):
    import tempfile

    from pocketsphinx import Decoder

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "vocabulary.dict")
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(_vocabulary_entries(vocabulary))
        return Decoder(dict=path, bestpath=False, loglevel="FATAL")


def _add_pronunciation(decoder, word: str, phones: str) -> None:
    """Add ``word`` (or, if the dictionary has it with other phones, an alternative ``word(k)``)."""
    k = 1
    while (known := decoder.lookup_word(word if k == 1 else f"{word}({k})")) is not None:
        if known == phones:
            return
        k += 1
    decoder.add_word(word if k == 1 else f"{word}({k})", phones, update=True)


def _to_int16(wave: np.ndarray) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform [N], got shape {wave.shape}")
    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


def _split_points(pcm: np.ndarray, chunk_s: float, search_s: float = 2.0) -> list[int]:
    """Sample indices near every ``chunk_s`` seconds at the quietest 10 ms frame (±``search_s``)."""
    hop = SAMPLE_RATE // 100
    points = [0]
    step, search = int(chunk_s * SAMPLE_RATE), int(search_s * SAMPLE_RATE)
    while len(pcm) - points[-1] > step + search:
        lo = points[-1] + step - search
        window = pcm[lo : lo + 2 * search].astype(np.float32)
        energy = np.square(window[: len(window) // hop * hop].reshape(-1, hop)).sum(axis=1)
        points.append(lo + int(np.argmin(energy)) * hop)
    return points + [len(pcm)]


def phone_loop(wave: np.ndarray, chunk_s: float = 60.0) -> list[PhoneSegment]:
    """Transcript-free phone segmentation by pocketsphinx all-phone decoding (~0.05× real time).

    Long input is decoded in utterances of about ``chunk_s`` seconds split at the quietest
    10 ms frame near each boundary. Each segment's ``confidence`` is
    ``exp(a / 10)`` clipped to [0, 1], ``a`` being its acoustic score per 10 ms frame relative
    to the best senone score of the frame (pocketsphinx log base 1.0001), so well-matched
    segments score near 1.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        chunk_s: utterance length for long audio, seconds.

    Returns:
        Contiguous segments covering the waveform, times in seconds.
    """
    pcm = _to_int16(wave)
    decoder = _phone_loop_decoder()
    decoder.reinit_feat()  # fresh noise and cepstral-mean estimates: results must not depend on earlier calls
    logmath = decoder.get_logmath()
    bounds = _split_points(pcm, chunk_s)
    segments: list[PhoneSegment] = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        offset = lo / SAMPLE_RATE
        decoder.start_utt()
        decoder.process_raw(pcm[lo:hi].tobytes(), full_utt=True)
        decoder.end_utt()
        chunk = []
        for seg in decoder.seg():
            frames = seg.end_frame - seg.start_frame + 1
            score = logmath.log(seg.ascore) / frames if seg.ascore > 0 else -math.inf
            chunk.append(PhoneSegment(
                normalize_phone(seg.word), offset + seg.start_frame / _FRAME_RATE,
                offset + (seg.end_frame + 1) / _FRAME_RATE, confidence=float(min(1.0, math.exp(score / 10.0)))))
        if chunk:  # the last partial 10 ms frame belongs to the last segment
            chunk[-1] = dataclasses.replace(chunk[-1], end=hi / SAMPLE_RATE)
        segments.extend(chunk)
    return _merge_silences(segments)


def _decode(decoder, data: bytes) -> None:
    decoder.start_utt()
    decoder.process_raw(data, full_utt=True)
    decoder.end_utt()


def _aligned_phones(decoder, data: bytes, offset: float = 0.0) -> list[PhoneSegment]:
    """Second pass after a word-level decode of ``data``: phone alignment of the words found.

    Returns the phones (times in seconds plus ``offset``) with their word (``None`` for
    silences and fillers).

    Raises:
        RuntimeError, ValueError: pocketsphinx cannot align the word hypothesis.
    """
    decoder.set_alignment()
    _decode(decoder, data)
    segments = []
    for word in decoder.get_alignment() or []:
        label = None if word.name.startswith("<") else re.sub(r"\(\d+\)$", "", word.name)
        for phone in word:
            start = offset + phone.start / _FRAME_RATE
            segments.append(PhoneSegment(normalize_phone(phone.name), start,
                                         start + phone.duration / _FRAME_RATE, label))
    return segments


def _recognize_utterance(args: tuple[np.ndarray, float, int]) -> list[PhoneSegment]:
    """Word recognition and phone alignment of one utterance (int16 ``pcm``, ``offset`` s), on a
    decoder borrowed for this thread."""
    with _borrowed_decoder("words", args[2]) as decoder:
        return _recognize_with(decoder, *args[:2])


def _recognize_with(decoder, pcm: np.ndarray, offset: float) -> list[PhoneSegment]:
    decoder.reinit_feat()  # each utterance on its own: the same result on any decoder and in any order
    data = pcm.tobytes()
    _decode(decoder, data)
    hyp = decoder.hyp()
    segments: list[PhoneSegment] = []
    if hyp is not None and hyp.hypstr.strip():
        try:
            segments = _aligned_phones(decoder, data, offset)
        except (RuntimeError, ValueError):  # the hypothesis cannot be aligned: the utterance stays silent
            segments = []
        finally:
            decoder.activate_search()
    end = offset + len(pcm) / SAMPLE_RATE
    if not segments or segments[-1].end < end:
        segments.append(PhoneSegment("SIL", segments[-1].end if segments else offset, end))
    return segments


def recognize(wave: np.ndarray, vocabulary: int = VOCABULARY_SIZE, chunk_s: float = 30.0,
              workers: int = 1) -> list[PhoneSegment]:
    """Transcript-free phones from word recognition: pocketsphinx decodes words with its
    n-gram language model, then aligns the recognised words' phones (~0.1–0.2× real time
    on one core).

    Word-level decoding constrains phone sequences to real words, which finds /p b m/ more
    reliably than the phone loop on real speech, with fewer false ones (realval recordings:
    0.62 of the force-aligned /p b m/ segments against the phone loop's 0.60, and 0.78 for
    the two together); the price is 2–4× the phone loop's time. The dictionary is cut to the
    ``vocabulary`` most frequent English words (cmudict ∩ ``wordfreq``), which halves the
    decoding time for a small loss of recall. Long input is decoded as independent
    utterances of about ``chunk_s`` seconds split at the quietest 10 ms frame, on ``workers``
    threads when there are several (pocketsphinx releases the GIL; each thread decodes with a
    decoder of its own, ~110 MB, kept for later calls), so no process is forked.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        vocabulary: number of words the decoder knows.
        chunk_s: utterance length for long audio, seconds.
        workers: threads decoding utterances in parallel (1 = in the calling thread).

    Not from the four papers: it feeds the ``phonetic`` audio encoder, which stands in for
    the pretrained speech models the papers use when none is available.

    Returns:
        Contiguous segments covering the waveform (silence where no word was recognised),
        times in seconds, each with its recognised ``word``.
    Raises:
        ValueError: ``wave`` is not one-dimensional.
    """
    pcm = _to_int16(wave)
    bounds = _split_points(pcm, chunk_s, search_s=min(2.0, chunk_s / 4))
    jobs = [(pcm[lo:hi], lo / SAMPLE_RATE, int(vocabulary)) for lo, hi in zip(bounds[:-1], bounds[1:])]
    parts = map_in_threads(_recognize_utterance, jobs, workers)
    return _merge_silences([seg for part in parts for seg in part])


ASR_PROMPT = "Umm, let me think like, hmm... Okay, here's what I'm, like, thinking."
"""Text Whisper is conditioned on in :func:`asr_phones`, so that it writes the fillers ("um",
"hmm") it otherwise drops; their /m/ closes the lips."""


ALIGN_CHUNK_S = 8.0
"""Longest stretch of speech :func:`asr_phones` aligns at once, seconds: short stretches align
faster and fail less often (25 s stretches of read speech failed at the phone pass)."""

ALIGN_PAUSE_S = 0.25
"""A gap of at least this long between Whisper's words always ends a stretch, seconds."""


def asr_phones(wave: np.ndarray, model_dir: str | os.PathLike | None = None,
               vocabulary: int = VOCABULARY_SIZE, workers: int = 1, bilabial: bool = True) -> list[PhoneSegment]:
    """Phones of Whisper's transcript: Whisper (:func:`facemotion.audio.whisper.transcribe`,
    greedy, prompted with :data:`ASR_PROMPT`) transcribes with word timestamps, pocketsphinx
    force-aligns the words stretch by stretch (:func:`transcript_stretches`: cut in the pauses,
    at most :data:`ALIGN_CHUNK_S` long) on ``workers`` threads.

    Each stretch is aligned with its words by :func:`force_align` (cmudict, then
    letter-to-sound; numbers spelt out; capitalised words missing from cmudict spelt letter by
    letter). A stretch whose alignment fails is cut in two and each half aligned, down to single
    words; a word that cannot be aligned, or audio without any transcript, falls back to
    :func:`recognize`. With ``bilabial``, the bilabial detector on Whisper's encoder states
    (:mod:`facemotion.audio.bilabial`) then adds an ``"M"`` where it hears a /p b m/ the
    transcript lacks (fillers such as "um", "hm"); a Whisper model whose states are not as wide
    as the detector's (not tiny.en) is used without it, with a warning.

    On the realval recordings and CMU ARCTIC a0009 this finds 0.922 of the force-aligned
    /p b m/ within ±40 ms (0.884 without the detector; phone loop 0.597, word recognition
    0.620); the misses are mostly words Whisper tiny.en mishears ("M F A" heard as "and I
    feel", "clubs" as "clothes"). On 60 s of real speech (2 cores) Whisper takes ~2 s, the
    alignment ~1.2 s and the detector (another pass of Whisper's encoder) under 1 s.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        model_dir: CTranslate2 Whisper directory; ``None`` for the bundled tiny.en.
        vocabulary: words of the :func:`recognize` fallback.
        workers: threads aligning stretches at once (pocketsphinx releases the GIL; each has a
            decoder of its own).
        bilabial: add the detector's /p b m/.

    Returns:
        Contiguous segments covering the waveform, times in seconds, with their ``word``.
    Raises:
        DataError: the Whisper model is missing or altered.
        ValueError: ``wave`` is not one-dimensional.
    """
    from facemotion.audio.whisper import transcribe

    _to_int16(wave)  # validates the shape
    transcript = transcribe(wave, model_dir, prompt=ASR_PROMPT)
    stretches = transcript_stretches(transcript, len(wave) / SAMPLE_RATE)
    if not stretches:
        return recognize(wave, vocabulary)
    jobs = [(wave, words, lo, hi, vocabulary) for words, lo, hi in stretches]
    parts = map_in_threads(_align_stretch, jobs, workers)
    segments = _merge_silences([seg for part in parts for seg in part])
    return _add_detected_bilabials(segments, wave, model_dir) if bilabial else segments


def _add_detected_bilabials(segments: list[PhoneSegment], wave: np.ndarray,
                            model_dir: str | os.PathLike | None) -> list[PhoneSegment]:
    """``segments`` with the bilabial detector's /p b m/ (:func:`facemotion.audio.bilabial.add_bilabials`)."""
    import warnings

    from facemotion.audio.bilabial import add_bilabials, audio_probability, load_detector
    from facemotion.audio.whisper import load_whisper, state_dim
    from facemotion.errors import FacemotionWarning

    detector, model = load_detector(), load_whisper(model_dir)
    if state_dim(model) != detector.width:
        warnings.warn(f"{model_dir}: Whisper states of width {state_dim(model)}, the bilabial detector "
                      f"expects {detector.width} (tiny.en); /p b m/ come from the transcript only",
                      FacemotionWarning, stacklevel=3)
        return segments
    return add_bilabials(segments, audio_probability(detector, model, wave))


def transcript_stretches(transcript, duration: float, max_s: float = ALIGN_CHUNK_S,
                         pause_s: float = ALIGN_PAUSE_S) -> list[tuple[tuple, float, float]]:
    """Whisper's words grouped into stretches to align, ``(words, start, end)`` in seconds, that
    cover ``[0, duration]`` one after another; ``words`` are ``(text, start, end)``.

    Consecutive words stay together unless the gap between them is at least ``pause_s``, or the
    stretch would grow beyond ``max_s`` (then it is cut at its widest gap). A cut lies midway
    between one word's end and the next one's start. Segments without word timestamps count as
    one word.

    Args:
        transcript: :class:`~facemotion.audio.whisper.TranscriptSegment` list, in time order.
        duration: length of the audio, seconds.
    """
    words = [w for seg in transcript for w in (seg.words or ((seg.text, seg.start, seg.end),)) if w[0].strip()]
    groups: list[list[tuple[str, float, float]]] = []
    current: list[tuple[str, float, float]] = []
    for word in words:
        if current and word[1] - current[-1][2] >= pause_s:
            groups.append(current)
            current = []
        current.append(word)
        if len(current) > 1 and current[-1][2] - current[0][1] > max_s:
            gaps = [current[i][1] - current[i - 1][2] for i in range(1, len(current))]
            cut = 1 + max(range(len(gaps)), key=lambda i: (gaps[i], i))
            groups.append(current[:cut])
            current = current[cut:]
    if current:
        groups.append(current)
    cuts = [0.0] + [0.5 * (a[-1][2] + b[0][1]) for a, b in zip(groups[:-1], groups[1:])] + [duration]
    cuts = [min(max(c, 0.0), duration) for c in cuts]
    return [(tuple(group), lo, hi) for group, lo, hi in zip(groups, cuts[:-1], cuts[1:]) if hi > lo]


def _align_stretch(job: tuple[np.ndarray, tuple, float, float, int]) -> list[PhoneSegment]:
    """Phones of ``wave`` between ``start`` and ``end`` seconds aligned with ``words`` (Whisper's
    ``(text, start, end)``); contiguous, covering the stretch, times in seconds of ``wave``.

    Where the alignment fails, the stretch is cut in two at its widest gap between words
    (midway) and each half aligned the same way, down to single words; a single word that still
    fails is recognised (:func:`recognize`). A failure (a word Whisper dropped or misheard,
    a timestamp off) thus costs the alignment of its neighbourhood only."""
    wave, words, start, end, vocabulary = job
    lo, hi = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
    if hi - lo < SAMPLE_RATE // 100:  # less than one 10 ms frame (a cut at the stretch's edge)
        return [PhoneSegment("SIL", lo / SAMPLE_RATE, hi / SAMPLE_RATE)] if hi > lo else []
    try:
        found = force_align(wave[lo:hi], _spell_acronyms(" ".join(w[0] for w in words)))
    except AudioError:
        if len(words) < 2:
            found = recognize(wave[lo:hi], vocabulary)
        else:
            gaps = [words[i][1] - words[i - 1][2] for i in range(1, len(words))]
            k = 1 + max(range(len(gaps)), key=lambda i: (gaps[i], -abs(2 * i + 2 - len(words))))
            cut = min(max(0.5 * (words[k - 1][2] + words[k][1]), start), end)
            return (_align_stretch((wave, words[:k], start, cut, vocabulary))
                    + _align_stretch((wave, words[k:], cut, end, vocabulary)))
    offset = lo / SAMPLE_RATE
    found = [dataclasses.replace(s, start=s.start + offset, end=s.end + offset) for s in found]
    # the stretch is covered from its first sample to its last (alignment stops at the last whole 10 ms frame)
    found[0] = dataclasses.replace(found[0], start=offset)
    found[-1] = dataclasses.replace(found[-1], end=hi / SAMPLE_RATE)
    return found


def _spell_acronyms(text: str) -> str:
    """Capitalised words of two or more letters missing from cmudict spelt letter by letter
    (Whisper writes "MFA" for "m f a"): ``"MFA is like"`` → ``"M F A is like"``."""
    with _borrowed_decoder("align") as decoder:
        def spell(match: re.Match) -> str:
            word = match.group(0)
            return word if decoder.lookup_word(word.lower()) is not None else " ".join(word)

        return re.sub(r"\b[A-Z]{2,}\b", spell, text)


SEARCHES = ("phone_loop", "words", "asr")
"""Phone decoders that need no transcript: :func:`phone_loop`, :func:`recognize` and
:func:`asr_phones` (Whisper's transcript)."""


def decode_phones(wave: np.ndarray, search: str = "phone_loop", vocabulary: int = VOCABULARY_SIZE,
                  workers: int = 1, asr_model_dir: str | os.PathLike | None = None) -> list[PhoneSegment]:
    """Phone segments of ``wave`` (``[N]`` float32, 16 kHz mono) without a given transcript, by
    ``search``: ``"phone_loop"`` (:func:`phone_loop`), ``"words"`` (:func:`recognize` with
    ``vocabulary`` words on ``workers`` threads) or ``"asr"`` (:func:`asr_phones` with the
    Whisper model in ``asr_model_dir``, the bundled one by default, aligning on ``workers``
    threads). Times in seconds.

    Raises:
        ValueError: unknown ``search``, or ``wave`` not one-dimensional.
        DataError: ``"asr"`` and the Whisper model is missing or altered.
    """
    if search not in SEARCHES:
        raise ValueError(f"unknown search {search!r} (choose from {', '.join(SEARCHES)})")
    if search == "asr":
        return asr_phones(wave, asr_model_dir, vocabulary, workers=workers)
    return recognize(wave, vocabulary, workers=workers) if search == "words" else phone_loop(wave)


def _merge_silences(segments: list[PhoneSegment]) -> list[PhoneSegment]:
    merged: list[PhoneSegment] = []
    for seg in segments:
        if merged and seg.phone == "SIL" and merged[-1].phone == "SIL":
            prev = merged[-1]
            merged[-1] = dataclasses.replace(prev, end=seg.end)
        else:
            merged.append(seg)
    return merged


def normalize_transcript(text: str) -> list[str]:
    """Lower-case words of a transcript for alignment.

    Bracketed markup (``[laughter]``, ``<unk>``, ``{noise}``) and punctuation are removed,
    hyphens split words, apostrophes inside words are kept; numbers are spelt as words by
    ``num2words`` ("42" → "forty two", "3.5" → "three point five", "2nd" → "second",
    four-digit numbers from 1100 to 2099 as years: "1999" → "nineteen ninety nine"), and so
    are ``$ % & + @``.
    """
    text = re.sub(r"\[[^\]]*\]|<[^>]*>|\{[^}]*\}", " ", text.lower())
    words: list[str] = []
    for token in re.findall(r"[a-z']+", _spell_numbers(text).replace("-", " ")):
        token = token.strip("'")
        if token:
            words.append(token)
    return words


_SYMBOL_WORDS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}


def _spell_numbers(text: str) -> str:
    """Numbers (with ``,`` thousands separators, decimals, ordinal suffixes) and the symbols of
    ``_SYMBOL_WORDS`` in ``text`` replaced by words; ``$5`` → ``5 dollars`` first."""
    from num2words import num2words

    def spell(match: re.Match) -> str:
        number, ordinal = match.group(1).replace(",", ""), match.group(2)
        if "." in number:
            return f" {num2words(float(number))} "
        if ordinal:
            return f" {num2words(int(number), to='ordinal')} "
        year = len(number) == 4 and 1100 <= int(number) < 2100
        return f" {num2words(int(number), to='year' if year else 'cardinal')} "

    text = re.sub(r"\$(\d[\d,]*(?:\.\d+)?)", r"\1 dollars", text)
    text = re.sub(r"[%&+@]", lambda m: _SYMBOL_WORDS[m.group(0)], text)
    return re.sub(r"(\d+(?:,\d{3})*(?:\.\d+)?)(st|nd|rd|th)?", spell, text)


# Letter-to-sound fallback: ordered (grapheme, phones) rules, longest match first.
_LTS_RULES: tuple[tuple[str, str], ...] = (
    ("tch", "CH"), ("igh", "AY"), ("ough", "AO"), ("tion", "SH AH N"), ("sion", "ZH AH N"),
    ("ch", "CH"), ("sh", "SH"), ("th", "TH"), ("ph", "F"), ("ng", "NG"), ("ck", "K"), ("qu", "K W"),
    ("wh", "W"), ("gh", "G"), ("kn", "N"), ("wr", "R"), ("ee", "IY"), ("ea", "IY"), ("ie", "IY"),
    ("oo", "UW"), ("ou", "AW"), ("ow", "OW"), ("oa", "OW"), ("oi", "OY"), ("oy", "OY"), ("ai", "EY"),
    ("ay", "EY"), ("ey", "EY"), ("au", "AO"), ("aw", "AO"), ("ew", "UW"), ("er", "ER"), ("ir", "ER"),
    ("ur", "ER"), ("ar", "AA R"), ("or", "AO R"), ("ll", "L"), ("ss", "S"), ("tt", "T"), ("dd", "D"),
    ("pp", "P"), ("bb", "B"), ("mm", "M"), ("nn", "N"), ("ff", "F"), ("zz", "Z"), ("rr", "R"), ("gg", "G"),
    ("a", "AE"), ("b", "B"), ("c", "K"), ("d", "D"), ("e", "EH"), ("f", "F"), ("g", "G"), ("h", "HH"),
    ("i", "IH"), ("j", "JH"), ("k", "K"), ("l", "L"), ("m", "M"), ("n", "N"), ("o", "AA"), ("p", "P"),
    ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"), ("u", "AH"), ("v", "V"), ("w", "W"), ("x", "K S"),
    ("y", "IY"), ("z", "Z"),
)


def letter_to_sound(word: str) -> str:
    """Rule-based ARPAbet guess for a word missing from the dictionary (e.g. ``"blorp"`` → ``"B L AO R P"``).

    Greedy longest-match over English spelling rules; a final silent ``e`` is dropped, ``c``
    before ``e/i/y`` is ``S``, initial ``y`` is ``Y``. Good enough to let alignment proceed.

    Raises:
        ValueError: the word has no letters.
    """
    letters = re.sub(r"[^a-z]", "", word.lower())
    if not letters:
        raise ValueError(f"cannot spell out {word!r}: no letters")
    if len(letters) > 2 and letters.endswith("e") and letters[-2] not in "aeiou":
        letters = letters[:-1]
    phones: list[str] = []
    i = 0
    while i < len(letters):
        if letters[i] == "c" and letters[i + 1 : i + 2] in ("e", "i", "y"):
            phones.append("S")
            i += 1
            continue
        if letters[i] == "y" and i == 0:
            phones.append("Y")
            i += 1
            continue
        grapheme, sound = next((g, s) for g, s in _LTS_RULES if letters.startswith(g, i))
        phones.extend(sound.split())
        i += len(grapheme)
    return " ".join(phones)


def force_align(
    wave: np.ndarray,
    text: str,
    pronunciations: Mapping[str, str] | None = None,
    name: str = "<audio>",
) -> list[PhoneSegment]:
    """Align a transcript to speech with pocketsphinx (~0.07× real time).

    Two passes: word alignment (``set_align_text``), then phone alignment
    (``set_alignment()``), read with ``get_alignment()``. Words missing from cmudict get
    their pronunciation from ``pronunciations``, then ``EXTRA_PRONUNCIATIONS``, then
    ``letter_to_sound``.

    Args:
        wave: ``[N]`` float32 waveform, 16 kHz mono.
        text: transcript; markup and punctuation are stripped (``normalize_transcript``).
        pronunciations: extra ``word → "AH L AY N ER"`` entries (override the dictionary).
        name: file name used in error messages.

    Returns:
        Phone segments in seconds with their ``word`` (``None`` for silences).

    Raises:
        AudioError: empty transcript, or the decoder finds no alignment (speech and
            transcript do not match, or the audio is too short for the phones).
    """
    words = normalize_transcript(text)
    if not words:
        raise AudioError(f"{name}: transcript {text!r} has no words to align")
    pcm = _to_int16(wave).tobytes()
    with _borrowed_decoder("align") as decoder:
        return _force_align_with(decoder, words, pronunciations, name, pcm)


def _force_align_with(decoder, words: list[str], pronunciations: Mapping[str, str] | None,
                      name: str, pcm: bytes) -> list[PhoneSegment]:
    extra = {**EXTRA_PRONUNCIATIONS, **{k.lower(): v for k, v in (pronunciations or {}).items()}}
    for word in sorted(set(words)):
        pron = extra.get(word)
        if pron is None and decoder.lookup_word(word) is None:
            pron = letter_to_sound(word)
        if pron is not None:
            _add_pronunciation(decoder, word, " ".join(normalize_phone(p) for p in pron.split()))
    decoder.reinit_feat()
    try:
        decoder.set_align_text(" ".join(words))
        _decode(decoder, pcm)
        segments = _aligned_phones(decoder, pcm)
    except (RuntimeError, ValueError) as error:
        raise AudioError(f"{name}: forced alignment found no path through the transcript ({error}); "
                         "speech and transcript may not match") from error
    if not any(seg.word for seg in segments):
        raise AudioError(f"{name}: forced alignment found no path for transcript {' '.join(words)!r} "
                         "(speech and transcript do not match?)")
    return _merge_silences(segments)
