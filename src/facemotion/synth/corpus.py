"""The corpus generator behind ``facemotion synth``: clips → shards → a native dataset.

Clip ``(shard, index)`` is a pure function of ``(seed, shard, index, fps)``: its own random
streams pick the pseudo-speaker, text, emotion, augmentation (stream ``[seed, shard,
index]`` and ``[..., 2]``) and the upper-face/head motion (``[..., 1]``). Shards of
``shard_size`` clips are made in parallel and committed to ``manifest.jsonl`` strictly
in shard order, each in one append after all its files are on disk, until the committed
audio reaches the requested hours. A restart therefore finds a prefix of shards in the
manifest, deletes files no manifest line points at (an interrupted shard), and goes on
with the next shard: no duplicates, and the same clip ids as an uninterrupted run.

Layout: ``<out>/synth.json`` (settings), ``<out>/speakers.json`` (the pseudo-speaker
pool), ``<out>/manifest.jsonl``, ``<out>/clips/<shard>/<id>.flac`` (16 kHz mono 16-bit)
and ``<id>.npz`` (``blendshapes [T, 52]``, ``blendshape_names``, ``head_rotation [T, 3]``,
``fps``, ``phones`` = JSON ``[[phone, start s, end s], ...]`` of the stored audio).
"""

from __future__ import annotations

import collections
import json
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import numpy as np
import soundfile as sf

from facemotion.audio.io import SAMPLE_RATE
from facemotion.data.native import MANIFEST, append_manifest, read_manifest
from facemotion.errors import DataError, FacemotionError
from facemotion.export.atomic import atomic_path
from facemotion.face.arkit import ARKIT_BLENDSHAPES
from facemotion.synth.animate import EMOTIONS, animate
from facemotion.synth.speaker import PseudoSpeaker, augment, change_voice, speaker_pool
from facemotion.synth.text import WORDS_PER_SECOND, sample_sentence
from facemotion.synth.tts import synthesize

MIN_SECONDS, MAX_SECONDS = 3.0, 12.0
"""Clip length range (s) aimed at; clips outside [2.5, 13] s after two retries are skipped."""

AUGMENT_FRACTION = 0.5
"""Fraction of clips whose stored audio is degraded by :func:`~facemotion.synth.speaker.augment`."""

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


def _speak(rng: np.random.Generator, speaker: PseudoSpeaker, rate: float):
    """Text and TTS output of about 3–12 s (after the speed change), or ``None``."""
    target = rng.uniform(MIN_SECONDS, MAX_SECONDS)
    words = target * WORDS_PER_SECOND * rate * speaker.speed
    for _ in range(3):
        text = sample_sentence(rng, max(4, round(words)))
        wave, phones = synthesize(speaker.voice, text, speaker.variant, rate, speaker.tts_pitch)
        seconds = len(wave) / SAMPLE_RATE / speaker.speed
        if 2.5 <= seconds <= 13.0:
            return text, wave, phones
        words *= target / seconds
    return None


def make_clip(out: Path, seed: int, fps: float, shard: int, index: int) -> dict | str:
    """Generate one clip's audio and motion files; return its manifest record.

    Returns:
        The record (``id, speaker, split, fps, audio, motion, duration, text, emotion,
        intensity, prompt, voice, engine, sex, augment, shard, index``), or a string giving
        why the clip was skipped (TTS failure, unusable length).
    """
    rng = np.random.default_rng([seed, shard, index])
    pool = speaker_pool(seed)
    speaker = pool[rng.integers(len(pool))]
    emotion = str(rng.choice(EMOTIONS, p=_EMOTION_P / _EMOTION_P.sum()))
    intensity = 0.0 if emotion == "neutral" else float(rng.uniform(0.2, 1.0))
    rate = speaker.rate * rng.uniform(0.95, 1.05)
    try:
        spoken = _speak(rng, speaker, rate)
    except FacemotionError as e:
        return f"tts: {e}"
    if spoken is None:
        return "length out of range"
    text, wave, phones = spoken
    wave = change_voice(wave, speaker.formant_ratio, speaker.pitch_median * rng.uniform(0.95, 1.05),
                        speaker.pitch_range, speaker.speed)
    duration = len(wave) / SAMPLE_RATE
    phones = [(p, s / speaker.speed, e / speaker.speed) for p, s, e in phones]
    phones[-1] = (phones[-1][0], phones[-1][1], duration)
    blendshapes, head = animate(phones, wave, fps, np.random.default_rng([seed, shard, index, 1]),
                                speaker.style, emotion, intensity)
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
        "augment": effects, "shard": shard, "index": index,
    }


