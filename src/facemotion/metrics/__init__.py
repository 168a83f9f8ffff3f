"""Evaluation metrics: vertex errors (LVE in two conventions, MVE), upper-face and non-lip dynamics
(FDD, NLDD), mouth opening (MOD), multimodality,
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
    multimodality,
    mve,
    nldd,
    sample_diversity,
)

__all__ = ["beat_alignment", "diversity", "fdd", "head_motion_beats", "lve", "mod",
           "mouth_aperture", "multimodality", "mve", "nldd", "sample_diversity"]
