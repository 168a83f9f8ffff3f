"""facemotion.diffusion"""
