"""Lip-sync figures of a model (and of the model-free viseme baseline) on real speech.

    .venv/bin/python benchmarks/lipsync_realval.py --realval ../shared/audio/realval
    .venv/bin/python benchmarks/lipsync_realval.py --model runs/train/model.pt --baseline
    .venv/bin/python benchmarks/lipsync_realval.py --seeds 0,1,2 --ceiling
    .venv/bin/python benchmarks/lipsync_realval.py --detection --no-model
    .venv/bin/python benchmarks/lipsync_realval.py --ceiling
    .venv/bin/python benchmarks/lipsync_realval.py --seeds 0 --no-gate

Prints closure rate on /p b m/, open-vowel/bilabial aperture ratio and the rate of open vowels
with shut lips (definitions: facemotion.metrics.lipsync) for the realval recordings, the CMU
ARCTIC example, and both pooled. The aperture is measured between the lip landmarks of the
model's face space (any space: blendshapes, vertices) on its mean face (for a model that draws
faces, df3dface, the motion alone: ``aperture_from_motion``). ``--detection`` prints how many force-aligned /p b m/ the
phone searches (phone loop, word recognition, Whisper's transcript: the audio features' phone
sources) find and, for the model, its closure rate on the /p b m/ that each combination of
searches found. ``--ceiling`` scores the data engine's animator (``facemotion.synth.animate``,
the teacher of models trained on the synthetic corpus) on each search's phones and on the
phones force-aligned from the true transcript, beside the model: model against teacher on the
same phones, and phones against the truth. The model's motion goes through the speech-activity gate
as in ``facemotion generate`` (:func:`facemotion.face.gate.gate_motion`) unless ``--no-gate``. Alignments and decodings are cached (default
~/.cache/facemotion).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

from facemotion.api import EXAMPLE_SPEECH, load_animator
from facemotion.audio.io import load_audio
from facemotion.audio.phones import SEARCHES
from facemotion.audio.vad import speech_activity
from facemotion.errors import AudioError
from facemotion.face.gate import gate_motion
from facemotion.metrics.lipsync import (ARCTIC_TRANSCRIPT, CLOSED_BELOW, LipSyncReport, SegmentCache,
                                        SpeechItem, aperture_from_blendshapes, aperture_from_motion,
                                        bilabial_detection, evaluate_real_speech, load_realval, viseme_baseline)


def _report(title: str, generate_fn, realval, example, fps, cache) -> LipSyncReport:
    t0 = time.perf_counter()
    real = evaluate_real_speech(generate_fn, realval, fps, cache)
    arctic = evaluate_real_speech(generate_fn, [example], fps, cache)
    pooled = LipSyncReport(real.items + arctic.items, real.skipped + arctic.skipped, real.fps)
    print(f"== {title} ({time.perf_counter() - t0:.0f} s)")
    for name, report in (("realval", real), ("CMU ARCTIC a0009", arctic), ("pooled", pooled)):
        print(f"-- {name}: {'PASS' if report.passes() else 'FAIL'}\n{report.summary()}")
    return pooled


def _detection(items, cache) -> None:
    totals = {name: [0, 0, 0, 0] for name in (*SEARCHES, "any")}
    for item in items:
        try:
            reference = cache.segments(item.audio, item.transcript)
        except AudioError:
            continue
        found = {search: cache.segments(item.audio, None, search) for search in SEARCHES}
        found["any"] = [seg for segs in found.values() for seg in segs]
        for name, segs in found.items():
            totals[name] = [a + b for a, b in zip(totals[name], bilabial_detection(segs, reference))]
    cache.save()
    print("== /p b m/ found by the phone searches (+-40 ms), realval + ARCTIC a0009")
    for name, (hit, ref, false, hyp) in totals.items():
        print(f"  {name:10s} found {hit}/{ref} = {hit / max(ref, 1):.3f}   false {false}/{hyp}")


def _closure_by_detection(report: LipSyncReport, items, cache) -> None:
    """The model's closure rate and mean aperture on the /p b m/ of ``report``, grouped by the
    decoders that found them."""
    audio = {item.audio.name: item.audio for item in items}
    groups: dict[str, list[float]] = {}
    for measured in report.items:
        found = {search: cache.segments(audio[measured.name], None, search) for search in SEARCHES}
        for seg, low, mean in zip(measured.bilabial_segments, measured.bilabial_min, measured.bilabial_mean):
            key = " + ".join(s for s in SEARCHES if bilabial_detection(found[s], [seg])[0]) or "neither"
            group = groups.setdefault(key, [0, 0, 0.0])
            group[0] += 1
            group[1] += float(low < CLOSED_BELOW)
            group[2] += mean
    print("== the model's /p b m/ by the decoders that found them")
    for key, (n, closed, total) in sorted(groups.items()):
        print(f"  {key:20s} {n:4d}   closure {closed / n:.3f}   mean aperture {1000 * total / n:.1f} mm")


def _teacher(cache, transcripts: dict[Path, str], search: str | None, fps: float, seed: int):
    """``generate_fn`` of the data engine's animator on the phones of ``search`` (``None``: the
    phones force-aligned from the true transcript): audio path -> lip aperture ``[T]`` metres."""
    from facemotion.synth import animate

    def generate(path: Path) -> np.ndarray:
        segments = cache.segments(path, None, search) if search else cache.segments(path, transcripts[path])
        phones = [(s.phone, s.start, s.end) for s in segments]
        blendshapes, _ = animate(phones, load_audio(path), fps, np.random.default_rng(seed))
        return aperture_from_blendshapes(blendshapes)

    return generate


def _ceiling(items, cache, fps: float, seed: int, model: LipSyncReport | None) -> None:
    """Pooled figures of the animator on each search's phones and the transcript's, and of the model."""
    transcripts = {item.audio: item.transcript for item in items}
    rows = {f"animator on {source or 'transcript'} phones":
            evaluate_real_speech(_teacher(cache, transcripts, source, fps, seed), items, fps, cache)
            for source in (*SEARCHES, None)}
    if model is not None:
        rows["model"] = model
    print(f"== ceiling: the data engine's animator (teacher) and the model, realval + ARCTIC a0009, {fps:g} fps")
    print(f"  {'':32s} {'closure':>8s} {'ratio':>6s} {'shut open':>9s} {'false closures':>16s} {'lag ms':>6s}  /p b m/")
    for name, report in rows.items():
        f = report.figures()
        print(f"  {name:32s} {f['closure_rate']:8.3f} {f['open_bilabial_ratio']:6.2f} "
              f"{f['shut_open_vowel_rate']:9.3f} {f['false_closure_rate']:7.3f} of {f['num_speech_closures']:4d} "
              f"{f['lag'] * 1000:+6.0f}  {f['num_bilabial']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="'default' or a checkpoint path")
    p.add_argument("--realval", type=Path, default=Path("../shared/audio/realval"),
                   help="directory with transcripts.json and the recordings")
    p.add_argument("--example", type=Path, default=EXAMPLE_SPEECH, help="CMU ARCTIC a0009 wav")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (model and animator)")
    p.add_argument("--seeds", help="comma-separated sampling seeds of the model: the figures of each and of "
                                    "all pooled, the audio features computed once (default: --seed)")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--w-audio", type=float, help="audio guidance scale (default: the model's)")
    p.add_argument("--lip-closure", type=float,
                   help="threshold on Whisper's /p b m/ evidence where sampling shuts the lips (0: off; "
                        "default: the model's)")
    p.add_argument("--fps", type=float, default=25.0,
                   help="frame rate of the baseline (and of the animator without a model)")
    p.add_argument("--baseline", action="store_true", help="also the viseme-rule baseline")
    p.add_argument("--baseline-search", default="phone_loop", choices=SEARCHES,
                   help="phones of the baseline (default: phone_loop)")
    p.add_argument("--detection", action="store_true",
                   help="also the /p b m/ detection of the phone searches (phone_loop, words, asr)")
    p.add_argument("--ceiling", action="store_true",
                   help="also the data engine's animator on each search's phones and on the true transcript's")
    p.add_argument("--no-model", action="store_true", help="not the model (only the other figures)")
    p.add_argument("--no-gate", action="store_true",
                   help="the model's motion as sampled, without the speech-activity gate that `generate` applies")
    p.add_argument("--cache", type=Path, help="segment cache JSON (default ~/.cache/facemotion)")
    p.add_argument("--asr-model-dir", type=Path,
                   help="CTranslate2 Whisper directory for the asr search, of the model and of --detection and "
                        "--ceiling (default: the bundled tiny.en)")
    args = p.parse_args(argv)

    realval = load_realval(args.realval)
    example = SpeechItem(args.example, ARCTIC_TRANSCRIPT)
    cache = SegmentCache(args.cache, args.asr_model_dir)
    if args.detection:
        _detection(realval + [example], cache)
    if args.baseline or (args.no_model and not (args.detection or args.ceiling)):
        _report(f"baseline: {args.baseline_search} + viseme rules",
                viseme_baseline(args.fps, cache, search=args.baseline_search), realval, example, args.fps, cache)
    report, fps = None, args.fps
    if not args.no_model:
        animator = load_animator(args.model, asr_model_dir=args.asr_model_dir)
        fps = animator.fps
        features, activity = {}, {}

        def generate(path: Path, seed: int):
            if path not in features:
                wave = load_audio(path)
                features[path] = animator.audio_features(wave)
                activity[path] = speech_activity(wave, len(features[path]), animator.fps)
            motion = animator.sample(features[path], seed, args.steps, w_audio=args.w_audio,
                                     lip_closure=args.lip_closure)
            if not args.no_gate:  # as `generate` does: the mouth rests where nobody speaks
                motion = gate_motion(motion, activity[path], animator.recipe.space.names, fps=animator.fps)
            return aperture_from_motion(animator.space, motion)

        seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]
        reports = [_report(f"model {args.model} (seed {seed}, steps {args.steps or 'default'}, "
                           f"w_audio {args.w_audio or 'default'}, lip_closure {args.lip_closure})",
                           functools.partial(generate, seed=seed), realval, example, animator.fps, cache)
                   for seed in seeds]
        report = LipSyncReport([i for r in reports for i in r.items], reports[0].skipped, animator.fps)
        if len(seeds) > 1:
            print(f"== model {args.model}, seeds {args.seeds} pooled\n{report.summary()}")
        if args.detection:
            _closure_by_detection(report, realval + [example], cache)
    if args.ceiling:
        _ceiling(realval + [example], cache, fps, args.seed, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
