"""User-facing errors: each names the file (or setting) at fault and what is wrong with it."""


class FacemotionError(Exception):
    """Base class of errors the user can fix; the CLI prints them as one line and exits 1."""


class AudioError(FacemotionError, ValueError):
    """A speech file is missing, unreadable, empty or too short.

    The message starts with the file path, e.g. ``"speech.wav: not an audio file (...)"``.
    """


class DataError(FacemotionError, ValueError):
    """A dataset, animation or checkpoint file is missing or malformed (message names the file)."""
