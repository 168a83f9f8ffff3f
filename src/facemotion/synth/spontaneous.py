"""What real speech has and read-aloud TTS lacks: fillers, hesitations, breaths, voice qualities.

A *spontaneous* clip of the data engine (``facemotion synth --spontaneous P``) is spoken in
pieces: the sentence is cut into chunks (at its commas and at random word boundaries), each
chunk is synthesised on its own by the clip's TTS voice, and between and before them come

* **fillers**: ``um`` and ``uh`` spoken by the same voice (``ah`` for espeak-ng, which says
  nothing for ``uh``), and the hums the engines cannot say (they spell ``hm`` as letters):
  ``mm``, ``hm`` and ``mm-hm``, made from the ``M`` of the voice's own ``um``, lengthened by
  Praat's overlap-add (PSOLA), after an aspiration noise for ``hm`` and with the second part
  raised in pitch for ``mm-hm``. Their phones are ``M`` (and ``HH``), so the animator keeps
  the lips shut through them, as speakers do;
* **hesitations**: a word repeated after a short pause ("the, the house");
* **pauses** of 0.15–0.7 s, the longer ones (≥ 0.3 s) mostly with an audible **breath**
  (band-passed noise with a rise–fall envelope, 18–30 dB below the speech), labelled ``SIL``:
  the mouth rests while the breath is heard.

The whole clip may then be rendered in another **voice quality**
(:func:`apply_voice_quality`): whispered (LPC resynthesis from noise), creaky (low, flat,
irregular pitch) or falsetto (high, breathy). The motion is made from the modal (normal)
rendition, so it is the same for every quality: a whispered "maps" closes the lips like a
spoken one.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage
import scipy.signal

from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import AudioError
from facemotion.synth.speaker import seed_praat
from facemotion.synth.tts import Phones, Voice, _merge, synthesize

FILLERS = ("um", "uh", "mm", "hm", "mm-hm")
"""The fillers a spontaneous clip draws from."""

VOICE_QUALITIES = ("whisper", "creaky", "falsetto")
"""Voice qualities :func:`apply_voice_quality` renders."""

VOICE_QUALITY_FRACTION = 0.3
"""Fraction of spontaneous clips rendered in one of :data:`VOICE_QUALITIES` (equally likely)."""

_EDGE_SILENCE = 0.05  # s of each piece's own leading/trailing silence kept
_FADE = 0.015         # s of fade at the ends of a hum
_MIN_HUM = 0.05       # s: the shortest M a hum is stretched from (else the voice's "um" is said)


@dataclasses.dataclass(frozen=True)
class Piece:
    """One piece of a spontaneous utterance: ``kind`` is ``"words"`` (``text`` to speak),
    ``"repeat"`` (a hesitation: the next word, said once too often), ``"filler"`` (``text``
    one of :data:`FILLERS`) or ``"pause"`` (``seconds`` of silence, with a breath if
    ``breath``)."""

    kind: str
    text: str = ""
    seconds: float = 0.0
    breath: bool = False


def plan_utterance(rng: np.random.Generator, text: str) -> list[Piece]:
    """Cut ``text`` into spoken chunks with fillers, hesitations and pauses between them.

    A filler opens the utterance with probability 0.4; every comma and, with probability 0.12,
    every other word boundary after at least three words of a chunk becomes a break, which
    holds a pause (0.15–0.7 s; a breath in 70 % of those ≥ 0.3 s) and then a filler
    (probability 0.5) or a repeated word (0.15). An utterance that drew neither opens with a
    filler, so at least one filler or hesitation is always present.

    Args:
        text: the sentence (``sample_sentence``), at least one word.
        rng: random generator (the only source of randomness).

    Returns:
        The pieces in speaking order; joining the ``words`` pieces gives back ``text``.
    """
    words = text.split()
    pieces: list[Piece] = []
    disfluent = False

    def pause(lo: float = 0.15, hi: float = 0.7) -> Piece:
        seconds = float(rng.uniform(lo, hi))
        return Piece("pause", seconds=seconds, breath=bool(seconds >= 0.3 and rng.random() < 0.7))

    def filler() -> Piece:
        return Piece("filler", str(rng.choice(FILLERS)))

    if rng.random() < 0.4:
        pieces += [filler(), pause(0.1, 0.4)]
        disfluent = True
    chunk: list[str] = []
    for k, word in enumerate(words):
        chunk.append(word)
        last = k == len(words) - 1
        if last or not (word.endswith(",") or (len(chunk) >= 3 and rng.random() < 0.12)):
            continue
        pieces.append(Piece("words", " ".join(chunk)))
        chunk = []
        pieces.append(pause())
        if rng.random() < 0.5:
            pieces += [filler(), pause(0.1, 0.3)]
            disfluent = True
        elif rng.random() < 0.3:
            pieces += [Piece("repeat", words[k + 1].rstrip(",.?!") + ","), pause(0.1, 0.3)]
            disfluent = True
    if not disfluent:
        pieces = [filler(), pause(0.1, 0.4)] + pieces
    pieces.append(Piece("words", " ".join(chunk)))
    return pieces


def _trim(wave: np.ndarray, phones: Phones, keep: float = _EDGE_SILENCE) -> tuple[np.ndarray, Phones]:
    """Cut a piece's leading and trailing ``SIL`` down to ``keep`` seconds; phones re-timed."""
    start = max(0.0, phones[0][2] - keep) if phones[0][0] == "SIL" else 0.0
    duration = len(wave) / SAMPLE_RATE
    end = min(duration, phones[-1][1] + keep) if phones[-1][0] == "SIL" else duration
    a, b = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
    out = [(p, max(s, start) - start, min(e, end) - start) for p, s, e in phones if e > start and s < end]
    out[-1] = (out[-1][0], out[-1][1], (b - a) / SAMPLE_RATE)
    return wave[a:b], out