def make_shard(out: Path, seed: int, fps: float, shard: int, shard_size: int) -> tuple[list[dict], list[str]]:
    """Generate the clips of one shard; return (records, skip reasons). Does not touch the manifest."""
    records, skipped = [], []
    for index in range(shard_size):
        res = make_clip(out, seed, fps, shard, index)
        (records if isinstance(res, dict) else skipped).append(res)
    return records, skipped


def _prepare(out: Path, seed: int, fps: float, shard_size: int) -> list[dict]:
    """Check/write settings, write the speaker pool, delete orphan files; return the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    settings = {"seed": seed, "fps": fps, "shard_size": shard_size}
    cfg = out / "synth.json"
    if cfg.is_file():
        old = json.loads(cfg.read_text())
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
    for path in (out / "clips").glob("*/*") if (out / "clips").is_dir() else []:
        if path.relative_to(out).as_posix() not in referenced:
            path.unlink()
    return records


def _delete(out: Path, records: list[dict]) -> None:
    for r in records:
        for k in ("audio", "motion"):
            (out / r[k]).unlink(missing_ok=True)


def summarize(out: str | os.PathLike) -> dict:
    """Figures of a synthetic corpus from its manifest: hours, clips, base voices, voice
    variants, pseudo-speakers, emotions, per-split hours, engines."""
    records = read_manifest(out)
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
    }


def generate_corpus(out: str | os.PathLike, hours: float, workers: int | None = None, seed: int = 0,
                    fps: float = 25.0, shard_size: int = 50, progress: bool = True) -> dict:
    """Generate (or resume) a synthetic talking-face corpus of at least ``hours`` of speech.

    Args:
        out: dataset directory (created; a native dataset, see :mod:`facemotion.data.native`).
        hours: hours of audio to reach (shards are added until the committed total ≥ this).
        workers: parallel processes (default: CPU count; ≤ 1 runs in this process).
        seed: corpus seed (fixes the speakers, texts and motion of every clip).
        fps: motion frame rate, frames/s.
        shard_size: clips per shard (the unit of resumption).
        progress: show a tqdm progress bar (seconds of audio) and print the summary.

    Returns:
        :func:`summarize`'s dict plus ``skipped`` (clips skipped in this run) and
        ``skip_reasons``.

    Raises:
        DataError: ``out`` holds a corpus made with another seed, fps or shard size, or
            ``hours`` is not positive.
    """
    from tqdm import tqdm

    if hours <= 0:
        raise DataError(f"--hours must be positive, got {hours}")
    out = Path(out)
    records = _prepare(out, seed, fps, shard_size)
    target = hours * 3600.0
    total = sum(r["duration"] for r in records)
    next_commit = max((r["shard"] for r in records), default=-1) + 1
    next_submit = next_commit
    buffered: dict[int, tuple[list[dict], list[str]]] = {}
    skipped: list[str] = []
    workers = (os.cpu_count() or 1) if workers is None else workers
    bar = tqdm(total=round(target), initial=min(round(total), round(target)), unit="s", desc="synth audio",
               disable=not progress, dynamic_ncols=True)

    def commit(result: tuple[list[dict], list[str]]) -> None:
        nonlocal total, next_commit
        recs, skips = result
        if total < target:
            append_manifest(out, recs)
            skipped.extend(skips)
            seconds = sum(r["duration"] for r in recs)
            bar.update(max(0, min(round(total + seconds), round(target)) - min(round(total), round(target))))
            total += seconds
        else:  # made in parallel beyond the target: not part of this corpus
            _delete(out, recs)
        next_commit += 1

    if workers <= 1:
        while total < target:
            commit(make_shard(out, seed, fps, next_commit, shard_size))
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        pending: dict[Future, int] = {}
        try:
            while total < target or pending:
                while total < target and len(pending) < workers + 1:
                    pending[pool.submit(make_shard, out, seed, fps, next_submit, shard_size)] = next_submit
                    next_submit += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    buffered[pending.pop(fut)] = fut.result()
                while next_commit in buffered:
                    commit(buffered.pop(next_commit))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
    summary = summarize(out) | {"skipped": len(skipped),
                                "skip_reasons": dict(collections.Counter(s.split(":")[0] for s in skipped))}
    if progress:
        print(f"synth corpus {out}: {summary['hours']:.2f} h, {summary['clips']} clips, "
              f"{summary['voices']} voices ({summary['voice_variants']} with variants), "
              f"{summary['speakers']} pseudo-speakers, skipped {summary['skipped']} this run "
              f"{summary['skip_reasons'] or ''}")
        print(f"  splits (h): {summary['split_hours']}  engines: {summary['engines']}")
        print(f"  emotions: {summary['emotions']}")
    return summary
