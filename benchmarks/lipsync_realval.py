"""Lip-sync figures of a model (and of the model-free viseme baseline) on real speech.

    .venv/bin/python benchmarks/lipsync_realval.py --realval ../shared/audio/realval
    .venv/bin/python benchmarks/lipsync_realval.py --model runs/train/last.pt --baseline

Prints closure rate on /p b m/, open-vowel/bilabial aperture ratio and the rate of open vowels
with shut lips (definitions: facemotion.metrics.lipsync) for the realval recordings, the CMU
ARCTIC example, and both pooled. Alignments are cached (default ~/.cache/facemotion).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from facemotion.api import EXAMPLE_SPEECH, load_animator
from facemotion.metrics.lipsync import (ARCTIC_TRANSCRIPT, LipSyncReport, SegmentCache, SpeechItem,
                                        aperture_from_blendshapes, evaluate_real_speech,
                                        load_realval, viseme_baseline)


def _report(title: str, generate_fn, realval, example, fps, cache) -> None:
    t0 = time.perf_counter()
    real = evaluate_real_speech(generate_fn, realval, fps, cache)
    arctic = evaluate_real_speech(generate_fn, [example], fps, cache)
    pooled = LipSyncReport(real.items + arctic.items, real.skipped + arctic.skipped)
    print(f"== {title} ({time.perf_counter() - t0:.0f} s)")
    for name, report in (("realval", real), ("CMU ARCTIC a0009", arctic), ("pooled", pooled)):
        print(f"-- {name}: {'PASS' if report.passes() else 'FAIL'}\n{report.summary()}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="default", help="'default' or a checkpoint path")
    p.add_argument("--realval", type=Path, default=Path("../shared/audio/realval"),
                   help="directory with transcripts.json and the recordings")
    p.add_argument("--example", type=Path, default=EXAMPLE_SPEECH, help="CMU ARCTIC a0009 wav")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the baseline")
    p.add_argument("--baseline", action="store_true", help="also the phone-loop viseme baseline")
    p.add_argument("--no-model", action="store_true", help="only the baseline")
    p.add_argument("--cache", type=Path, help="segment cache JSON (default ~/.cache/facemotion)")
    args = p.parse_args(argv)

    realval = load_realval(args.realval)
    example = SpeechItem(args.example, ARCTIC_TRANSCRIPT)
    cache = SegmentCache(args.cache)
    if args.baseline or args.no_model:
        _report("baseline: phone loop + viseme rules", viseme_baseline(args.fps, cache),
                realval, example, args.fps, cache)
    if not args.no_model:
        animator = load_animator(args.model)

        def generate(path: Path):
            return aperture_from_blendshapes(animator.generate(path, seed=args.seed,
                                                               steps=args.steps).blendshapes)

        _report(f"model {args.model} (seed {args.seed}, steps {args.steps or 'default'})",
                generate, realval, example, animator.fps, cache)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
