"""The installed OHIF dist: where it is, whether it fits ``/ohif/``, how to cache its files.

``scripts/install-ohif.py`` (run by ``scripts/setup.sh``) fetches ``@ohif/app`` from the
npm registry, checks its integrity, rewrites its public path for ``/ohif/`` and writes a
marker ``.segmap-install.json`` (version, integrity, base). This module only reads what
that script wrote: a folder without the marker, or one rewritten for another base, is not
served, so a half-copied or foreign dist never reaches a browser.

The default folder, ``<sys.prefix>/share/segmap/ohif``, is the install script's default
too (the script runs before segmap is installed, so it cannot import this module; both
say ``SEGMAP_OHIF_DIR`` moves it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

BASE_PATH = "/ohif/"
MARKER = ".segmap-install.json"
ENV_DIR = "SEGMAP_OHIF_DIR"

# Webpack names its bundles and assets with a content hash (``app.bundle.0f6159c5….js``,
# ``0ddf166f7a343eda.wasm``): such a file never changes under its name.
_HASHED = re.compile(r"(^|[.\-])[0-9a-f]{16,}\.[A-Za-z0-9]+$")
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


@dataclass(frozen=True)
class OhifDist:
    """An installed dist: its folder and the npm version it came from."""

    root: Path
    version: str

    def file(self, relative: str) -> Path | None:
        """The file at ``relative`` (a URL path below ``/ohif/``), or None when there is no
        such file inside the dist (``..``, absolute paths and links out are refused)."""
        if not relative or "\x00" in relative or "\\" in relative:
            return None
        parts = relative.split("/")
        if any(p in ("", ".", "..") for p in parts) or parts[0] == MARKER:
            return None
        candidate = self.root.joinpath(*parts)
        try:
            resolved = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not resolved.is_file() or not resolved.is_relative_to(self.root.resolve()):
            return None
        return resolved

    @property
    def index_html(self) -> Path:
        """The single page every viewer route answers with."""
        return self.root / "index.html"


def default_dist_dir() -> Path:
    """``$SEGMAP_OHIF_DIR``, else ``<sys.prefix>/share/segmap/ohif``."""
    configured = os.environ.get(ENV_DIR)
    return Path(configured) if configured else Path(sys.prefix) / "share" / "segmap" / "ohif"


def find_dist(folder: Path | None = None) -> OhifDist | None:
    """The dist installed for ``/ohif/`` in ``folder`` (default :func:`default_dist_dir`),
    or None when none is (no marker, another base, or no ``index.html``)."""
    root = folder if folder is not None else default_dist_dir()
    try:
        marker = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("base") != BASE_PATH:
        return None
    if not (root / "index.html").is_file():
        return None
    return OhifDist(root=root, version=str(marker.get("version", "")))


def cache_control(path: Path) -> str:
    """Cache-Control for a dist file: a year for content-hashed names, else revalidate."""
    return IMMUTABLE if _HASHED.search(path.name) else REVALIDATE
