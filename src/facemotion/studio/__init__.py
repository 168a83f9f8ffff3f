"""``facemotion serve``: a local web studio.

Upload or record speech, pick a model, seed and number of samples (and a style clip for
models with a style encoder), watch the built-in head speak in the browser in sync with the
audio (three.js, shipped in the package; nothing is fetched from the network), and download
NPZ, GLB, USD, CSV and MP4. :func:`create_app` builds the ASGI app, :func:`serve` runs it on
uvicorn (127.0.0.1:8000 by default); :mod:`.jobs` holds the state, :mod:`.uploads` the checks.
"""

from facemotion.studio.app import create_app, serve
from facemotion.studio.jobs import Studio, StudioSettings

__all__ = ["Studio", "StudioSettings", "create_app", "serve"]
