"""Pseudo-speakers (voice + prosody + Praat voice change + speaking style) and audio augmentation.

A pseudo-speaker is a base TTS voice with an espeak variant, a speaking rate, a pitch,
a Praat "Change gender" transform (formant shift ratio, new pitch median, pitch range
factor), a speed factor, and facial speaking-style parameters. The pool is drawn from
the corpus seed alone, so a speaker id always means the same person.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import scipy.signal
import soxr

from facemotion.audio.io import SAMPLE_RATE
from facemotion.errors import require
from facemotion.synth.tts import ESPEAK_VARIANTS, VOICES, Voice

TEST_VOICES = ("espeak:en-gb-x-gbcwmd", "flite:rms")
"""Base voices held out for the test split (no train/val speaker uses them)."""

VAL_FRACTION = 0.08
"""Fraction of the remaining pseudo-speakers put in the validation split."""


@dataclass(frozen=True)
class Style:
    """Facial speaking style of a pseudo-speaker (all dimensionless factors).

    ``articulation``: lip/jaw amplitude (×, ~0.75–1.3); ``width``: extra mouth stretch
    (−0.1–0.2); ``smile``: smile baseline (0–0.25); ``asymmetry``: left/right imbalance of
    mouth and brows (−0.15–0.15, >0 = stronger on the subject's left); ``brow``: brow
    activity at pitch accents (×, 0.3–1.5); ``head``: head-motion energy (×, 0.4–1.6);
    ``blink``: blink-rate factor (×, 0.8–1.2).
    """

    articulation: float = 1.0
    width: float = 0.0
    smile: float = 0.0
    asymmetry: float = 0.0
    brow: float = 1.0
    head: float = 1.0
    blink: float = 1.0


@dataclass(frozen=True)
class PseudoSpeaker:
    """One synthetic person: voice, prosody, voice conversion and facial style.

    ``rate``: TTS rate factor; ``tts_pitch``: espeak pitch 0–100; ``formant_ratio``: Praat
    formant shift ratio (0.8–1.25); ``pitch_median`` (Hz) and ``pitch_range``: Praat new
    pitch median and range factor; ``speed``: speed perturbation (0.9–1.1; durations are
    divided by it); ``sex``: the pseudo-speaker's sex (M/F), which may differ from the
    base voice's; ``split``: train/val/test; ``identity``: face shape, coefficients of the
    built-in head's identity modes (:attr:`facemotion.face.rig.HeadRig.identity_basis`, each
    about N(0, 1); unitless), so clips differ in face shape as in VOCASET or 3D-HDTF.
    """

    id: str
    voice: Voice
    variant: str | None
    sex: str
    rate: float
    tts_pitch: float
    formant_ratio: float
    pitch_median: float
    pitch_range: float
    speed: float
    style: Style
    split: str
    identity: tuple[float, ...] = ()

    @property
    def voice_name(self) -> str:
        """Voice with its variant, e.g. ``"espeak:en-us+f3"``."""
        return self.voice.key + (f"+{self.variant}" if self.variant else "")

    def to_dict(self) -> dict:
        """JSON-serialisable description (stored in the corpus' ``speakers.json``)."""
        d = asdict(self)
        d["voice"] = self.voice_name
        return d


def _draw_speaker(rng: np.random.Generator, index: int, seed: int) -> PseudoSpeaker:
    voice = VOICES[rng.integers(len(VOICES))]
    variant = str(rng.choice(ESPEAK_VARIANTS)) if voice.engine == "espeak" else None
    base_sex = ("F" if variant.startswith("f") else "M") if variant else voice.sex
    sex = "F" if rng.random() < 0.5 else "M"
    if sex == base_sex:
        formant = rng.uniform(0.9, 1.1)
    else:
        formant = rng.uniform(1.1, 1.25) if sex == "F" else rng.uniform(0.8, 0.9)
    median = rng.uniform(165, 255) if sex == "F" else rng.uniform(85, 150)
    style = Style(articulation=rng.uniform(0.75, 1.3), width=rng.uniform(-0.1, 0.2),
                  smile=rng.uniform(0.0, 0.25) * (rng.random() < 0.6),
                  asymmetry=rng.uniform(-0.15, 0.15), brow=rng.uniform(0.3, 1.5),
                  head=rng.uniform(0.4, 1.6), blink=rng.uniform(0.8, 1.2))
    split = "test" if voice.key in TEST_VOICES else ("val" if rng.random() < VAL_FRACTION else "train")
    return PseudoSpeaker(id=f"synth{seed}-spk{index:04d}", voice=voice, variant=variant, sex=sex,
                         rate=rng.uniform(0.85, 1.2), tts_pitch=rng.uniform(30, 70),
                         formant_ratio=formant, pitch_median=median, pitch_range=rng.uniform(0.7, 1.5),
                         speed=rng.uniform(0.9, 1.1), style=style, split=split,
                         identity=speaker_identity(seed, index))


IDENTITY_MODES = 60
"""Identity coefficients per pseudo-speaker (all of the built-in head's identity modes)."""


def speaker_identity(seed: int, index: int) -> tuple[float, ...]:
    """Face-shape coefficients of pseudo-speaker ``index`` of corpus ``seed``: :data:`IDENTITY_MODES`
    draws of N(0, 1) from their own generator, so the rest of the speaker (voice, style, split) is
    drawn as it was before speakers had faces."""
    rng = np.random.default_rng([seed, 104729, index])
    return tuple(float(b) for b in rng.standard_normal(IDENTITY_MODES))


@lru_cache(maxsize=4)
def speaker_pool(seed: int, n: int = 400) -> tuple[PseudoSpeaker, ...]:
    """The corpus' ``n`` pseudo-speakers, a pure function of ``seed``.

    Splits are by speaker: every speaker of a :data:`TEST_VOICES` base voice is ``test``,
    about :data:`VAL_FRACTION` of the others ``val``, the rest ``train``.
    """
    rng = np.random.default_rng([seed, 7919])
    return tuple(_draw_speaker(rng, i, seed) for i in range(n))


def seed_praat(seed: int) -> None:
    """Reseed Praat's own random generator (PSOLA draws from it) with ``seed`` (an int ≥ 1), so a
    clip does not depend on what the process synthesised before."""
    from parselmouth.praat import run

    run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})")


