"""The corpus generator behind ``facemotion synth``: clips → shards → a native dataset.

Clip ``(shard, index)`` is a pure function of ``(seed, shard, index, fps, spontaneous)``: its
own random streams pick the pseudo-speaker, text, emotion, augmentation (stream ``[seed, shard,
index]`` and ``[..., 2]``), the upper-face/head motion (``[..., 1]``) and whether and how it is
spoken spontaneously (``[..., 3]``: fillers, hesitations, breaths, voice quality; see
:mod:`facemotion.synth.spontaneous`), so a corpus made with ``spontaneous`` 0 holds exactly the
clips it held before spontaneous speech existed. Consecutive runs of
clips (whole shards of ``shard_size`` clips, shorter ones near the end) are made in parallel
worker processes (which die with the run) and committed to ``manifest.jsonl`` strictly in
(shard, index) order, each in one append after all its files are on disk, clip by clip until
the committed audio reaches the requested hours (so it exceeds them by less than one clip);
clips made beyond that are deleted. A restart therefore finds a prefix of clips in the
manifest, deletes files no manifest line points at (an interrupted run), and goes on with the
next clip: no duplicates, and the same clip ids as an uninterrupted run. One run at a time
writes into a corpus (:func:`facemotion.export.outputs.output_folder`).

Layout: ``<out>/synth.json`` (settings), ``<out>/speakers.json`` (the pseudo-speaker
pool), ``<out>/manifest.jsonl``, ``<out>/clips/<shard>/<id>.flac`` (16 kHz mono 16-bit)
and ``<id>.npz`` (``blendshapes [T, 52]``, ``blendshape_names``, ``head_rotation [T, 3]``,
``fps``, ``phones`` = JSON ``[[phone, start s, end s], ...]`` of the stored audio).
"""

from __future__ import annotations

import collections
import json
import math
import os
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

import numpy as np
import soundfile as sf

from facemotion.audio.io import SAMPLE_RATE
from facemotion.data.native import MANIFEST, append_manifest, read_manifest
from facemotion.errors import DataError, FacemotionError
from facemotion.export.atomic import atomic_path
from facemotion.export.outputs import output_folder
from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.processes import process_pool
from facemotion.synth.animate import EMOTIONS, animate
from facemotion.synth.speaker import PseudoSpeaker, augment, change_voice, speaker_pool
from facemotion.synth.spontaneous import VOICE_QUALITIES, VOICE_QUALITY_FRACTION, apply_voice_quality, \
    speak_spontaneous
from facemotion.synth.text import WORDS_PER_SECOND, sample_sentence
from facemotion.synth.tts import synthesize

MIN_SECONDS, MAX_SECONDS = 3.0, 12.0
"""Clip length range (s) aimed at; clips outside [2.5, 13] s after two retries are skipped."""

MEAN_CLIP_SECONDS = (MIN_SECONDS + MAX_SECONDS) / 2
"""Expected clip length (s), to size the last jobs of a run to the hours still missing."""

AUGMENT_FRACTION = 0.5
"""Fraction of clips whose stored audio is degraded by :func:`~facemotion.synth.speaker.augment`."""

SPONTANEOUS_FRACTION = 0.3
"""Default fraction of clips spoken spontaneously (``facemotion synth --spontaneous``)."""

_EMOTION_P = np.array([0.28] + [0.12] * 6)
_EMOTION_WORDS = {
    "neutral": ("calm", "speaking evenly with a relaxed face"),
    "happy": ("cheerful", "smiling broadly"),
    "sad": ("sad", "with drooping brows and a downturned mouth"),
    "angry": ("angry", "frowning, lips pressed tight"),
    "surprised": ("surprised", "with raised brows and wide eyes"),
    "disgusted": ("disgusted", "wrinkling the nose"),
    "fearful": ("frightened", "with wide eyes and a stretched mouth"),
}


def clip_id(seed: int, shard: int, index: int) -> str:
    """Deterministic clip id, e.g. ``"synth0-00012-007"``."""
    return f"synth{seed}-{shard:05d}-{index:03d}"


def emotion_prompt(emotion: str, intensity: float, sex: str, rng: np.random.Generator) -> str:
    """Short free-text description, e.g. ``"a very cheerful woman, smiling broadly"``."""
    adj, action = _EMOTION_WORDS[emotion]
    adverb = "" if emotion == "neutral" else ("slightly " if intensity < 0.35 else "" if intensity < 0.7 else "very ")
    noun = str(rng.choice(["speaker", "person", "woman" if sex == "F" else "man"]))
    if rng.random() < 0.5:
        return f"a {adverb}{adj} {noun}, {action}"
    return f"a {noun} who sounds {adverb}{adj}, {action}"


