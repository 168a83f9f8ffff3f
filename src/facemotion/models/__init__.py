"""facemotion.models: ``nn.Module``s only (no sampling, no files)."""

from facemotion.models.denoiser import TransformerDenoiser, alignment_mask
from facemotion.models.style_encoder import StyleEncoder

__all__ = ["TransformerDenoiser", "StyleEncoder", "alignment_mask"]
