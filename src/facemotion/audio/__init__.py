"""Speech input: decoding to mono 16 kHz, phone segmentation/alignment, and audio encoders."""

from facemotion.audio.encoders import (
    AudioEncoder,
    ConcatEncoder,
    HubertEncoder,
    MelEncoder,
    PhoneticEncoder,
    Wav2Vec2Encoder,
    WhisperEncoder,
    build_audio_encoder,
)
from facemotion.audio.io import SAMPLE_RATE, audio_duration, load_audio
from facemotion.audio.phones import VISEME_CLASSES, PhoneSegment, force_align, phone_loop, phone_to_viseme

__all__ = [
    "SAMPLE_RATE", "load_audio", "audio_duration",
    "PhoneSegment", "phone_loop", "force_align", "VISEME_CLASSES", "phone_to_viseme",
    "AudioEncoder", "MelEncoder", "PhoneticEncoder", "WhisperEncoder", "Wav2Vec2Encoder", "HubertEncoder", "ConcatEncoder",
    "build_audio_encoder",
]