def _segment(wave: np.ndarray, phones: Phones, label: str) -> np.ndarray:
    """The samples of the last ``label`` phone of ``phones``."""
    s, e = next((s, e) for p, s, e in reversed(phones) if p == label)
    return wave[int(s * SAMPLE_RATE):int(e * SAMPLE_RATE)]


def _voiced_part(wave: np.ndarray) -> np.ndarray:
    """``wave`` from its first to its last voiced 10 ms frame (Praat pitch), or all of it if
    none is voiced: an engine's final ``M`` often runs on into the silence after it."""
    import parselmouth

    if len(wave) < _MIN_HUM * SAMPLE_RATE:
        return wave
    f0 = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE).to_pitch(0.01, _pitch_floor(wave), 600.0)
    voiced = [f0.xs()[k] for k, hz in enumerate(f0.selected_array["frequency"]) if hz > 0]
    a = max(0, int((voiced[0] - 0.01) * SAMPLE_RATE)) if voiced else 0
    b = int((voiced[-1] + 0.01) * SAMPLE_RATE) if voiced else len(wave)
    return wave[a:b] if b - a >= _MIN_HUM * SAMPLE_RATE else wave


def _pitch_floor(wave: np.ndarray) -> float:
    """Praat's pitch floor for a short sound: 75 Hz, or higher so that 3.2 periods fit."""
    return max(75.0, 3.2 * SAMPLE_RATE / max(len(wave), 1))


