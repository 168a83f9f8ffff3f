"""User-facing errors: each names the file (or setting) at fault and what is wrong with it."""


class FacemotionError(Exception):
    """Base class of errors the user can fix; the CLI prints them as one line and exits 1."""


class AudioError(FacemotionError, ValueError):
    """A speech file is missing, unreadable, empty or too short.

    The message starts with the file path, e.g. ``"speech.wav: not an audio file (...)"``.
    """


class DataError(FacemotionError, ValueError):
    """A dataset, animation or checkpoint file is missing or malformed (message names the file)."""


class OutputError(FacemotionError, ValueError):
    """An output path cannot take the result (not creatable or writable, a file where a folder
    goes or the reverse, already there without ``--overwrite``, or locked by another run); the
    message names the path."""


class FacemotionWarning(UserWarning):
    """A problem the user should know of that does not stop the run (message names the file);
    the CLI prints it as ``facemotion: warning: MESSAGE``."""


class AudioWarning(FacemotionWarning):
    """A speech file is truncated, silent, clipped or very quiet (message starts with the path)."""


def show_warnings_as_one_line() -> None:
    """Print :class:`FacemotionWarning` s as one line ``facemotion: warning: MESSAGE`` on stderr
    (no source line); other warnings keep Python's format. Idempotent."""
    import sys
    import warnings

    previous = warnings.showwarning
    if getattr(previous, "facemotion", False):
        return

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FacemotionWarning):
            print(f"facemotion: warning: {message}", file=file or sys.stderr)
        else:
            previous(message, category, filename, lineno, file, line)

    show.facemotion = True
    warnings.showwarning = show
