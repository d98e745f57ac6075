"""Where deploykit keeps what is expensive to make: one cache root for every layer.

``$DEPLOYKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deploykit``, else ``~/.cache/deploykit``. The bench keeps its
exports, engines and compiler caches under it (:mod:`deploykit.bench.cache`), the data sets their generated
files under ``data/`` (:mod:`deploykit.data`).
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$DEPLOYKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deploykit``, else ``~/.cache/deploykit``."""
    env = os.environ.get("DEPLOYKIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "deploykit"