def change_voice(wave: np.ndarray, formant_ratio: float, pitch_median: float, pitch_range: float,
                 speed: float) -> np.ndarray:
    """Praat "Change gender" (PSOLA) with a formant shift, new pitch and speed perturbation.

    Args:
        wave: ``[N]`` float32 16 kHz.
        formant_ratio: formant shift ratio (0.8–1.25).
        pitch_median: new pitch median, Hz.
        pitch_range: pitch range factor (1 = unchanged).
        speed: speed factor; the output lasts ``N / speed`` samples, so phone times scale
            by ``1 / speed``.

    Returns:
        ``[round(N / speed)]`` float32 16 kHz waveform, peak-normalised to 0.9; the same
        inputs always give the same output (Praat's random generator is reseeded).
    """
    parselmouth = require("parselmouth", "facemotion synth")
    from parselmouth.praat import call

    seed_praat(1)
    sound = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE)
    out = call(sound, "Change gender", 75, 600, formant_ratio, pitch_median, pitch_range, 1.0 / speed)
    y = out.values[0].astype(np.float32)
    y = np.nan_to_num(y)
    n = round(len(wave) / speed)
    y = np.pad(y, (0, max(0, n - len(y))))[:n]
    return y * (0.9 / max(float(np.abs(y).max()), 1e-6))


def augment(wave: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Degrade a clip with 1–2 of: additive noise, room reverberation, telephone band, gain.

    * noise: white, pink or brown Gaussian noise at 10–30 dB SNR;
    * reverb: a synthetic impulse response (direct path + exponentially decaying noise
      tail, RT60 0.15–0.7 s), mixed 30–80 % wet; timing is kept (no added delay);
    * telephone: 300–3400 Hz band-pass (4th-order Butterworth) at 8 kHz and back to 16 kHz;
    * gain: −12…+6 dB, clipped to [−1, 1] (other effects are peak-limited to 1 instead).

    Args:
        wave: ``[N]`` float32 16 kHz.
        rng: random generator.

    Returns:
        ``(wave [N] float32, names of the applied effects)``.
    """
    kinds = list(rng.choice(["noise", "reverb", "telephone", "gain"], size=rng.integers(1, 3), replace=False))
    y = wave.astype(np.float64)
    for kind in ("reverb", "telephone", "noise", "gain"):  # physical order
        if kind not in kinds:
            continue
        if kind == "noise":
            noise = rng.standard_normal(len(y))
            colour = rng.integers(3)  # white, pink (1/f), brown (1/f^2) power
            if colour:
                spec = np.fft.rfft(noise)
                f = np.maximum(np.fft.rfftfreq(len(y)), 1.0 / len(y))
                noise = np.fft.irfft(spec / f ** (colour / 2.0), len(y))
            snr = rng.uniform(10, 30)
            p_sig, p_noise = np.mean(y ** 2), np.mean(noise ** 2)
            y = y + noise * np.sqrt(p_sig / (p_noise * 10 ** (snr / 10)))
        elif kind == "reverb":
            rt60 = rng.uniform(0.15, 0.7)
            t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
            ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
            ir[0] = 0.0
            ir *= 0.25 / np.sqrt(np.sum(ir ** 2))
            wet = rng.uniform(0.3, 0.8)
            y = (1 - wet) * y + wet * (y + scipy.signal.fftconvolve(y, ir)[: len(y)])
        elif kind == "telephone":
            narrow = soxr.resample(y, SAMPLE_RATE, 8000)
            sos = scipy.signal.butter(4, [300, 3400], btype="bandpass", fs=8000, output="sos")
            narrow = scipy.signal.sosfiltfilt(sos, narrow)
            y = np.pad(soxr.resample(narrow, 8000, SAMPLE_RATE), (0, len(y)))[: len(y)]
        else:  # gain (last): may clip, like an overdriven recording
            y = y / max(1.0, float(np.abs(y).max())) * 10 ** (rng.uniform(-12, 6) / 20)
    y = y / max(1.0, float(np.abs(y).max())) if "gain" not in kinds else y
    return np.clip(y, -1.0, 1.0).astype(np.float32), sorted(str(k) for k in kinds)
