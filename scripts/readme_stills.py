"""Render the README's picture of the built-in head: 4 stills side by side.

Neutral (the first frame) and mid-word (the frame where the lips are widest apart) of the
default model's animation of ``examples/cmu_arctic_slt_a0009.wav`` (seed 0), each from the
front and from three-quarter view (camera turned 30 degrees toward the subject's left).

Run: ``.venv/bin/python scripts/readme_stills.py [--out docs/images/head.png] [--size 384]``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from facemotion import Animator
from facemotion.api import EXAMPLE_SPEECH
from facemotion.export.atomic import atomic_path
from facemotion.metrics.lipsync import aperture_from_blendshapes
from facemotion.render.video import render_still

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> Path:
    """Write the picture and return its path."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "head.png")
    ap.add_argument("--size", type=int, default=384, help="pixels per still (square)")
    args = ap.parse_args(argv)
    anim = Animator.from_pretrained("default").generate(EXAMPLE_SPEECH, seed=0)[0]
    mid_word = int(np.argmax(aperture_from_blendshapes(anim.blendshapes)))
    stills = []
    with tempfile.TemporaryDirectory() as tmp:
        for frame in (0, mid_word):
            for yaw in (0.0, 30.0):
                path = render_still(anim, Path(tmp) / f"{frame}_{yaw}.png", frame, yaw, args.size)
                stills.append(np.asarray(Image.open(path).convert("RGB")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out) as tmp:
        Image.fromarray(np.concatenate(stills, axis=1)).save(tmp, format="PNG", optimize=True)
    print(f"{args.out}: frames 0 and {mid_word} of {anim.num_frames}")
    return args.out


if __name__ == "__main__":
    main()