def _speak(rng: np.random.Generator, speaker: PseudoSpeaker, rate: float,
           spontaneous: np.random.Generator | None = None):
    """Text, TTS output and spontaneous-speech summary (or ``None``) of about 3–12 s (after the
    speed change), or ``None``; spoken spontaneously when a ``spontaneous`` generator is given."""
    target = rng.uniform(MIN_SECONDS, MAX_SECONDS)
    words = target * WORDS_PER_SECOND * rate * speaker.speed
    for _ in range(3):
        text = sample_sentence(rng, max(4, round(words)))
        if spontaneous is None:
            wave, phones = synthesize(speaker.voice, text, speaker.variant, rate, speaker.tts_pitch)
            summary = None
        else:
            wave, phones, text, summary = speak_spontaneous(speaker.voice, speaker.variant, rate,
                                                            speaker.tts_pitch, text, spontaneous)
        seconds = len(wave) / SAMPLE_RATE / speaker.speed
        if 2.5 <= seconds <= 13.0:
            return text, wave, phones, summary
        words *= target / seconds
    return None


def make_clip(out: Path, seed: int, fps: float, shard: int, index: int,
              spontaneous: float = 0.0) -> dict | str:
    """Generate one clip's audio and motion files; return its manifest record.

    Args:
        spontaneous: probability that the clip is spoken spontaneously (fillers, hesitations,
            breaths; then, with probability :data:`VOICE_QUALITY_FRACTION`, whispered, creaky
            or falsetto). The motion follows the modal rendition's phones either way.

    Returns:
        The record (``id, speaker, split, fps, audio, motion, duration, text, emotion,
        intensity, prompt, voice, engine, sex, augment, spontaneous, shard, index``;
        ``spontaneous`` is ``null`` or ``{"fillers": [...], "breaths": n, "hesitations": n,
        "voice_quality": name or null}``), or a string giving why the clip was skipped (TTS
        failure, unusable length).
    """
    rng = np.random.default_rng([seed, shard, index])
    pool = speaker_pool(seed)
    speaker = pool[rng.integers(len(pool))]
    emotion = str(rng.choice(EMOTIONS, p=_EMOTION_P / _EMOTION_P.sum()))
    intensity = 0.0 if emotion == "neutral" else float(rng.uniform(0.2, 1.0))
    rate = speaker.rate * rng.uniform(0.95, 1.05)
    spont_rng = np.random.default_rng([seed, shard, index, 3])
    is_spontaneous = bool(spont_rng.random() < spontaneous)
    try:
        spoken = _speak(rng, speaker, rate, spont_rng if is_spontaneous else None)
    except FacemotionError as e:
        return f"tts: {e}"
    if spoken is None:
        return "length out of range"
    text, wave, phones, spont = spoken
    wave = change_voice(wave, speaker.formant_ratio, speaker.pitch_median * rng.uniform(0.95, 1.05),
                        speaker.pitch_range, speaker.speed)
    duration = len(wave) / SAMPLE_RATE
    phones = [(p, s / speaker.speed, e / speaker.speed) for p, s, e in phones]
    phones[-1] = (phones[-1][0], phones[-1][1], duration)
    blendshapes, head = animate(phones, wave, fps, np.random.default_rng([seed, shard, index, 1]),
                                speaker.style, emotion, intensity)
    if spont is not None:
        spont["voice_quality"] = None
        if spont_rng.random() < VOICE_QUALITY_FRACTION:
            spont["voice_quality"] = str(spont_rng.choice(VOICE_QUALITIES))
            wave = apply_voice_quality(wave, spont["voice_quality"], spont_rng)
    aug_rng = np.random.default_rng([seed, shard, index, 2])
    effects: list[str] = []
    if aug_rng.random() < AUGMENT_FRACTION:
        wave, effects = augment(wave, aug_rng)

    cid = clip_id(seed, shard, index)
    rel = Path("clips") / f"{shard:05d}"
    (out / rel).mkdir(parents=True, exist_ok=True)
    with atomic_path(out / rel / f"{cid}.flac") as tmp:
        sf.write(tmp, wave, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    with atomic_path(out / rel / f"{cid}.npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, blendshapes=blendshapes, blendshape_names=np.array(ARKIT_BLENDSHAPES),
                     head_rotation=head, fps=np.float32(fps),
                     phones=np.array(json.dumps([[p, round(s, 4), round(e, 4)] for p, s, e in phones])))
    return {
        "id": cid, "speaker": speaker.id, "split": speaker.split, "fps": fps,
        "audio": f"{rel.as_posix()}/{cid}.flac", "motion": f"{rel.as_posix()}/{cid}.npz",
        "duration": round(duration, 4), "text": text, "emotion": emotion, "intensity": round(intensity, 3),
        "prompt": emotion_prompt(emotion, intensity, speaker.sex, rng),
        "voice": speaker.voice_name, "engine": speaker.voice.engine, "sex": speaker.sex,
        "augment": effects, "spontaneous": spont, "shard": shard, "index": index,
    }


def make_clips(out: Path, seed: int, fps: float, shard: int, indices: range,
               spontaneous: float = 0.0) -> tuple[list[dict], list[str]]:
    """Generate clips ``indices`` of one shard; return (records in index order, skip reasons).
    Does not touch the manifest."""
    records, skipped = [], []
    for index in indices:
        res = make_clip(out, seed, fps, shard, index, spontaneous)
        (records if isinstance(res, dict) else skipped).append(res)
    return records, skipped


def _prepare(out: Path, seed: int, fps: float, shard_size: int, spontaneous: float) -> list[dict]:
    """Check/write settings, write the speaker pool, delete orphan files; return the manifest."""
    settings = {"seed": seed, "fps": fps, "shard_size": shard_size, "spontaneous": spontaneous}
    cfg = out / "synth.json"
    if cfg.is_file():
        old = {"spontaneous": 0.0} | json.loads(cfg.read_text())  # corpora from before the setting
        if old != settings:
            raise DataError(f"{cfg}: corpus was made with {old}, not {settings}; use another --out")
    else:
        with atomic_path(cfg) as tmp:
            tmp.write_text(json.dumps(settings))
    speakers = out / "speakers.json"
    if not speakers.is_file():
        with atomic_path(speakers) as tmp:
            tmp.write_text(json.dumps([s.to_dict() for s in speaker_pool(seed)], indent=1))
    records = read_manifest(out) if (out / MANIFEST).is_file() else []
    # an interrupted append can leave a partial last line: cut it so the next append is clean
    if (out / MANIFEST).is_file():
        data = (out / MANIFEST).read_bytes()
        if data and not data.endswith(b"\n"):
            with open(out / MANIFEST, "r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)
    referenced = {r[k] for r in records for k in ("audio", "motion")}
    files = (out / "clips").glob("*/*") if (out / "clips").is_dir() else []
    _remove_files(out, [p.relative_to(out).as_posix() for p in files], keep=referenced)
    return records


def _remove_files(out: Path, relative: list[str], keep: set[str] = frozenset()) -> None:
    """Delete the files ``out/relative`` not in ``keep``, and the shard folders left empty."""
    folders = set()
    for rel in relative:
        if rel not in keep:
            (out / rel).unlink(missing_ok=True)
            folders.add((out / rel).parent)
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def summarize(out: str | os.PathLike) -> dict:
    """Figures of a synthetic corpus from its manifest: hours, clips, base voices, voice
    variants, pseudo-speakers, emotions, per-split hours, engines, spontaneous clips (and their
    fillers and voice qualities)."""
    records = read_manifest(out)
    spontaneous = [r["spontaneous"] for r in records if r.get("spontaneous")]
    hours = collections.Counter()
    for r in records:
        hours[r["split"]] += r["duration"] / 3600
    return {
        "hours": sum(r["duration"] for r in records) / 3600,
        "clips": len(records),
        "voices": len({r["voice"].split("+")[0] for r in records}),
        "voice_variants": len({r["voice"] for r in records}),
        "speakers": len({r["speaker"] for r in records}),
        "emotions": dict(collections.Counter(r["emotion"] for r in records)),
        "split_hours": {k: round(v, 3) for k, v in hours.items()},
        "engines": dict(collections.Counter(r["engine"] for r in records)),
        "spontaneous": len(spontaneous),
        "fillers": dict(collections.Counter(f for s in spontaneous for f in s["fillers"])),
        "voice_qualities": dict(collections.Counter(s["voice_quality"] for s in spontaneous if s["voice_quality"])),
    }


def generate_corpus(out: str | os.PathLike, hours: float, workers: int | None = None, seed: int = 0,
                    fps: float = 25.0, shard_size: int = 50, progress: bool = True,
                    spontaneous: float = SPONTANEOUS_FRACTION) -> dict:
    """Generate (or resume) a synthetic talking-face corpus of ``hours`` of speech.

    Args:
        out: dataset directory (created; a native dataset, see :mod:`facemotion.data.native`).
        hours: hours of audio to reach: clips are committed until their total reaches this, so
            the corpus holds ``hours`` plus less than one clip (or more, if it already did).
        workers: parallel processes (default: CPU count; ≤ 1 runs in this process).
        seed: corpus seed (fixes the speakers, texts and motion of every clip).
        fps: motion frame rate, frames/s.
        shard_size: clips per shard folder ``clips/<shard>/``.
        progress: show a tqdm progress bar (seconds of audio) and print the summary.
        spontaneous: fraction of clips spoken spontaneously (:func:`make_clip`), in [0, 1].

    Returns:
        :func:`summarize`'s dict plus ``skipped`` (clips skipped in this run) and
        ``skip_reasons``.

    Raises:
        DataError: ``out`` holds a corpus made with another seed, fps, shard size or
            spontaneous fraction, ``hours`` is not positive or ``spontaneous`` not in [0, 1].
        OutputError: ``out`` cannot be created or written, or another run is writing into it.
    """
    if hours <= 0:
        raise DataError(f"--hours must be positive, got {hours}")
    if not 0.0 <= spontaneous <= 1.0:
        raise DataError(f"--spontaneous must be in [0, 1], got {spontaneous}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    with output_folder(out) as out:
        skipped = _fill(out, hours * 3600.0, workers, seed, fps, shard_size, progress, float(spontaneous))
    summary = summarize(out) | {"skipped": len(skipped),
                                "skip_reasons": dict(collections.Counter(s.split(":")[0] for s in skipped))}
    if progress:
        print(f"synth corpus {out}: {summary['hours']:.2f} h, {summary['clips']} clips, "
              f"{summary['voices']} voices ({summary['voice_variants']} with variants), "
              f"{summary['speakers']} pseudo-speakers, skipped {summary['skipped']} this run "
              f"{summary['skip_reasons'] or ''}")
        print(f"  splits (h): {summary['split_hours']}  engines: {summary['engines']}")
        print(f"  emotions: {summary['emotions']}")
        print(f"  spontaneous clips: {summary['spontaneous']}, fillers: {summary['fillers']}, "
              f"voice qualities: {summary['voice_qualities']}")
    return summary


def _fill(out: Path, target: float, workers: int, seed: int, fps: float, shard_size: int,
          progress: bool, spontaneous: float) -> list[str]:
    """Make and commit clips until ``out``'s manifest holds ``target`` seconds; return the skip
    reasons of this run."""
    from tqdm import tqdm

    records = _prepare(out, seed, fps, shard_size, spontaneous)
    total = sum(r["duration"] for r in records)
    shard, index = max(((r["shard"], r["index"] + 1) for r in records), default=(0, 0))
    skipped: list[str] = []
    bar = tqdm(total=round(target), initial=min(round(total), round(target)), unit="s", desc="synth audio",
               disable=not progress, dynamic_ncols=True)

    def next_job(expected: float) -> tuple[int, range]:
        """The clips after the last job's: the rest of the shard, or fewer when ``expected``
        seconds nearly reach the target (split between the workers)."""
        nonlocal shard, index
        if index >= shard_size:
            shard, index = shard + 1, 0
        needed = math.ceil((target - expected) / MEAN_CLIP_SECONDS / max(1, workers))
        job = (shard, range(index, index + min(shard_size - index, max(1, needed))))
        index = job[1].stop
        return job

    def commit(result: tuple[list[dict], list[str]]) -> None:
        nonlocal total
        recs, skips = result
        kept = 0
        while kept < len(recs) and total < target:
            total += recs[kept]["duration"]
            kept += 1
        if kept:
            append_manifest(out, recs[:kept])
        _remove_files(out, [r[k] for r in recs[kept:] for k in ("audio", "motion")])
        skipped.extend(skips)
        bar.update(min(round(total), round(target)) - bar.n)

    if workers <= 1:
        while total < target:
            commit(make_clips(out, seed, fps, *next_job(total), spontaneous))
    else:
        with process_pool(workers) as pool:
            pending: dict[Future, tuple[int, int]] = {}  # future -> (job number, clips)
            buffered: dict[int, tuple[list[dict], list[str]]] = {}
            submitted = committed = 0
            while total < target or pending:
                expected = total + sum(r["duration"] for recs, _ in buffered.values() for r in recs) \
                    + MEAN_CLIP_SECONDS * sum(n for _, n in pending.values())
                while expected < target and len(pending) < workers + 1:
                    job = next_job(expected)
                    pending[pool.submit(make_clips, out, seed, fps, *job, spontaneous)] = (submitted, len(job[1]))
                    submitted += 1
                    expected += MEAN_CLIP_SECONDS * len(job[1])
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    buffered[pending.pop(fut)[0]] = fut.result()
                while committed in buffered:
                    commit(buffered.pop(committed))
                    committed += 1
    bar.close()
    return skipped
