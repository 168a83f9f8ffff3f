"""Seams of window-by-window generation on long real speech.

    .venv/bin/python benchmarks/seams.py                       # the shipped default model
    .venv/bin/python benchmarks/seams.py --model runs/x/model.pt --samples 8
    .venv/bin/python benchmarks/seams.py --overlap 0            # windows handed over at the edge
    .venv/bin/python benchmarks/seams.py --inpaint              # overlap held by inpainting

For the longest recordings of ``../shared/audio/realval`` (two by default, ~26 s each: six
window hand-overs of 100 frames), draws ``--samples`` samples and prints the seam ratio
(:func:`facemotion.metrics.motion.seam_ratios`: mean frame-to-frame change at the window
boundaries over the mean elsewhere; 1.0 is seamless) of the expression (lip and upper-face
vertices) and of the head speed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from facemotion.api import load_animator
from facemotion.audio.io import load_audio
from facemotion.metrics.motion import seam_ratios

REALVAL = Path(__file__).resolve().parents[2] / "shared" / "audio" / "realval"


def longest(folder: Path, count: int) -> list[Path]:
    """The ``count`` longest audio files (wav/flac) of ``folder``, longest first."""
    files = [p for p in folder.iterdir() if p.suffix in (".wav", ".flac")]
    return sorted(files, key=lambda p: sf.info(p).duration, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default")
    parser.add_argument("--realval", type=Path, default=REALVAL)
    parser.add_argument("--recordings", type=int, default=2)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlap", type=int, default=None,
                        help="frames windows share (default: the model's; 0 = hand over at the edge)")
    parser.add_argument("--inpaint", action="store_true",
                        help="hold the shared frames by inpainting instead of cross-fading them")
    args = parser.parse_args()

    animator = load_animator(args.model)
    recipe = animator.recipe
    ratios = []
    for path in longest(args.realval, args.recordings):
        t0 = time.perf_counter()
        features = animator.audio_features(load_audio(path))
        with torch.inference_mode():
            motion = recipe.sample(features, num_samples=args.samples,
                                   generator=torch.Generator().manual_seed(args.seed),
                                   overlap=args.overlap, crossfade=False if args.inpaint else None)
        r = seam_ratios(recipe.space, motion.float(),
                        *recipe.window_boundaries(len(features), args.overlap, False if args.inpaint else None))
        ratios.append(r)
        print(f"{path.name}: {len(features)} frames, seam ratio expression {r['expression']:.2f}, "
              f"head {r['head_pose']:.2f} ({time.perf_counter() - t0:.0f} s)")
    print(f"mean seam ratio: expression {np.mean([r['expression'] for r in ratios]):.2f}, "
          f"head {np.mean([r['head_pose'] for r in ratios]):.2f}  (target <= 1.3; 1.0 is seamless)")


if __name__ == "__main__":
    main()
