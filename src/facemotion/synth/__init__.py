"""facemotion.synth: the data engine.

Text (``text``) → speech with exact phone timing from espeak-ng, flite and festival
(``tts``) → pseudo-speakers by Praat voice change, speed perturbation and audio
augmentation (``speaker``) → co-articulated ARKit animation with style, emotion, blinks,
gaze and head motion (``animate``) → a sharded, resumable native dataset (``corpus``).
"""

from facemotion.synth.animate import EMOTIONS, animate
from facemotion.synth.corpus import generate_corpus, make_clip, summarize

__all__ = ["EMOTIONS", "animate", "generate_corpus", "make_clip", "summarize"]
