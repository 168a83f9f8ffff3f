"""Lip-sync check on real speech: do the lips close on /p b m/ and open on open vowels?

The phone timing comes from forced alignment of each recording's transcript
(:func:`facemotion.audio.phones.force_align`); it is used only for measuring — the model under
test gets the audio alone. Lip aperture is the distance between the built-in rig's
``upper_lip_mid`` and ``lower_lip_mid`` landmarks, in metres.

Figures, pooled over all segments of all recordings:

* **closure rate**: fraction of bilabial (/p b m/) segments whose minimum aperture falls below
  :data:`CLOSED_BELOW` (2 mm) within the frames overlapping the segment widened by
  :data:`TOLERANCE_FRAMES` (1 frame, 40 ms at 25 fps) on each side, since a closure may lead or
  lag the acoustic segment slightly. Target >= 0.92.
* **open/bilabial ratio**: mean aperture over open-vowel segments divided by mean aperture over
  bilabial segments (each segment's mean over the frames overlapping it, no widening; segments
  weigh equally). Target >= 3.
* **shut open-vowel rate**: fraction of open-vowel segments whose maximum aperture (frames
  overlapping the segment) stays below 2 mm. Target <= 0.05.
* **false closure rate** (target <= 0.25; it shows whether closures are placed or merely frequent):
  a closure is a run of consecutive frames below 2 mm; among closures that overlap speech
  (any non-silence segment), the fraction that overlaps no bilabial segment, the run being
  widened by :data:`TOLERANCE_FRAMES` on each side. Lips shut during pauses do not count.
* **mouth–sound lag** (target within ±40 ms): the shift of the aperture against the phones that
  best matches them: the cross-correlation, summed over recordings, of the standardised
  aperture with an articulation target (+1 on open vowels, -1 on /p b m/, 0 elsewhere),
  shifted by up to :data:`MAX_LAG_S`; its peak is refined to a fraction of a frame by a
  parabola through the best shift and its neighbours. Positive: the mouth moves after the sound.

Open vowels are the ``"open"`` viseme class of :mod:`facemotion.audio.phones`: AA AE AH AW AY
EH (open and open-mid unrounded vowels and the diphthongs starting open). Rounded (AO, OW, UW,
...) and close vowels (IY, IH, EY, ...) are left out: a speaker may say them with nearly closed
lips. AH includes unstressed schwa, since pocketsphinx drops stress marks.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from facemotion.audio.phones import VISEME_CLASSES, PhoneSegment
from facemotion.errors import AudioError

BILABIALS = frozenset(VISEME_CLASSES["bilabial"])
"""/p b m/."""
OPEN_VOWELS = frozenset(VISEME_CLASSES["open"])
"""AA AE AH AW AY EH."""
CLOSED_BELOW = 0.002
"""Aperture (metres) under which the lips count as closed."""
TOLERANCE_FRAMES = 1
"""Frames by which a bilabial segment is widened on each side when looking for a closure."""
MAX_LAG_S = 0.2
"""Largest shift (seconds, either way) the mouth–sound lag is searched over."""

THRESHOLDS = {"closure_rate": 0.92, "open_bilabial_ratio": 3.0, "shut_open_vowel_rate": 0.05,
              "false_closure_rate": 0.25, "lag": 0.04}
"""Acceptance thresholds (issue 11): closure rate >=, ratio >=, shut open-vowel rate <=, false
closure rate <=, absolute mouth–sound lag <= (seconds)."""

ARCTIC_TRANSCRIPT = "He turned sharply, and faced Gregson across the table."
"""Transcript of the CMU ARCTIC recording ``examples/cmu_arctic_slt_a0009.wav``."""


@dataclass(frozen=True)
class SpeechItem:
    """A real recording and its transcript (``transcript`` may hold markup such as ``[laughter]``;
    :func:`facemotion.audio.phones.force_align` strips it)."""

    audio: Path
    transcript: str


def load_realval(data_dir: str | os.PathLike) -> list[SpeechItem]:
    """Items of a real-speech directory holding ``transcripts.json`` (file name -> transcript).

    Words missing from pocketsphinx's dictionary ("aligner", "yknow", "poofy", "pooty", "puddy")
    are pronounced through :data:`facemotion.audio.phones.EXTRA_PRONUNCIATIONS`.

    Raises:
        DataError: the directory or its ``transcripts.json`` is missing or malformed, or a
            listed recording is missing.
    """
    from facemotion.errors import DataError

    data_dir = Path(data_dir)
    index = data_dir / "transcripts.json"
    try:
        transcripts = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{index}: cannot read the transcripts ({exc})") from exc
    if not isinstance(transcripts, dict):
        raise DataError(f"{index}: expected an object mapping file names to transcripts")
    items = [SpeechItem(data_dir / name, str(text)) for name, text in sorted(transcripts.items())]
    missing = [str(i.audio) for i in items if not i.audio.is_file()]
    if missing:
        raise DataError(f"{index}: recordings not found: {missing[:3]}")
    return items


def segment_frames(start: float, end: float, fps: float, num_frames: int,
                   tolerance: int = 0) -> slice:
    """Frames whose interval ``[i/fps, (i+1)/fps)`` overlaps ``[start, end)`` seconds, widened
    by ``tolerance`` frames on each side and clipped to ``[0, num_frames)``."""
    lo = math.floor(start * fps + 1e-6) - tolerance
    hi = math.ceil(end * fps - 1e-6) + tolerance
    return slice(max(lo, 0), min(max(hi, lo + 1), num_frames))


@dataclass
class ItemLipSync:
    """Per-segment apertures (metres) of one recording, as measured by :func:`measure_lipsync`."""

    name: str
    bilabial_segments: list[PhoneSegment] = field(default_factory=list)
    """The measured /p b m/ segments, in the order of ``bilabial_min`` and ``bilabial_mean``."""
    bilabial_min: list[float] = field(default_factory=list)
    bilabial_mean: list[float] = field(default_factory=list)
    open_mean: list[float] = field(default_factory=list)
    open_max: list[float] = field(default_factory=list)
    speech_closures: int = 0
    """Closures (runs of frames below 2 mm) that overlap speech."""
    false_closures: int = 0
    """Of those, closures that overlap no bilabial segment (within the tolerance)."""
    lag_correlation: list[float] = field(default_factory=list)
    """Cross-correlation of aperture and articulation target at shifts ``-K..K`` frames (see
    :func:`lag_correlation`)."""

    @property
    def closures(self) -> int:
        """Bilabial segments with a closure."""
        return int(np.sum(np.asarray(self.bilabial_min) < CLOSED_BELOW))


def measure_lipsync(aperture, fps: float, segments: Iterable[PhoneSegment],
                    name: str = "") -> ItemLipSync:
    """Measure the lip aperture within every bilabial and open-vowel segment of one recording.

    Args:
        aperture: ``[T]`` lip aperture per frame, metres.
        fps: frame rate of ``aperture``.
        segments: phone segments (seconds) from forced alignment.
        name: label of the recording.
    Returns:
        the per-segment figures and the closure counts; segments lying beyond the last frame
        are skipped.
    """
    aperture = np.asarray(aperture, dtype=np.float64)
    segments = list(segments)
    out = ItemLipSync(name, lag_correlation=lag_correlation(aperture, fps, segments).tolist())
    speech = np.zeros(len(aperture), bool)
    bilabial = np.zeros(len(aperture), bool)
    for seg in segments:
        if seg.phone != "SIL":
            speech[segment_frames(seg.start, seg.end, fps, len(aperture))] = True
        if seg.phone in BILABIALS:
            bilabial[segment_frames(seg.start, seg.end, fps, len(aperture), TOLERANCE_FRAMES)] = True
    closed = np.r_[False, aperture < CLOSED_BELOW, False]
    edges = np.flatnonzero(np.diff(closed.astype(np.int8)))
    for lo, hi in zip(edges[::2], edges[1::2]):  # closure runs [lo, hi)
        if speech[lo:hi].any():
            out.speech_closures += 1
            out.false_closures += int(not bilabial[lo:hi].any())
    for seg in segments:
        if seg.phone not in BILABIALS and seg.phone not in OPEN_VOWELS:
            continue
        inside = aperture[segment_frames(seg.start, seg.end, fps, len(aperture))]
        if inside.size == 0:
            continue
        if seg.phone in BILABIALS:
            wide = aperture[segment_frames(seg.start, seg.end, fps, len(aperture), TOLERANCE_FRAMES)]
            out.bilabial_segments.append(seg)
            out.bilabial_min.append(float(wide.min()))
            out.bilabial_mean.append(float(inside.mean()))
        else:
            out.open_mean.append(float(inside.mean()))
            out.open_max.append(float(inside.max()))
    return out


def lag_correlation(aperture: np.ndarray, fps: float, segments: Sequence[PhoneSegment],
                    max_lag_s: float = MAX_LAG_S) -> np.ndarray:
    """``[2K + 1]`` cross-correlation ``c[K + k] = Σ_t z(t + k) · g(t)`` of the standardised
    aperture z (``[T]`` metres, zero mean, unit std) with the articulation target g (+1 on frames
    of open vowels, -1 on /p b m/, 0 elsewhere), for shifts ``k = -K..K`` frames,
    ``K = round(max_lag_s · fps)``; frames shifted past either end count 0. A peak at ``k > 0``:
    the mouth moves ``k`` frames after the sound."""
    num, k_max = len(aperture), int(round(max_lag_s * fps))
    target = np.zeros(num)
    for seg in segments:
        value = 1.0 if seg.phone in OPEN_VOWELS else -1.0 if seg.phone in BILABIALS else 0.0
        if value:
            target[segment_frames(seg.start, seg.end, fps, num)] = value
    std = aperture.std()
    z = (aperture - aperture.mean()) / std if std > 0 else np.zeros(num)
    out = np.zeros(2 * k_max + 1)
    for i, k in enumerate(range(-k_max, k_max + 1)):
        lo, hi = max(0, -k), min(num, num - k)
        out[i] = float(np.dot(z[lo + k:hi + k], target[lo:hi])) if hi > lo else 0.0
    return out


def peak_lag(correlation: np.ndarray, fps: float) -> float:
    """Shift in seconds of the peak of a ``[2K + 1]`` correlation over shifts ``-K..K`` frames,
    refined by a parabola through the peak and its neighbours (NaN for an empty or flat one)."""
    c = np.asarray(correlation, np.float64)
    if c.size == 0 or not np.ptp(c) > 0:
        return float("nan")
    i = int(np.argmax(c))
    offset = 0.0
    if 0 < i < len(c) - 1:
        denom = c[i - 1] - 2 * c[i] + c[i + 1]
        offset = 0.5 * (c[i - 1] - c[i + 1]) / denom if denom < 0 else 0.0
    return (i - (len(c) - 1) // 2 + offset) / fps


@dataclass
class LipSyncReport:
    """Lip-sync figures pooled over recordings (see the module docstring for definitions)."""

    items: list[ItemLipSync]
    skipped: list[str] = field(default_factory=list)
    """Recordings left out because their transcript could not be aligned (with the reason)."""
    fps: float = 25.0
    """Frame rate of the measured apertures (for the lag)."""

    def _pool(self, attr: str) -> np.ndarray:
        return np.asarray([v for item in self.items for v in getattr(item, attr)], dtype=np.float64)

    @property
    def num_bilabial(self) -> int:
        """Bilabial segments measured."""
        return len(self._pool("bilabial_min"))

    @property
    def num_open(self) -> int:
        """Open-vowel segments measured."""
        return len(self._pool("open_mean"))

    @property
    def closure_rate(self) -> float:
        """Fraction of bilabial segments with a closure (NaN without bilabials)."""
        mins = self._pool("bilabial_min")
        return float(np.mean(mins < CLOSED_BELOW)) if mins.size else float("nan")

    @property
    def mean_bilabial_aperture(self) -> float:
        """Mean aperture over bilabial segments, metres."""
        v = self._pool("bilabial_mean")
        return float(v.mean()) if v.size else float("nan")

    @property
    def mean_open_aperture(self) -> float:
        """Mean aperture over open-vowel segments, metres."""
        v = self._pool("open_mean")
        return float(v.mean()) if v.size else float("nan")

    @property
    def open_bilabial_ratio(self) -> float:
        """``mean_open_aperture / mean_bilabial_aperture`` (inf if bilabials are fully shut)."""
        b = self.mean_bilabial_aperture
        return self.mean_open_aperture / b if b > 0 else float("inf")

    @property
    def shut_open_vowel_rate(self) -> float:
        """Fraction of open-vowel segments whose maximum aperture stays below 2 mm."""
        v = self._pool("open_max")
        return float(np.mean(v < CLOSED_BELOW)) if v.size else float("nan")

    @property
    def false_closure_rate(self) -> float:
        """Fraction of closures during speech that lie at no bilabial (NaN without closures)."""
        total = sum(item.speech_closures for item in self.items)
        return sum(item.false_closures for item in self.items) / total if total else float("nan")

    @property
    def lag(self) -> float:
        """Mouth–sound lag in seconds (positive: the mouth is late) from the correlations summed
        over recordings (:func:`lag_correlation`, :func:`peak_lag`); NaN without any. The
        recordings must share one frame rate, ``fps``."""
        curves = [np.asarray(item.lag_correlation) for item in self.items if item.lag_correlation]
        if not curves or len({len(c) for c in curves}) != 1:
            return float("nan")
        return peak_lag(np.sum(curves, axis=0), self.fps)

    def figures(self) -> dict[str, float]:
        """All pooled figures (apertures in metres, lag in seconds)."""
        return {"false_closure_rate": self.false_closure_rate, "lag": self.lag,
                "num_speech_closures": sum(item.speech_closures for item in self.items), "closure_rate": self.closure_rate, "open_bilabial_ratio": self.open_bilabial_ratio,
                "shut_open_vowel_rate": self.shut_open_vowel_rate,
                "mean_open_aperture": self.mean_open_aperture,
                "mean_bilabial_aperture": self.mean_bilabial_aperture,
                "num_bilabial": self.num_bilabial, "num_open": self.num_open,
                "num_items": len(self.items), "num_skipped": len(self.skipped)}

    def passes(self, thresholds: dict[str, float] = THRESHOLDS) -> bool:
        """Whether the figures meet ``thresholds`` (closure and ratio >=, shut and false closure
        rates <=, |lag| <=)."""
        return (self.closure_rate >= thresholds["closure_rate"]
                and self.open_bilabial_ratio >= thresholds["open_bilabial_ratio"]
                and self.shut_open_vowel_rate <= thresholds["shut_open_vowel_rate"]
                and not self.false_closure_rate > thresholds["false_closure_rate"]
                and not abs(self.lag) > thresholds["lag"])

    def summary(self) -> str:
        """Multi-line human-readable summary."""
        f = self.figures()
        return (f"{f['num_items']} recordings ({f['num_skipped']} skipped: not alignable), "
                f"{f['num_bilabial']} /p b m/ and {f['num_open']} open-vowel segments\n"
                f"  closure rate           {f['closure_rate']:.3f}  (target >= {THRESHOLDS['closure_rate']:g}; min aperture "
                f"< {CLOSED_BELOW * 1000:g} mm within +-{TOLERANCE_FRAMES} frame)\n"
                f"  open/bilabial ratio    {f['open_bilabial_ratio']:.2f}   (target >= {THRESHOLDS['open_bilabial_ratio']:g}; "
                f"{f['mean_open_aperture'] * 1000:.2f} mm / {f['mean_bilabial_aperture'] * 1000:.2f} mm)\n"
                f"  shut open-vowel rate   {f['shut_open_vowel_rate']:.3f}  (target <= {THRESHOLDS['shut_open_vowel_rate']:g})\n"
                f"  false closure rate     {f['false_closure_rate']:.3f}  (target <= {THRESHOLDS['false_closure_rate']:g}; of "
                f"{f['num_speech_closures']} closures during speech, those at no /p b m/)\n"
                f"  mouth-sound lag        {f['lag'] * 1000:+.0f} ms (target within +-{THRESHOLDS['lag'] * 1000:g} ms; positive: "
                f"the mouth is late)")


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/facemotion/phone_segments.json`` (``~/.cache`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "facemotion" / "phone_segments.json"


class SegmentCache:
    """Phone segments of recordings, cached in a JSON file (they do not depend on the model).

    Entries are keyed by the SHA-256 of the audio file's bytes, the decoding kind (for ``asr``
    with the SHA-256 of the bilabial detector's file, its threshold and minimum duration, and
    the Whisper model's directory if ``asr_model_dir``) and the transcript, so a changed
    recording, transcript or detector is decoded afresh.
    """

    def __init__(self, path: str | os.PathLike | None = None, asr_model_dir: str | os.PathLike | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.asr_model_dir = None if asr_model_dir is None else Path(asr_model_dir).expanduser().resolve()
        try:
            self._data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self._data = {}
        self._dirty = False

    def segments(self, audio: Path, transcript: str | None, search: str = "phone_loop") -> list[PhoneSegment]:
        """Forced-alignment segments of ``audio``; without a ``transcript``, the segments of
        ``search``: ``"phone_loop"`` (:func:`~facemotion.audio.phones.phone_loop`), ``"words"``
        (:func:`~facemotion.audio.phones.recognize`) or ``"asr"``
        (:func:`~facemotion.audio.phones.asr_phones`, with the cache's ``asr_model_dir``, by
        default the bundled Whisper model).

        Raises:
            AudioError: unreadable audio or failed alignment.
            ValueError: unknown ``search``.
            DataError: ``"asr"`` and the bundled Whisper model is missing or altered.
        """
        from facemotion.audio.io import load_audio
        from facemotion.audio.phones import decode_phones, force_align

        digest = hashlib.sha256(Path(audio).read_bytes()).hexdigest()
        kind = "align" if transcript is not None else search
        if kind == "asr":  # with the /p b m/ of the bilabial detector (this one: its file and settings)
            from facemotion.audio import bilabial

            kind = (f"asr+bilabial-{bilabial.detector_digest()[:16]}-{bilabial.THRESHOLD:g}-{bilabial.MIN_DURATION_S:g}"
                    + (f":{self.asr_model_dir}" if self.asr_model_dir else ""))
        key = f"{digest}|{kind}|{transcript or ''}"
        if key not in self._data:  # failures are not cached: a better aligner may succeed
            wave = load_audio(audio)
            segs = decode_phones(wave, search, asr_model_dir=self.asr_model_dir) if transcript is None \
                else force_align(wave, transcript, name=str(audio))
            self._data[key] = [[s.phone, s.start, s.end] for s in segs]
            self._dirty = True
        return [PhoneSegment(p, s, e) for p, s, e in self._data[key]]

    def save(self) -> None:
        """Write the cache atomically if anything was added."""
        from facemotion.atomic import atomic_path

        if not self._dirty:
            return
        with atomic_path(self.path) as tmp:
            tmp.write_text(json.dumps(self._data))
        self._dirty = False


def bilabial_detection(found: Sequence[PhoneSegment], reference: Sequence[PhoneSegment],
                       tolerance: float = 0.04) -> tuple[int, int, int, int]:
    """How well transcript-free decoding places /p b m/, against forced alignment.

    A reference bilabial segment is *found* when a decoded bilabial segment overlaps it
    widened by ``tolerance`` seconds on each side; a decoded bilabial is *false* when it
    overlaps no widened reference bilabial.

    A diagnostic of this project (not from the papers) for the audio features' phone sources.

    Args:
        found: decoded segments (seconds); reference: forced-alignment segments (seconds).
        tolerance: widening, seconds.
    Returns:
        ``(found references, reference bilabials, false detections, decoded bilabials)``.
    """
    ref = [(s.start - tolerance, s.end + tolerance) for s in reference if s.phone in BILABIALS]
    hyp = [(s.start, s.end) for s in found if s.phone in BILABIALS]

    def overlaps(a, others):
        return any(a[0] < b[1] and b[0] < a[1] for b in others)

    return (sum(overlaps(r, hyp) for r in ref), len(ref), sum(not overlaps(h, ref) for h in hyp), len(hyp))


def evaluate_real_speech(generate_fn: Callable[[Path], np.ndarray], items: Sequence[SpeechItem],
                         fps: float, cache: SegmentCache | None = None) -> LipSyncReport:
    """Lip-sync report of a model on real recordings.

    Args:
        generate_fn: audio path -> lip aperture ``[T]`` in metres per frame at ``fps`` (e.g. a
            model's output through :func:`aperture_from_motion`). It sees only the audio.
        items: recordings with transcripts (:func:`load_realval`).
        fps: frame rate of the apertures.
        cache: alignment cache (default: :func:`default_cache_path`); saved on return.
    Returns:
        the pooled report; recordings whose transcript cannot be aligned are listed in
        ``skipped`` (the model is not run on them).
    """
    cache = cache if cache is not None else SegmentCache()
    results, skipped = [], []
    try:
        for item in items:
            try:
                segments = cache.segments(item.audio, item.transcript)
            except AudioError as exc:
                skipped.append(str(exc))
                continue
            results.append(measure_lipsync(generate_fn(item.audio), fps, segments, item.audio.name))
    finally:
        cache.save()
    return LipSyncReport(results, skipped, fps)


def aperture_from_motion(space, motion) -> np.ndarray:
    """Lip aperture of a face-space motion on the space's own lip landmarks and mean face (any
    space: the built-in rig's for blendshapes, a vertex space's ``lip_landmarks`` on its
    template; head pose does not change it).

    The mean face, not a generated identity: :data:`CLOSED_BELOW` is absolute, and faces differ
    in their rest aperture (0.07 to 4.3 mm over the synthetic corpus's speakers), so the motion
    is scored on the face the default model is scored on.

    Args:
        space: a :class:`facemotion.face.space.FaceSpace`.
        motion: ``[T, D]`` motion of that space (brought into its range by ``space.constrain``).
    Returns:
        ``[T]`` distance between the upper and lower lip midpoints, metres (float64).
    """
    import torch

    from facemotion.face.lips import lip_aperture

    x = torch.as_tensor(space.constrain(np.asarray(motion, np.float32)))
    landmarks = torch.as_tensor(space.lip_landmarks)
    with torch.no_grad():
        v = space.expression_vertices(x.to(space.neck_pivot.device), indices=landmarks)
    return lip_aperture(v.double().cpu().numpy(), 0, 1)


def aperture_from_blendshapes(blendshapes, rig=None) -> np.ndarray:
    """Lip aperture of the built-in rig driven by ARKit weights (head pose does not change it).

    Args:
        blendshapes: ``[T, 52]`` ARKit weights.
        rig: a :class:`facemotion.face.rig.HeadRig` (default: the built-in head).
    Returns:
        ``[T]`` distance between the ``upper_lip_mid`` and ``lower_lip_mid`` landmarks, metres.
    """
    from facemotion.face.lips import lip_aperture
    from facemotion.face.rig import load_head_rig

    rig = rig or load_head_rig()
    idx = [rig.landmarks["upper_lip_mid"], rig.landmarks["lower_lip_mid"]]
    w = np.asarray(blendshapes, dtype=np.float64)
    pts = rig.neutral[idx][None] + np.einsum("tk,kpc->tpc", w, rig.deltas[:, idx])  # [T, 2, 3] the two landmarks
    return lip_aperture(pts, 0, 1)


VISEME_RULES: dict[str, dict[str, float]] = {
    "silence": {},
    "bilabial": {"mouthClose": 0.1, "mouthPressLeft": 0.3, "mouthPressRight": 0.3},
    "labiodental": {"jawOpen": 0.08, "mouthRollLower": 0.5},
    "dental": {"jawOpen": 0.15},
    "rounded": {"jawOpen": 0.2, "mouthFunnel": 0.4, "mouthPucker": 0.3},
    "open": {"jawOpen": 0.45},
    "spread": {"jawOpen": 0.15, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3},
    "postalveolar": {"jawOpen": 0.12, "mouthFunnel": 0.4},
    "alveolar": {"jawOpen": 0.15},
    "velar": {"jawOpen": 0.2},
}
"""Baseline viseme rules: viseme class -> ARKit weights (others 0)."""


def viseme_baseline(fps: float, cache: SegmentCache | None = None, rig=None, search: str = "phone_loop",
                    ) -> Callable[[Path], np.ndarray]:
    """A model-free reference: pocketsphinx decoding (no transcript) + :data:`VISEME_RULES`.

    Each frame takes the weights of the viseme of the phone at its centre time, smoothed by a
    3-frame moving average (a crude co-articulation). Use it as ``generate_fn`` of
    :func:`evaluate_real_speech` to see what a model must beat.

    Args:
        fps: frame rate of the apertures produced.
        cache: segment cache shared with the evaluation (decoding results are cached too).
        rig: head rig (default: the built-in head).
        search: ``"phone_loop"``, ``"words"`` or ``"asr"`` (see :meth:`SegmentCache.segments`).
    Returns:
        audio path -> lip aperture ``[T]`` metres.
    """
    from facemotion.audio.io import audio_duration
    from facemotion.audio.phones import phone_to_viseme
    from facemotion.face.arkit import ARKIT_BLENDSHAPES, ARKIT_INDEX

    cache = cache if cache is not None else SegmentCache()
    table = np.zeros((len(VISEME_RULES), len(ARKIT_BLENDSHAPES)))
    viseme_row = {}
    for row, (viseme, weights) in enumerate(VISEME_RULES.items()):
        viseme_row[viseme] = row
        for name, w in weights.items():
            table[row, ARKIT_INDEX[name]] = w

    def generate(audio: Path) -> np.ndarray:
        segs = cache.segments(audio, None, search)
        num_frames = max(1, round(audio_duration(audio) * fps))
        centres = (np.arange(num_frames) + 0.5) / fps
        ends = np.array([s.end for s in segs])
        which = np.minimum(np.searchsorted(ends, centres, side="right"), len(segs) - 1)
        rows = np.array([viseme_row[phone_to_viseme(segs[i].phone)] for i in which])
        weights = table[rows]
        kernel = np.ones(3) / 3
        padded = np.pad(weights, ((1, 1), (0, 0)), mode="edge")
        smooth = np.stack([np.convolve(padded[:, k], kernel, mode="valid")
                           for k in range(weights.shape[1])], axis=1)
        return aperture_from_blendshapes(smooth, rig)

    return generate
