"""Evaluation metrics: vertex errors (LVE, MVE), upper-face dynamics (FDD), mouth opening (MOD),
head-motion beat alignment (BA), sample diversity, and the real-speech lip-sync check
(:mod:`facemotion.metrics.lipsync`)."""

from facemotion.metrics.motion import (
    beat_alignment,
    diversity,
    fdd,
    head_motion_beats,
    lve,
    mod,
    mouth_aperture,
    mve,
    sample_diversity,
)

__all__ = ["beat_alignment", "diversity", "fdd", "head_motion_beats", "lve", "mod",
           "mouth_aperture", "mve", "sample_diversity"]
