"""facemotion: speech-driven 3D facial animation with diffusion models."""

__version__ = "0.1.0"

__all__ = ["__version__", "Animator"]


def __getattr__(name):
    if name == "Animator":
        from facemotion.api import Animator

        return Animator
    raise AttributeError(name)
