"""Phone-timed speech animation in ARKit blendshape weights plus head rotation.

Lips and jaw follow the phones with co-articulation by dominance functions (Cohen &
Massaro 1993, "Modeling coarticulation in synthetic visual speech"): every segment ``s``
has per-parameter targets ``T_s`` and dominance ``D_s(t) = α_s · exp(−θ_s · d_s(t))``
(``d_s`` = distance in seconds from ``t`` to the segment, ``θ`` differing before and after
it), and each parameter is the dominance-weighted mean ``F(t) = Σ_s D_s(t) T_s / Σ_s D_s(t)``.
Bilabials and labiodentals dominate their lip parameters; rounded vowels have a small
anticipatory rate so their pucker/funnel spreads onto preceding consonants. The jaw
scales with loudness (RMS envelope). Bilabials /p b m/ are then forced closed
(``jawOpen ≤ 0.08``, ``mouthClose = jawOpen``, ``mouthPress``, the upper-lip raisers
``mouthShrugUpper`` and ``noseSneer`` held down to 0.1), so lips meet on every one.

The lip/jaw channels depend only on the phones, the audio, the speaker's style and the
emotion label; the random stream drives the upper face and head only: brow raises and
nods at pitch accents, blinks (~15–20/min, more in pauses), gaze saccades and head
drift (Ornstein–Uhlenbeck) modulated by speech energy.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage
import scipy.signal

from facemotion.audio.io import SAMPLE_RATE
from facemotion.audio.phones import VISEME_CLASSES
from facemotion.errors import require
from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX
from facemotion.face.blinks import blink_times, blink_track, bump, smoothstep
from facemotion.face.lips import CLOSURE_EASE, close_lips
from facemotion.synth.speaker import Style
from facemotion.synth.tts import Phones

N = len(ARKIT_BLENDSHAPES)
EMOTIONS = ("neutral", "happy", "sad", "angry", "surprised", "disgusted", "fearful")


def _idx(*names: str) -> list[int]:
    """Indices of ARKit names; a name without side (``"mouthSmile"``) means both sides."""
    out = []
    for n in names:
        out += [ARKIT_INDEX[n]] if n in ARKIT_INDEX else [ARKIT_INDEX[n + "Left"], ARKIT_INDEX[n + "Right"]]
    return out


def _vec(**weights: float) -> np.ndarray:
    v = np.zeros(N, np.float32)
    for name, w in weights.items():
        v[_idx(name)] = w
    return v


# channel groups with their own dominance (jaw/teeth, rounding, spreading, lip contact)
GROUPS = {
    "jaw": _idx("jawOpen", "mouthLowerDown", "mouthUpperUp"),
    "round": _idx("mouthPucker", "mouthFunnel"),
    "spread": _idx("mouthStretch"),
    "lips": _idx("mouthClose", "mouthPress", "mouthRollLower", "mouthRollUpper", "mouthShrugUpper",
                 "mouthShrugLower", "tongueOut"),
}
BILABIALS = frozenset(VISEME_CLASSES["bilabial"])


def _viseme(targets: dict, alpha: dict, theta: tuple[float, float] = (20.0, 20.0)):
    """(targets [52], alpha per group, (θ before, θ after) in 1/s)."""
    a = {"jaw": 0.5, "round": 0.3, "spread": 0.3, "lips": 0.3} | alpha
    return _vec(**targets), a, theta


_VOWEL_A = {"jaw": 0.8, "round": 0.5, "spread": 0.5, "lips": 0.4}
_ROUND_A = {"jaw": 0.8, "round": 0.9, "spread": 0.6, "lips": 0.4}
_ROUND_THETA = (6.0, 14.0)  # anticipatory rounding: slow decay before the vowel
VISEMES = {
    "SIL": _viseme(dict(jawOpen=0.03, mouthClose=0.03), {"jaw": 0.3, "lips": 0.3}, (12, 12)),
    "BMP": _viseme(dict(jawOpen=0.05, mouthClose=0.05, mouthPress=0.35, mouthRollLower=0.15,
                        mouthRollUpper=0.1), {"jaw": 1.0, "lips": 1.0, "spread": 0.4}, (30, 30)),
    "FV": _viseme(dict(jawOpen=0.08, mouthRollLower=0.55, mouthUpperUp=0.2, mouthShrugUpper=0.1),
                  {"jaw": 0.9, "lips": 0.9}, (30, 30)),
    "TH": _viseme(dict(jawOpen=0.12, tongueOut=0.3, mouthUpperUp=0.05), {"jaw": 0.6, "lips": 0.7}, (25, 25)),
    "TDNL": _viseme(dict(jawOpen=0.12, mouthLowerDown=0.1), {"jaw": 0.5, "round": 0.1, "spread": 0.2}),
    "SZ": _viseme(dict(jawOpen=0.05, mouthStretch=0.2, mouthLowerDown=0.15, mouthUpperUp=0.1),
                  {"jaw": 0.8, "round": 0.1, "spread": 0.4}, (25, 25)),
    "SH": _viseme(dict(jawOpen=0.08, mouthFunnel=0.45, mouthPucker=0.25, mouthShrugUpper=0.2),
                  {"jaw": 0.7, "round": 0.7}, (22, 22)),
    "KG": _viseme(dict(jawOpen=0.15), {"jaw": 0.4, "round": 0.1, "spread": 0.1}, (18, 18)),
    "HH": _viseme(dict(jawOpen=0.15), {"jaw": 0.2, "round": 0.2, "spread": 0.2, "lips": 0.2}, (15, 15)),
    "R": _viseme(dict(jawOpen=0.1, mouthFunnel=0.3, mouthPucker=0.3), {"jaw": 0.4, "round": 0.6}),
    "W": _viseme(dict(jawOpen=0.06, mouthPucker=0.75, mouthFunnel=0.3), {"jaw": 0.6, "round": 1.0}, (10, 18)),
    "Y": _viseme(dict(jawOpen=0.08, mouthStretch=0.25), {"jaw": 0.5, "spread": 0.5}),
    "AA": _viseme(dict(jawOpen=0.55, mouthLowerDown=0.25), _VOWEL_A, (14, 14)),
    "AE": _viseme(dict(jawOpen=0.45, mouthStretch=0.25, mouthLowerDown=0.2, mouthUpperUp=0.1), _VOWEL_A, (14, 14)),
    "AH": _viseme(dict(jawOpen=0.38, mouthLowerDown=0.15), _VOWEL_A, (14, 14)),
    "AO": _viseme(dict(jawOpen=0.45, mouthFunnel=0.4, mouthPucker=0.1), _ROUND_A, _ROUND_THETA),
    "EH": _viseme(dict(jawOpen=0.3, mouthStretch=0.2, mouthLowerDown=0.15), _VOWEL_A, (14, 14)),
    "ER": _viseme(dict(jawOpen=0.18, mouthFunnel=0.35, mouthPucker=0.25), _ROUND_A, _ROUND_THETA),
    "IH": _viseme(dict(jawOpen=0.2, mouthStretch=0.25), _VOWEL_A, (14, 14)),
    "IY": _viseme(dict(jawOpen=0.1, mouthStretch=0.4), _VOWEL_A, (14, 14)),
    "UH": _viseme(dict(jawOpen=0.18, mouthPucker=0.4, mouthFunnel=0.2), _ROUND_A, _ROUND_THETA),
    "UW": _viseme(dict(jawOpen=0.1, mouthPucker=0.75, mouthFunnel=0.3), _ROUND_A, _ROUND_THETA),
}
PHONE_VISEMES: dict[str, tuple[str, ...]] = {
    "SIL": ("SIL",), "P": ("BMP",), "B": ("BMP",), "M": ("BMP",), "F": ("FV",), "V": ("FV",),
    "TH": ("TH",), "DH": ("TH",), "T": ("TDNL",), "D": ("TDNL",), "N": ("TDNL",), "L": ("TDNL",),
    "S": ("SZ",), "Z": ("SZ",), "SH": ("SH",), "ZH": ("SH",), "CH": ("SH",), "JH": ("SH",),
    "K": ("KG",), "G": ("KG",), "NG": ("KG",), "HH": ("HH",), "R": ("R",), "W": ("W",), "Y": ("Y",),
    **{v: (v,) for v in ("AA", "AE", "AH", "AO", "EH", "ER", "IH", "IY", "UH", "UW")},
    # diphthongs: two targets, one per half of the segment
    "AY": ("AA", "IY"), "AW": ("AA", "UW"), "EY": ("EH", "IY"), "OW": ("AO", "UW"), "OY": ("AO", "IY"),
}
"""ARPAbet phone -> viseme target(s)."""

# emotion -> (lower-face offsets, upper-face offsets, articulation gain), all at intensity 1
EMOTION_SHAPES = {
    "neutral": (_vec(), _vec(), 1.0),
    "happy": (_vec(mouthSmile=0.55, cheekSquint=0.4, mouthDimple=0.15), _vec(eyeSquint=0.25, browOuterUp=0.1), 1.1),
    "sad": (_vec(mouthFrown=0.45, mouthShrugLower=0.2, mouthPress=0.1), _vec(browInnerUp=0.55, browDown=0.1,
                                                                             eyeLookDown=0.1), 0.8),
    "angry": (_vec(mouthPress=0.3, noseSneer=0.3, mouthRollLower=0.1), _vec(browDown=0.6, eyeSquint=0.35), 1.15),
    "surprised": (_vec(jawOpen=0.1, mouthFunnel=0.05), _vec(browInnerUp=0.5, browOuterUp=0.6, eyeWide=0.55), 1.1),
    "disgusted": (_vec(noseSneer=0.55, mouthUpperUp=0.3, mouthShrugUpper=0.2, mouthFrown=0.15),
                  _vec(browDown=0.35, eyeSquint=0.3), 0.9),
    "fearful": (_vec(mouthStretch=0.4, mouthFrown=0.1), _vec(browInnerUp=0.6, browOuterUp=0.2, eyeWide=0.5), 0.9),
}


def num_frames(duration: float, fps: float) -> int:
    """Frames of a clip lasting ``duration`` seconds at ``fps`` (``round(duration·fps)``, ≥ 1)."""
    return max(1, int(round(duration * fps)))


def loudness(wave: np.ndarray, num: int, fps: float) -> np.ndarray:
    """Speech loudness in [0, 1] per frame from the RMS envelope (25 dB below the clip's peak = 0).

    Args:
        wave: ``[N]`` float32 16 kHz.
        num: frames T.
        fps: frame rate.

    Returns:
        ``[T]`` float32.
    """
    hop = SAMPLE_RATE / fps
    centres = (np.arange(num) * hop).astype(int)
    half = int(hop)
    padded = np.pad(wave.astype(np.float64) ** 2, (half, half))
    c = np.concatenate([[0.0], np.cumsum(padded)])
    rms = np.sqrt((c[centres + 2 * half] - c[centres]) / (2 * half) + 1e-12)
    db = 20 * np.log10(rms)
    ref = np.percentile(db, 95)
    return np.clip((db - (ref - 25.0)) / 25.0, 0.0, 1.0).astype(np.float32)


def _coarticulate(phones: Phones, times: np.ndarray) -> np.ndarray:
    """Cohen–Massaro blend of the phones' viseme targets at ``times`` [T] -> ``[T, 52]``."""
    segs = []
    for phone, start, end in phones:
        names = PHONE_VISEMES[phone]
        step = (end - start) / len(names)
        segs += [(VISEMES[v], start + k * step, start + (k + 1) * step) for k, v in enumerate(names)]
    targets = np.stack([v[0] for v, _, _ in segs])  # [S, 52]
    starts = np.array([s for _, s, _ in segs])[:, None]
    ends = np.array([e for _, _, e in segs])[:, None]
    before = np.clip(starts - times[None], 0, None)  # [S, T] time until the segment starts
    after = np.clip(times[None] - ends, 0, None)
    theta_b = np.array([v[2][0] for v, _, _ in segs])[:, None]
    theta_a = np.array([v[2][1] for v, _, _ in segs])[:, None]
    decay = np.exp(-theta_b * before - theta_a * after)  # [S, T]
    out = np.zeros((len(times), N), np.float32)
    for group, cols in GROUPS.items():
        alpha = np.array([v[1][group] for v, _, _ in segs])[:, None]
        dom = alpha * decay + 1e-9
        out[:, cols] = (dom.T @ targets[:, cols]) / dom.sum(0)[:, None]
    return out


def closure_frames(phones: Phones, fps: float, num: int) -> np.ndarray:
    """Frames where the lips must be closed: every frame inside a /p b m/ segment plus the
    frame nearest each such segment's centre. Returns sorted frame indices ``[K]``."""
    frames: set[int] = set()
    for phone, start, end in phones:
        if phone in BILABIALS:
            frames.update(range(int(np.ceil(start * fps)), int(np.floor(end * fps)) + 1))
            frames.add(int(round(0.5 * (start + end) * fps)))
    return np.array(sorted(f for f in frames if 0 <= f < num), dtype=int)


def _closure_weight(phones: Phones, times: np.ndarray) -> np.ndarray:
    """``[T]`` weight in [0, 1]: 1 inside /p b m/ segments, ``exp(-40 d)`` at distance d (s)."""
    c = np.zeros(len(times))
    for phone, start, end in phones:
        if phone in BILABIALS:
            d = np.clip(start - times, 0, None) + np.clip(times - end, 0, None)
            c = np.maximum(c, np.exp(-CLOSURE_EASE * d))
    return c



def lower_face(phones: Phones, wave: np.ndarray, fps: float, style: Style = Style(),
               emotion: str = "neutral", intensity: float = 0.0) -> np.ndarray:
    """Lip, jaw and lower-face channels (deterministic; no random stream).

    Args:
        phones: contiguous ARPAbet segments ``(phone, start s, end s)``.
        wave: ``[N]`` float32 16 kHz speech (for the loudness envelope).
        fps: frame rate.
        style: speaking style (articulation amplitude, mouth width, smile, asymmetry).
        emotion: one of :data:`EMOTIONS`; ``intensity`` in [0, 1].

    Returns:
        ``[T, 52]`` float32 weights in [0, 1] with ``T = num_frames(N / 16000, fps)``;
        upper-face channels are zero except the emotion's cheek/nose shapes.

    Raises:
        KeyError: a phone is not ARPAbet or ``emotion`` is unknown.
    """
    num = num_frames(len(wave) / SAMPLE_RATE, fps)
    times = np.arange(num) / fps
    w = _coarticulate(phones, times)
    low, _, gain = EMOTION_SHAPES[emotion]
    art = style.articulation * (1.0 + (gain - 1.0) * intensity)
    loud = loudness(wave, num, fps)
    w[:, GROUPS["jaw"]] *= (art * (0.55 + 0.6 * loud))[:, None]
    w[:, GROUPS["round"] + GROUPS["spread"]] *= art
    speaking = scipy.ndimage.gaussian_filter1d(loud, 0.15 * fps)
    w[:, _idx("mouthStretch")] += style.width * speaking[:, None]
    onset = smoothstep(times / 0.4)[:, None]
    w += (intensity * low)[None] * onset + _vec(mouthSmile=style.smile)[None]
    _asymmetry(w, style.asymmetry, "mouth")
    w = np.clip(w, 0.0, 1.0)
    # lips meet on every bilabial, eased in and out by a closure weight c = exp(-40 d) of the
    # distance d (s) to the nearest bilabial segment
    close_lips(w, ARKIT_BLENDSHAPES, _closure_weight(phones, times), closure_frames(phones, fps, num))
    return w.astype(np.float32)


def _asymmetry(w: np.ndarray, a: float, prefix: str) -> None:
    """Scale ``prefix*Left`` channels by (1 + a) and ``*Right`` by (1 − a) in place."""
    for name, i in ARKIT_INDEX.items():
        if name.startswith(prefix):
            if name.endswith("Left"):
                w[:, i] *= 1 + a
            elif name.endswith("Right"):
                w[:, i] *= 1 - a


def pitch_accents(wave: np.ndarray, fps: float, num: int) -> np.ndarray:
    """Times (s) of pitch accents: F0 peaks (Praat autocorrelation pitch via ``parselmouth``)
    at least 1 semitone prominent, 0.3 s apart, on loud frames. Returns ``[K]`` seconds."""
    parselmouth = require("parselmouth", "facemotion synth")

    pitch = parselmouth.Sound(wave.astype(np.float64), SAMPLE_RATE).to_pitch(0.01, 60.0, 500.0)
    f0 = pitch.selected_array["frequency"]
    voiced = f0 > 0
    if voiced.sum() < 5:
        return np.zeros(0)
    st = np.full(len(f0), np.nan)
    st[voiced] = 12 * np.log2(f0[voiced] / np.median(f0[voiced]))
    st_frames = np.interp(np.arange(num) / fps, pitch.xs(), np.nan_to_num(st, nan=-12.0))
    loud = loudness(wave, num, fps)
    peaks, _ = scipy.signal.find_peaks(st_frames, prominence=1.0, distance=max(1, int(0.3 * fps)))
    peaks = peaks[loud[peaks] > 0.5]
    return peaks / fps


def pauses(phones: Phones, min_len: float = 0.15) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of silences at least ``min_len`` long."""
    return [(s, e) for p, s, e in phones if p == "SIL" and e - s >= min_len]


def _ou(rng: np.random.Generator, num: int, dt: float, tau: float, sigma: float) -> np.ndarray:
    """Ornstein–Uhlenbeck path ``[T]`` (stationary std ``sigma``, time constant ``tau`` s)."""
    a = np.exp(-dt / tau)
    noise = rng.standard_normal(num) * sigma * np.sqrt(1 - a * a)
    x = np.empty(num)
    x[0] = rng.standard_normal() * sigma
    for i in range(1, num):
        x[i] = a * x[i - 1] + noise[i]
    return x


def upper_face_and_head(phones: Phones, wave: np.ndarray, fps: float, rng: np.random.Generator,
                        style: Style = Style(), emotion: str = "neutral",
                        intensity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Brows, eyes (blinks, gaze) and head rotation, all drawn from ``rng``.

    Args:
        phones, wave, fps, style, emotion, intensity: as in :func:`lower_face`.
        rng: the clip's random stream.

    Returns:
        ``(upper [T, 52] float32 weights (eye/brow channels), head [T, 3] float32 radians
        (pitch, yaw, roll; pitch > 0 = chin down))``.
    """
    duration = len(wave) / SAMPLE_RATE
    num = num_frames(duration, fps)
    times = np.arange(num) / fps
    dt = 1.0 / fps
    w = np.zeros((num, N), np.float32)
    # emotion, slowly breathing around its level, plus brow noise
    _, up, _ = EMOTION_SHAPES[emotion]
    level = intensity * np.clip(1 + _ou(rng, num, dt, 1.5, 0.15), 0.5, 1.5) * smoothstep(times / 0.4)
    w += up[None] * level[:, None]
    w[:, _idx("browInnerUp")] += np.clip(_ou(rng, num, dt, 0.8, 0.04 * style.brow), 0, None)[:, None]
    # pitch accents: brow raises and nods
    loud = loudness(wave, num, fps)
    speaking = scipy.ndimage.gaussian_filter1d(loud, 0.2 * fps)
    pitch = np.zeros(num)
    for t in pitch_accents(wave, fps, num):
        if rng.random() < min(0.9, 0.5 * style.brow):
            amp = min(0.6, rng.uniform(0.15, 0.45) * style.brow)
            b = amp * bump(times, t, 0.15, 0.35)
            w[:, _idx("browOuterUp")] += b[:, None]
            w[:, ARKIT_INDEX["browInnerUp"]] += 0.7 * b
        if rng.random() < 0.6:
            pitch += rng.uniform(0.01, 0.035) * style.head * np.exp(-0.5 * ((times - t - 0.05) / 0.12) ** 2)
    _asymmetry(w, style.asymmetry, "brow")
    # blinks
    blink = blink_track(times, blink_times(pauses(phones), duration, rng, 16.0 * style.blink), fps, rng)
    w[:, _idx("eyeBlink")] = np.maximum(w[:, _idx("eyeBlink")], blink[:, None])
    w[:, _idx("eyeWide")] *= (1 - blink)[:, None]
    # gaze: fixations near the camera or elsewhere, joined by fast saccades
    gaze = np.zeros((num, 2))
    t, k = 0.0, 0
    while k < num:
        stay = 0.25 + rng.exponential(1.0)
        target = rng.normal(0, 0.05, 2) if rng.random() < 0.6 else rng.uniform([-0.45, -0.35], [0.45, 0.25])
        k_end = min(num, int(round((t + stay) * fps)))
        gaze[k:k_end] = target
        t, k = t + stay, max(k_end, k + 1)
    gaze = scipy.signal.lfilter([1 - np.exp(-dt / 0.025)], [1, -np.exp(-dt / 0.025)], gaze, axis=0,
                                zi=np.exp(-dt / 0.025) * gaze[:1])[0]
    gx, gy = gaze[:, 0], gaze[:, 1]  # gx > 0: toward the subject's left
    for name, val in (("eyeLookOutLeft", gx), ("eyeLookInRight", gx), ("eyeLookInLeft", -gx),
                      ("eyeLookOutRight", -gx), ("eyeLookUpLeft", gy), ("eyeLookUpRight", gy),
                      ("eyeLookDownLeft", -gy), ("eyeLookDownRight", -gy)):
        w[:, ARKIT_INDEX[name]] += np.clip(val, 0, None)
    # head: resting posture + OU drift scaled up while speaking + nods
    motion = 0.5 + 0.8 * speaking
    head = np.stack([rng.normal(0, 0.03) + _ou(rng, num, dt, rng.uniform(0.8, 2.0), s * style.head) * motion
                     for s in (0.035, 0.06, 0.025)], axis=1)
    head[:, 0] += pitch
    head = scipy.ndimage.gaussian_filter1d(head, 1.5 * fps / 25.0, axis=0)
    return np.clip(w, 0.0, 1.0), head.astype(np.float32)


def animate(phones: Phones, wave: np.ndarray, fps: float, rng: np.random.Generator,
            style: Style = Style(), emotion: str = "neutral",
            intensity: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Full face animation of one spoken clip.

    Lower face from :func:`lower_face` (deterministic), upper face and head from
    :func:`upper_face_and_head` (random stream ``rng``); channels are added and clipped.

    Args:
        phones: contiguous ARPAbet segments ``(phone, start s, end s)`` covering the audio.
        wave: ``[N]`` float32 16 kHz speech.
        fps: frame rate (frames/s).
        rng: random generator of the clip.
        style: speaking style of the speaker.
        emotion: one of :data:`EMOTIONS`; intensity in [0, 1].

    Returns:
        ``(blendshapes [T, 52] float32 in [0, 1], head_rotation [T, 3] float32 radians)``,
        ``T = num_frames(N / 16000, fps)``.

    Raises:
        KeyError: unknown phone or emotion.
    """
    low = lower_face(phones, wave, fps, style, emotion, intensity)
    up, head = upper_face_and_head(phones, wave, fps, rng, style, emotion, intensity)
    return np.clip(low + up, 0.0, 1.0).astype(np.float32), head