def _lengthen(wave: np.ndarray, seconds: float, rng: np.random.Generator, pitch_factor: float = 1.0) -> np.ndarray:
    """``wave`` stretched to ``seconds`` by Praat's "Lengthen (overlap-add)" (PSOLA), its pitch
    scaled by ``pitch_factor`` ("Change gender"), with 15 ms fades at both ends."""
    import parselmouth
    from parselmouth.praat import call

    seed_praat(int(rng.integers(1, 2**31)))
    sound = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE)
    factor = float(np.clip(seconds * SAMPLE_RATE / max(len(wave), 1), 0.2, 10.0))
    floor = _pitch_floor(wave)
    y = call(sound, "Lengthen (overlap-add)", floor, 600, factor)
    if pitch_factor != 1.0:
        median = call(y.to_pitch(), "Get quantile", 0, 0, 0.5, "Hertz")
        if np.isfinite(median):
            y = call(y, "Change gender", 75, 600, 1.0, median * pitch_factor, 1.0, 1.0)
    y = np.nan_to_num(y.values[0].astype(np.float32))
    fade = min(int(_FADE * SAMPLE_RATE), len(y) // 2)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    y[:fade] *= ramp
    y[len(y) - fade:] *= ramp[::-1]
    return y


def _aspiration(rng: np.random.Generator, seconds: float, rms: float) -> np.ndarray:
    """Breathy noise (band 400–5000 Hz) of ``seconds`` with a rise–fall (Hann) envelope, at ``rms``."""
    n = max(round(seconds * SAMPLE_RATE), 8)
    sos = scipy.signal.butter(2, [400, 5000], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    noise = scipy.signal.sosfilt(sos, rng.standard_normal(n)) * np.hanning(n)
    return (noise * rms / max(float(np.sqrt(np.mean(noise ** 2))), 1e-9)).astype(np.float32)


def speak_filler(filler: str, voice: Voice, variant: str | None, rate: float, pitch: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, Phones]:
    """One filler in the clip's voice: ``um``/``uh`` by the TTS engine at 0.5–0.8 × the
    speaking rate (fillers are drawn out), the hums built from the ``M`` of the voice's ``um``
    (module docstring; the voice's ``um`` itself where that ``M`` is under 50 ms).

    Returns:
        ``(wave [N] float32 16 kHz, phones)`` covering the wave.

    Raises:
        ValueError: ``filler`` is not one of :data:`FILLERS`.
        AudioError: the TTS engine failed.
    """
    if filler not in FILLERS:
        raise ValueError(f"unknown filler {filler!r}; expected one of {FILLERS}")
    slow = rate * rng.uniform(0.5, 0.8)  # fillers are drawn out
    if filler in ("um", "uh"):
        text = "ah" if filler == "uh" and voice.engine == "espeak" else filler
        return _trim(*synthesize(voice, text, variant, slow, pitch), keep=0.0)
    um_wave, um_phones = synthesize(voice, "um", variant, slow, pitch)
    m = _voiced_part(_segment(um_wave, um_phones, "M"))
    if len(m) < _MIN_HUM * SAMPLE_RATE:  # too short to stretch: the voice's own "um"
        return _trim(um_wave, um_phones, keep=0.0)
    level = float(np.sqrt(np.mean(m.astype(np.float64) ** 2)))
    parts: list[tuple[np.ndarray, str]] = []
    if filler == "mm":
        parts.append((_lengthen(m, rng.uniform(0.3, 0.7), rng), "M"))
    elif filler == "hm":
        parts += [(_aspiration(rng, rng.uniform(0.05, 0.09), 0.5 * level), "HH"),
                  (_lengthen(m, rng.uniform(0.25, 0.5), rng), "M")]
    else:  # mm-hm: level, then a breath and a higher second hum
        parts += [(_lengthen(m, rng.uniform(0.18, 0.3), rng), "M"),
                  (_aspiration(rng, rng.uniform(0.05, 0.08), 0.5 * level), "HH"),
                  (_lengthen(m, rng.uniform(0.25, 0.4), rng, pitch_factor=rng.uniform(1.15, 1.35)), "M")]
    phones: Phones = []
    t = 0.0
    for wave, label in parts:
        phones.append((label, t, t + len(wave) / SAMPLE_RATE))
        t = phones[-1][2]
    return np.concatenate([w for w, _ in parts]), phones


def breath(rng: np.random.Generator, seconds: float, speech_rms: float) -> np.ndarray:
    """An inhalation of ``seconds`` (band-passed noise, rise–fall envelope), 18–30 dB below
    ``speech_rms`` (float). Returns ``[round(seconds·16000)]`` float32."""
    return _aspiration(rng, seconds, speech_rms * 10 ** (-rng.uniform(18, 30) / 20))


def speak_spontaneous(voice: Voice, variant: str | None, rate: float, pitch: float, text: str,
                      rng: np.random.Generator) -> tuple[np.ndarray, Phones, str, dict]:
    """Speak ``text`` as spontaneous speech (:func:`plan_utterance`, fillers, breaths).

    Args:
        voice, variant, rate, pitch: as :func:`facemotion.synth.tts.synthesize`.
        text: the sentence.
        rng: random generator (plan, filler lengths, breaths).

    Returns:
        ``(wave [N] float32 16 kHz, phones, spoken text with its fillers, e.g. "Um, the
        house, mm-hm, the house is red.", summary {"fillers": [...], "breaths": n,
        "hesitations": n})``; ``phones`` are contiguous and end at ``N / 16000``.

    Raises:
        AudioError: the TTS engine failed on a piece.
    """
    pieces: list[Piece] = []  # those spoken
    spoken: list[tuple[np.ndarray, Phones] | Piece] = []
    skip_pause = False
    for piece in plan_utterance(rng, text):
        if piece.kind == "words":
            spoken.append(_trim(*synthesize(voice, piece.text, variant, rate, pitch)))
        elif piece.kind == "repeat":  # drawn out; dropped (with its pause) if too short to synthesise
            try:
                spoken.append(_trim(*synthesize(voice, piece.text, variant, rate * rng.uniform(0.6, 0.8), pitch)))
            except AudioError:
                skip_pause = True
                continue
        elif piece.kind == "pause" and skip_pause:
            skip_pause = False
            continue
        elif piece.kind == "filler":
            spoken.append(speak_filler(piece.text, voice, variant, rate, pitch, rng))
        else:
            spoken.append(piece)
        pieces.append(piece)
    voiced = np.concatenate([s[0] for s in spoken if not isinstance(s, Piece)])
    speech_rms = float(np.sqrt(np.mean(voiced.astype(np.float64) ** 2)))
    waves, phones, t = [], [], 0.0
    for item in spoken:
        if isinstance(item, Piece):
            wave = np.zeros(int(item.seconds * SAMPLE_RATE), np.float32)
            if item.breath:
                inhale = breath(rng, rng.uniform(0.5, 0.85) * item.seconds, speech_rms)[: len(wave)]
                start = (len(wave) - len(inhale)) // 2
                wave[start:start + len(inhale)] = inhale
            segs = [("SIL", 0.0, len(wave) / SAMPLE_RATE)]
        else:
            wave, segs = item
        waves.append(wave)
        phones += [(p, t + s, t + e) for p, s, e in segs]
        t += len(wave) / SAMPLE_RATE
    words = []
    for piece in pieces:
        if piece.kind == "filler":
            words.append(piece.text.capitalize() + "," if not words else piece.text + ",")
        elif piece.kind in ("words", "repeat"):
            words.append(piece.text)
    summary = {"fillers": [p.text for p in pieces if p.kind == "filler"],
               "breaths": sum(p.breath for p in pieces),
               "hesitations": sum(p.kind == "repeat" for p in pieces)}
    wave = np.concatenate(waves)
    phones = _merge(phones)
    phones[-1] = (phones[-1][0], phones[-1][1], len(wave) / SAMPLE_RATE)
    return wave, phones, " ".join(words), summary


def _envelope(wave: np.ndarray, hop: int = SAMPLE_RATE // 100) -> np.ndarray:
    """Per-sample RMS envelope (25 ms frames every 10 ms, linearly interpolated)."""
    frames = len(wave) // hop + 1
    padded = np.pad(wave.astype(np.float64), (200, 200 + hop))
    rms = np.array([np.sqrt(np.mean(padded[k * hop:k * hop + 400] ** 2)) for k in range(frames)])
    return np.interp(np.arange(len(wave)), np.arange(frames) * hop, rms)


def apply_voice_quality(wave: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Render a modal-voice clip in another voice quality, keeping its timing and loudness contour.

    * ``whisper``: no voicing: white noise through the clip's own LPC filter (Praat "To LPC
      (burg)", order 16, then "Filter"), rescaled to the original's 25 ms RMS envelope;
    * ``creaky``: pitch moved to a 45–70 Hz median (at most 0.7 × the clip's) with its range
      squeezed to 0.3 (PSOLA, Praat "Change gender") and an irregular (jittered) amplitude, as
      vocal fry;
    * ``falsetto``: pitch raised 1.7–2.1 × (at most 480 Hz) with its range narrowed, and
      breath noise (LPC-filtered, 12–18 dB below) mixed in.

    Args:
        wave: ``[N]`` float32 16 kHz.
        kind: one of :data:`VOICE_QUALITIES`.
        rng: random generator.

    Returns:
        ``[N]`` float32, peak-normalised to 0.9.

    Raises:
        ValueError: unknown ``kind``.
    """
    import parselmouth
    from parselmouth.praat import call

    if kind not in VOICE_QUALITIES:
        raise ValueError(f"unknown voice quality {kind!r}; expected one of {VOICE_QUALITIES}")
    x = wave.astype(np.float64)
    sound = parselmouth.Sound(x, SAMPLE_RATE)
    seed_praat(int(rng.integers(1, 2**31)))

    def lpc_noise() -> np.ndarray:
        lpc = call(sound, "To LPC (burg)", 16, 0.025, 0.005, 50.0)
        noise = parselmouth.Sound(rng.standard_normal(len(x)) * 0.05, SAMPLE_RATE)
        y = call([noise, lpc], "Filter", False).values[0][: len(x)]
        y = np.pad(np.nan_to_num(y), (0, len(x) - len(y)))
        return y * _envelope(x) / np.maximum(_envelope(y), 1e-6)

    median = call(sound.to_pitch(), "Get quantile", 0, 0, 0.5, "Hertz")
    if kind == "whisper" or not np.isfinite(median):
        y = lpc_noise()
    elif kind == "creaky":
        target = min(rng.uniform(45, 70), 0.7 * median)
        y = call(sound, "Change gender", 75, 600, 1.0, target, 0.3, 1.0).values[0]
        y = np.pad(np.nan_to_num(y), (0, len(x)))[: len(x)]
        jitter = np.repeat(rng.uniform(0.55, 1.0, len(x) // 160 + 1), 160)[: len(x)]
        y = y * scipy.ndimage.uniform_filter1d(jitter, 32)
    else:
        target = min(480.0, median * rng.uniform(1.7, 2.1))
        y = call(sound, "Change gender", 75, 600, 1.0, target, 0.7, 1.0).values[0]
        y = np.pad(np.nan_to_num(y), (0, len(x)))[: len(x)]
        y = y + lpc_noise() * 10 ** (-rng.uniform(12, 18) / 20)
    return (y * (0.9 / max(float(np.abs(y).max()), 1e-6))).astype(np.float32)
