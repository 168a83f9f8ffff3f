"""facemotion.models: ``nn.Module``s only (no sampling, no files)."""

from facemotion.models.cross_attention import CrossAttentionDenoiser
from facemotion.models.denoiser import TransformerDenoiser, alignment_mask
from facemotion.models.joint_encoder import JointEncoderDenoiser
from facemotion.models.style_encoder import StyleEncoder
from facemotion.models.sync_expert import SyncExpert
from facemotion.models.unet1d import ConditionalUnet1D

DENOISERS = {"transformer_decoder": TransformerDenoiser, "transformer_encoder": JointEncoderDenoiser,
             "unet1d": ConditionalUnet1D, "cross_attention": CrossAttentionDenoiser}
"""Denoiser classes by the name a recipe config gives (``denoiser``)."""


def build_denoiser(name: str, **kwargs):
    """The denoiser registered as ``name`` in :data:`DENOISERS`, built with ``kwargs``.

    Raises:
        DataError: unknown name.
    """
    from facemotion.errors import DataError

    if name not in DENOISERS:
        raise DataError(f"denoiser {name!r}: unknown (choose from {', '.join(DENOISERS)})")
    return DENOISERS[name](**kwargs)


__all__ = ["TransformerDenoiser", "CrossAttentionDenoiser", "JointEncoderDenoiser", "ConditionalUnet1D", "StyleEncoder", "SyncExpert", "alignment_mask", "DENOISERS",
           "build_denoiser"]
