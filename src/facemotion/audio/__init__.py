"""Speech input: decoding to mono 16 kHz, phone segmentation/alignment, and audio encoders.

The names below are loaded on first use, so that a process needing only the phone searches
(e.g. the helper process of :func:`facemotion.processes.helper_pool`) does not import torch.
"""

import importlib

_SOURCES = {
    "facemotion.audio.encoders": ("AudioEncoder", "ConcatEncoder", "HubertEncoder", "MelEncoder",
                                  "PhoneticEncoder", "Wav2Vec2Encoder", "WhisperEncoder", "build_audio_encoder"),
    "facemotion.audio.io": ("SAMPLE_RATE", "audio_duration", "load_audio"),
    "facemotion.audio.phones": ("VISEME_CLASSES", "PhoneSegment", "force_align", "phone_loop", "phone_to_viseme"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name not in _MODULE_OF:
        raise AttributeError(f"module 'facemotion.audio' has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULE_OF[name]), name)
