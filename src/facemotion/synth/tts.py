"""Text-to-speech with exact phone timing from three Debian engines.

* ``espeak``: espeak-ng through its C library (``libespeak-ng.so.1``, ctypes) with
  ``espeakEVENT_PHONEME`` events in IPA; each event's ``audio_position`` (ms) is the
  phone's start, the next event's is its end. Each utterance runs in a forked child
  with a freshly initialised library, because the library's state carries over between
  utterances and would make the output depend on what was spoken before.
* ``flite``: ``flite -psdur`` prints ``phone:end_time`` for every segment.
* ``festival``: a Scheme script synthesises the utterance and prints the ``Segment``
  relation (name, end time).

Every engine's phone set is mapped to ARPAbet without stress digits (the pocketsphinx
en-us set: ``AA AE AH ... ZH`` plus ``SIL``). All waveforms are returned at 16 kHz.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import tempfile
import unicodedata
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from facemotion.audio.io import SAMPLE_RATE
from facemotion.audio.phones import PHONES
from facemotion.errors import AudioError

Phones = list[tuple[str, float, float]]
"""Phone segments ``(ARPAbet phone, start s, end s)``, contiguous, covering the clip."""



@dataclass(frozen=True)
class Voice:
    """A base TTS voice: ``engine`` (espeak, flite, festival), engine voice ``name``, ``sex`` (M/F).

    espeak voices additionally take a variant (``m1``..``m7``, ``f1``..``f5``) per speaker.
    """

    engine: str
    name: str
    sex: str

    @property
    def key(self) -> str:
        """Stable identifier, e.g. ``"espeak:en-gb-scotland"``."""
        return f"{self.engine}:{self.name}"


VOICES: tuple[Voice, ...] = (
    *(Voice("espeak", n, "M") for n in ("en-us", "en-gb", "en-029", "en-gb-scotland", "en-gb-x-rp",
                                        "en-gb-x-gbclan", "en-gb-x-gbcwmd")),
    Voice("flite", "kal16", "M"), Voice("flite", "awb", "M"), Voice("flite", "rms", "M"),
    Voice("flite", "slt", "F"), Voice("flite", "kal", "M"),
    Voice("festival", "kal_diphone", "M"), Voice("festival", "cmu_us_slt_arctic_hts", "F"),
)
"""The base voices; espeak variants give each espeak voice male and female forms."""

_ESPEAK_NAMES = {"en-gb": "en"}  # voice file names where they differ from the language tag
ESPEAK_VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))

# ---------------------------------------------------------------- phone sets -> ARPAbet

_IPA = {
    "aɪ": "AY", "aʊ": "AW", "eɪ": "EY", "oʊ": "OW", "əʊ": "OW", "ɔɪ": "OY", "tʃ": "CH", "dʒ": "JH",
    "ɑ": "AA", "ɒ": "AA", "æ": "AE", "a": "AE", "ʌ": "AH", "ə": "AH", "ɐ": "AH", "ɔ": "AO",
    "ɛ": "EH", "e": "EH", "ɜ": "ER", "ɚ": "ER", "ɝ": "ER", "ɪ": "IH", "ᵻ": "IH", "ɨ": "IH",
    "i": "IY", "ʊ": "UH", "u": "UW", "ʉ": "UW", "o": "OW", "y": "UW", "ø": "ER",
    "p": "P", "b": "B", "t": "T", "d": "D", "k": "K", "ɡ": "G", "g": "G", "f": "F", "v": "V",
    "θ": "TH", "ð": "DH", "s": "S", "z": "Z", "ʃ": "SH", "ʒ": "ZH", "h": "HH", "x": "HH",
    "ç": "HH", "m": "M", "n": "N", "ŋ": "NG", "l": "L", "ɫ": "L", "ɬ": "L", "ɹ": "R", "r": "R",
    "ɾ": "D", "ʔ": "T", "w": "W", "ʍ": "W", "j": "Y",
}
_IPA_IGNORE = set("ˈˌːˑ:‿-_| ʲʰʷˠˤ")
_RADIO = {"ax": "AH", "axr": "ER", "ix": "IH", "dx": "D", "el": "L", "em": "M", "en": "N",
          "nx": "N", "hv": "HH", "pau": "SIL", "h#": "SIL", "brth": "SIL", "ssil": "SIL"}


def ipa_to_arpabet(ipa: str) -> list[str]:
    """Map one espeak-ng IPA phoneme string (may hold 1–3 phones, e.g. ``"ɑːɹ"``) to ARPAbet.

    Stress and length marks, secondary articulations (``ʲ``, ``ʰ``, ...) and combining
    diacritics are dropped; the empty string is a pause (``["SIL"]``), a string of
    modifiers only gives ``[]`` (it belongs to the previous phone).

    Raises:
        ValueError: a symbol has no ARPAbet equivalent.
    """
    s = "".join(c for c in unicodedata.normalize("NFD", ipa)
                if c not in _IPA_IGNORE and not unicodedata.combining(c))
    out, i = [], 0
    while i < len(s):
        if s[i:i + 2] in _IPA:
            out.append(_IPA[s[i:i + 2]])
            i += 2
        elif s[i] in _IPA:
            out.append(_IPA[s[i]])
            i += 1
        else:
            raise ValueError(f"unknown IPA symbol {s[i]!r} in {ipa!r}")
    return out if ipa else ["SIL"]


def radio_to_arpabet(phone: str) -> str:
    """Map a flite/festival (CMU "radio") phone, e.g. ``"ax"``, ``"pau"``, to ARPAbet.

    Raises:
        ValueError: not a known phone.
    """
    p = _RADIO.get(phone, phone.upper())
    if p not in PHONES:
        raise ValueError(f"unknown phone {phone!r}")
    return p


def _merge(phones: Phones) -> Phones:
    """Drop zero-length segments and merge consecutive ``SIL``."""
    out: Phones = []
    for p, s, e in phones:
        if e - s <= 1e-6:
            continue
        if out and p == "SIL" and out[-1][0] == "SIL":
            out[-1] = ("SIL", out[-1][1], e)
        else:
            out.append((p, s, e))
    return out


def _from_ends(labels: list[str], ends: list[float], duration: float) -> Phones:
    """Segments from end times (flite/festival), closed by a final ``SIL`` up to ``duration``."""
    phones, start = [], 0.0
    for lab, end in zip(labels, ends):
        phones.append((radio_to_arpabet(lab), start, min(end, duration)))
        start = min(end, duration)
    phones.append(("SIL", start, duration))
    return _merge(phones)


def _resample(wave: np.ndarray, rate: int) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float32)
    if wave.ndim > 1:
        wave = wave.mean(axis=1)
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE).astype(np.float32)
    return wave


# ---------------------------------------------------------------- espeak-ng (ctypes)

class _EspeakEvent(ctypes.Structure):
    class _Id(ctypes.Union):
        _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _Id)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_EspeakEvent))
_EVENT_END_OF_LIST, _EVENT_PHONEME = 0, 7
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS, _INIT_PHONEME_IPA, _INIT_DONT_EXIT = 0x1, 0x2, 0x8000
_PARAM_RATE, _PARAM_PITCH, _PARAM_RANGE = 1, 3, 4
_CHARS_UTF8 = 1


class _Espeak:
    """The espeak-ng library with a synth callback collecting samples and phoneme events."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL("libespeak-ng.so.1")
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                               _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT)
        if self.rate <= 0:
            raise RuntimeError("espeak_Initialize failed")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[str, int]] = []
        self._cb = _CALLBACK(self._callback)  # keep a reference: the library holds the pointer
        self.lib.espeak_SetSynthCallback(self._cb)

    def _callback(self, wav, n, events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            if events[i].type == _EVENT_PHONEME:
                name = bytes(events[i].id.string).split(b"\0")[0].decode("utf-8", "replace")
                self._events.append((name, events[i].audio_position))
            i += 1
        return 0

    def synth(self, voice: str, text: str, rate: int, pitch: int, pitch_range: int):
        self._chunks, self._events = [], []
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((_PARAM_RATE, rate), (_PARAM_PITCH, pitch), (_PARAM_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        data = text.encode("utf-8")
        self.lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        wave = np.concatenate(self._chunks).astype(np.float32) / 32768.0 if self._chunks else np.zeros(0, np.float32)
        return wave, list(self._events)


def _espeak_fresh(voice: str, text: str, rate: int, pitch: int) -> tuple[int, np.ndarray, list]:
    """Synthesise in a forked child that initialises espeak-ng from scratch.

    espeak-ng keeps state between calls (its pitch flutter runs on across utterances), so
    the same call gives slightly different audio and timing depending on what was spoken
    before; a fresh library per utterance makes every clip a pure function of its inputs.
    Returns ``(sample rate, wave [N] float32, [(ipa, ms), ...])``.
    """
    from facemotion.processes import fork_tied

    read_fd, write_fd = os.pipe()
    pid = fork_tied()  # killed with this process (a pool worker killed on Ctrl-C)
    if pid == 0:  # child: never returns, whatever happens (else it would go on as a copy of its parent)
        try:
            try:
                os.close(read_fd)
                engine = _Espeak()
                payload = pickle.dumps((engine.rate, *engine.synth(voice, text, rate, pitch, 50)))
            except BaseException as e:  # noqa: BLE001 - reported to the parent
                payload = pickle.dumps(RuntimeError(f"espeak-ng: {e}"))
            with os.fdopen(write_fd, "wb") as f:
                f.write(payload)  # BrokenPipeError when the parent is gone
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = pickle.loads(data) if data else RuntimeError("espeak-ng child died")
    if isinstance(result, Exception):
        raise result
    return result


def _espeak(voice: str, text: str, rate: float, pitch: float) -> tuple[np.ndarray, Phones]:
    sr, wave, events = _espeak_fresh(voice, text, round(175 * rate), round(pitch))
    duration = len(wave) / sr
    phones: Phones = [("SIL", 0.0, events[0][1] / 1000.0 if events else duration)]
    for k, (name, pos) in enumerate(events):
        start = pos / 1000.0
        end = events[k + 1][1] / 1000.0 if k + 1 < len(events) else duration
        labels = ipa_to_arpabet(name)
        if not labels:  # a modifier event: extend the previous phone
            phones[-1] = (phones[-1][0], phones[-1][1], end)
            continue
        # split a multi-phone event, vowels weighted twice as long as consonants
        weights = np.array([2.0 if lab[0] in "AEIOU" else 1.0 for lab in labels])
        bounds = start + (end - start) * np.concatenate([[0], np.cumsum(weights) / weights.sum()])
        phones += [(lab, float(bounds[j]), float(bounds[j + 1])) for j, lab in enumerate(labels)]
    return _resample(wave, sr), _merge(phones)


# ---------------------------------------------------------------- flite, festival

def _flite(voice: str, text: str, rate: float) -> tuple[np.ndarray, Phones]:
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "out.wav")
        res = subprocess.run(["flite", "-voice", voice, "-psdur", "--setf", f"duration_stretch={1.0 / rate:.3f}",
                              "-t", text, "-o", wav], capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"flite failed: {res.stderr.strip()}")
        wave, sr = sf.read(wav, dtype="float32")
    pairs = [tok.rsplit(":", 1) for tok in res.stdout.split() if ":" in tok]
    phones = _from_ends([p for p, _ in pairs], [float(e) for _, e in pairs], len(wave) / sr)
    return _resample(wave, sr), phones


_FESTIVAL_SCRIPT = """(voice_{voice})
(Parameter.set 'Duration_Stretch {stretch:.3f})
(set! utt (Utterance Text "{text}"))
(utt.synth utt)
(utt.save.wave utt "{wav}" 'riff)
(mapcar (lambda (s) (format t "%s %f\\n" (item.name s) (item.feat s "end"))) (utt.relation.items utt 'Segment))
"""


def _festival(voice: str, text: str, rate: float) -> tuple[np.ndarray, Phones]:
    with tempfile.TemporaryDirectory() as tmp:
        wav, scm = os.path.join(tmp, "out.wav"), os.path.join(tmp, "synth.scm")
        safe = text.replace("\\", " ").replace('"', " ")
        with open(scm, "w", encoding="utf-8") as f:
            f.write(_FESTIVAL_SCRIPT.format(voice=voice, stretch=1.0 / rate, text=safe, wav=wav))
        res = subprocess.run(["festival", "-b", scm], capture_output=True, text=True, timeout=300)
        if res.returncode != 0 or not os.path.isfile(wav):
            raise RuntimeError(f"festival failed: {res.stderr.strip()[-300:]}")
        wave, sr = sf.read(wav, dtype="float32")
    rows = [line.split() for line in res.stdout.splitlines() if len(line.split()) == 2]
    phones = _from_ends([r[0] for r in rows], [float(r[1]) for r in rows], len(wave) / sr)
    return _resample(wave, sr), phones


def synthesize(voice: Voice, text: str, variant: str | None = None, rate: float = 1.0,
               pitch: float = 50.0) -> tuple[np.ndarray, Phones]:
    """Speak ``text`` with a base voice; return the 16 kHz waveform and its phone segments.

    Args:
        voice: one of :data:`VOICES`.
        text: the utterance.
        variant: espeak-ng voice variant (``"m3"``, ``"f2"``, ...); ignored by other engines.
        rate: speaking-rate factor (1 = the voice's default; espeak 175 words/min).
        pitch: espeak-ng base pitch 0–100 (other engines: pitch is changed afterwards).

    Returns:
        ``(wave [N] float32 16 kHz, phones)`` with ``phones`` contiguous ARPAbet segments
        ``(phone, start s, end s)`` from the engine's own timing, ending at ``N / 16000``.

    Raises:
        AudioError: the engine failed, produced no audio, or used a phone with no ARPAbet
            equivalent (the message names the voice and text).
    """
    try:
        if voice.engine == "espeak":
            name = _ESPEAK_NAMES.get(voice.name, voice.name)
            name = f"{name}+{variant}" if variant else name
            wave, phones = _espeak(name, text, rate, pitch)
        elif voice.engine == "flite":
            wave, phones = _flite(voice.name, text, rate)
        elif voice.engine == "festival":
            wave, phones = _festival(voice.name, text, rate)
        else:
            raise ValueError(f"unknown engine {voice.engine!r}")
    except (RuntimeError, ValueError, OSError, subprocess.TimeoutExpired) as e:
        raise AudioError(f"{voice.key}: synthesis of {text[:40]!r} failed ({e})") from e
    if wave.size < SAMPLE_RATE // 4 or not phones:
        raise AudioError(f"{voice.key}: synthesis of {text[:40]!r} gave no audio")
    # engines may round the final end time differently from the sample count
    duration = wave.size / SAMPLE_RATE
    phones = [(p, min(s, duration), min(e, duration)) for p, s, e in phones]
    phones[-1] = (phones[-1][0], phones[-1][1], duration)
    return wave, _merge(phones)
