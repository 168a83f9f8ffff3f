"""``facemotion bench``: real-time factors of generation by stage, by audio block, and seam ratios."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from facemotion.api import EXAMPLE_SPEECH, Animator, parse_formats, load_animator
from facemotion.errors import DataError


def _model_settings(animator: Animator) -> str:
    import torch

    recipe = animator.recipe
    params = sum(p.numel() for p in recipe.parameters()) if hasattr(recipe, "parameters") else None
    size = animator.checkpoint.stat().st_size / 2**20 if animator.checkpoint else float("nan")
    sampling = ", ".join(f"{k}={v}" for k, v in recipe.default_sampling.items())
    return (f"model: {animator.checkpoint} ({size:.1f} MiB"
            + (f", {params / 1e6:.2f} M parameters" if params is not None else "") + ")\n"
            f"recipe: {type(recipe).__name__}, fps {animator.fps:g}, sampling: {sampling}\n"
            f"torch threads: {torch.get_num_threads()}")


BENCH_FORMATS = ("npz", "glb", "csv", "usd", "mp4")
"""Formats ``facemotion bench`` times by default (those the model's space can express)."""


def bench_command(args) -> int:
    """``facemotion bench``: real-time factor (wall seconds per second of audio) of generation.

    For each duration in ``args.durations`` the speech (``args.speech``, default the CMU ARCTIC
    example) is looped to that length and animated with seed 0; the time of audio features,
    sampling and export of ``args.formats`` (None: every format of :data:`BENCH_FORMATS` that
    the model's face space can express, e.g. npz and mp4 for a vertex space) is printed
    separately, with the settings, then the time of each block of the audio encoder on the
    longest duration, and, for a model that samples window by window, the seam ratio of that
    motion (:func:`facemotion.metrics.motion.seam_ratios`; 1.0 is seamless). ``args.long_audio``
    (None: the model's) picks overlapped or autoregressive windows for a model that has both.
    One untimed run on the speech looped to the longest duration (at most 60 s) comes first
    (imports, caches, the decoders of each alignment thread, the helper process).

    Raises:
        AudioError: the speech file cannot be read. DataError: no model, a format the model's
            space cannot express, or ``--long-audio`` for a model that has one way only.
    """
    import soundfile as sf

    from facemotion.audio.io import SAMPLE_RATE, load_audio

    from facemotion.export import BLENDSHAPE_FORMATS, check_format

    durations = [float(d) for d in str(args.durations).split(",") if d.strip()]
    speech = Path(args.speech) if getattr(args, "speech", None) else EXAMPLE_SPEECH
    base = load_audio(speech)
    animator = load_animator(args.model)
    long_audio = getattr(args, "long_audio", None)
    if long_audio is not None:
        recipe = animator.recipe
        if "long_audio" not in recipe.default_sampling:
            raise DataError(f"--long-audio: the {type(recipe).__name__} model covers long audio one way only")
        recipe.config = dataclasses.replace(recipe.config, long_audio=long_audio)
    probe = animator.to_animation(np.zeros((1, animator.space.dim), np.float32))
    formats = parse_formats(args.formats) if args.formats else \
        [f for f in BENCH_FORMATS if probe.provides("blendshapes") or f not in BLENDSHAPE_FORMATS]
    for fmt in formats:
        check_format(probe, fmt)
    print(_model_settings(animator))
    print(f"speech: {speech} looped; formats: {','.join(formats)}")
    print(f"{'audio s':>8} {'features':>9} {'sampling':>9} {'export':>9} {'total':>9}   "
          "(real-time factor: wall s per s of audio)")
    with tempfile.TemporaryDirectory() as tmp:
        warm = np.resize(base, int(min(max(durations), 60.0) * SAMPLE_RATE))
        _time_stages(animator, warm, speech, formats, Path(tmp))  # warm-up: imports, caches, helpers
        for seconds in durations:
            wave = np.resize(base, int(seconds * SAMPLE_RATE))
            wav_path = Path(tmp) / f"bench_{seconds:g}s.wav"
            sf.write(wav_path, wave, SAMPLE_RATE)
            *times, motion = _time_stages(animator, wave, wav_path, formats, Path(tmp))
            rtf = [t / seconds for t in times]
            print(f"{seconds:8.1f} " + " ".join(f"{r:9.3f}" for r in rtf) + f" {sum(rtf):9.3f}")
    if hasattr(animator.recipe, "window_boundaries"):
        import torch

        from facemotion.metrics.motion import seam_ratios

        r = seam_ratios(animator.space, torch.from_numpy(motion)[None],
                        *animator.recipe.window_boundaries(len(motion)))
        print(f"seam ratio ({durations[-1]:g} s, "
              f"{animator.recipe.default_sampling.get('long_audio', 'autoregressive')} windows): "
              f"expression {r['expression']:.2f}, head {r['head_pose']:.2f} (1.0 is seamless)")
    print(f"features by block ({durations[-1]:g} s of audio, real-time factor): "
          + ", ".join(f"{name} {t / durations[-1]:.3f}" for name, t in _time_blocks(animator, wave)))
    return 0


def _time_blocks(animator: Animator, wave: np.ndarray) -> list[tuple[str, float]]:
    """Wall seconds of each block of the model's audio encoder (each part of a ``concat``) on
    ``wave``, one after the other, labelled ``name`` or ``name/search``; for Whisper's phones
    (``phonetic/asr``) also the transcription alone (``asr transcription``; the rest of the
    block is the forced alignment)."""
    from facemotion.audio.io import SAMPLE_RATE
    from facemotion.audio.phones import ASR_PROMPT
    from facemotion.audio.whisper import transcribe

    encoder = animator.recipe.audio_encoder
    frames = int(round(len(wave) / SAMPLE_RATE * animator.fps))
    out = []
    for block in getattr(encoder, "encoders", [encoder]):
        config = block.config()
        t0 = time.perf_counter()
        block.encode_numpy(wave, frames, animator.fps)
        out.append((config["name"] + (f"/{config['search']}" if "search" in config else ""),
                    time.perf_counter() - t0))
        if config.get("search") == "asr":
            t0 = time.perf_counter()
            transcribe(wave, config.get("asr_model_dir"), prompt=ASR_PROMPT)
            out.append(("asr transcription", time.perf_counter() - t0))
    return out


def _time_stages(animator: Animator, wave: np.ndarray, wav_path: Path, formats: Sequence[str],
                 outdir: Path) -> tuple[float, float, float, np.ndarray]:
    """Wall seconds of features, sampling and export of ``wave``, and the motion ``[T, D]``."""
    t0 = time.perf_counter()
    features = animator.audio_features(wave)
    t1 = time.perf_counter()
    motion = animator.sample(features, seed=0)
    t2 = time.perf_counter()
    animator.to_animation(motion, wav_path, 0).save(outdir, formats, stem=wav_path.stem)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2, motion
