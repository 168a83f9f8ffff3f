"""Lip-sync figures of the data engine's own animation, measured on the built-in head.

    .venv/bin/python benchmarks/synth_lipsync.py --clips 20 --seed 0
    .venv/bin/python benchmarks/synth_lipsync.py --clips 20 --spontaneous 1   # fillers, hums, breaths

Generates ``--clips`` clips exactly as ``facemotion synth`` does (TTS, voice change, the animator
``facemotion.synth.animate``) into a temporary directory and scores their ARKit weights on the
built-in head against the TTS engines' own phone timing: closure rate on /p b m/ (lip aperture
< 2 mm), open-vowel / bilabial aperture ratio, open vowels with shut lips (definitions:
``facemotion.metrics.lipsync``). The corpus's weights do not depend on the head, so this checks
that the head closes the lips where the animator asks it to.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from facemotion.audio.phones import PhoneSegment
from facemotion.metrics.lipsync import LipSyncReport, aperture_from_blendshapes, measure_lipsync
from facemotion.synth.corpus import make_clip


def main(argv=None) -> LipSyncReport:
    """Generate the clips, print the pooled figures and return the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--spontaneous", type=float, default=0.0,
                    help="fraction of clips spoken spontaneously (as `facemotion synth --spontaneous`)")
    args = ap.parse_args(argv)
    items, skipped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        with tqdm(total=args.clips, desc="clips", unit="clip") as bar:
            while len(items) < args.clips:
                record = make_clip(Path(tmp), args.seed, args.fps, 0, index, args.spontaneous)
                index += 1
                if isinstance(record, str):
                    skipped.append(record)
                    continue
                with np.load(Path(tmp) / record["motion"]) as z:
                    aperture = aperture_from_blendshapes(z["blendshapes"])
                    phones = [PhoneSegment(p, s, e) for p, s, e in json.loads(str(z["phones"]))]
                items.append(measure_lipsync(aperture, args.fps, phones, record["id"]))
                bar.update()
    report = LipSyncReport(items, skipped, args.fps)
    print(f"{len(items)} clips (seed {args.seed}, {len(skipped)} skipped by the engine)\n{report.summary()}")
    return report


if __name__ == "__main__":
    main()
