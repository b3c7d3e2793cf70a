#!/usr/bin/env python3
"""Install the prebuilt OHIF viewer (npm ``@ohif/app``, pinned) where segmap serves it.

Run by ``scripts/setup.sh`` (so by both ``make run`` and ``make test``)::

    python scripts/install-ohif.py [--dest DIR] [--base /ohif/] [--force]

Steps, each refusing with a clear message and a non-zero exit when it cannot be done:

1. ``npm pack @ohif/app@<PINNED_VERSION>`` fetches the published tarball from the npm
   registry with npm itself (the ordinary client; its cache makes a re-run cheap).
2. The tarball's SHA-512 is compared with the SRI value pinned below (``PINNED_INTEGRITY``,
   the registry's ``dist.integrity`` of that version); a mismatch stops the install.
3. Only ``package/dist/`` is extracted (tarfile's ``data`` filter: no links out, no
   absolute paths), into a temporary folder beside the destination.
4. The dist was built for the public path ``/``. It is rewritten for ``--base`` (default
   ``/ohif/``): ``__webpack_require__.p = "/";`` in the webpack bundles, and
   ``window.PUBLIC_URL``, the absolute ``href``/``src``/``content`` links of ``index.html``,
   the font ``url(/...)`` of ``app.bundle.css`` and the icon paths of ``manifest.json``. The
   number of sites found must equal what the pinned version has; a dist that differs (a
   new OHIF version, a different build) is refused instead of half-rewritten.
5. A marker ``.segmap-install.json`` (version, integrity, base) is written, and the folder
   replaces the previous install in one rename. A later run whose marker already matches
   does nothing, so the command is idempotent.

The destination defaults to ``<sys.prefix>/share/segmap/ohif`` (inside the checkout's
``.venv``, so it is git-ignored and goes away with the venv); ``SEGMAP_OHIF_DIR`` or
``--dest`` moves it. segmap serves that folder at ``/ohif/`` together with a generated
``app-config.js`` whose ``routerBasename`` is the base without its trailing slash.

Why our own script: npm installs packages for Node projects; segmap only needs the
package's static files, checked and rewritten, with nothing else of Node around them.
Standard library only, so it runs before segmap's own dependencies are installed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "@ohif/app"
PINNED_VERSION = "3.13.2"
PINNED_INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="  # noqa: E501 (an SRI hash)
MARKER = ".segmap-install.json"
DEFAULT_BASE = "/ohif/"

# Rewrite sites the pinned dist has (counted in the 3.13.2 tarball). Another count means
# another build, whose public path may live elsewhere: refuse rather than guess.
EXPECTED_WEBPACK_BUNDLES = 8  # files holding `__webpack_require__.p = "/";`
EXPECTED_INDEX_PUBLIC_URL = 2  # `window.PUBLIC_URL="/"` in index.html
EXPECTED_INDEX_LINKS = 33  # absolute (href|src|content)="/..." in index.html
EXPECTED_CSS_URLS = 5  # url(/...) in app.bundle.css

_WEBPACK_PUBLIC_PATH = '__webpack_require__.p = "/";'
_INDEX_PUBLIC_URL = 'window.PUBLIC_URL="/"'
_INDEX_LINK = re.compile(r'\b(href|src|content)="/(?!/)')
_CSS_URL = re.compile(r"url\(/(?!/)")
_MANIFEST_SRC = re.compile(r'("src"\s*:\s*)"/(?!/)')


class InstallError(Exception):
    """The viewer cannot be installed; the message says why and what to do."""


@dataclass(frozen=True)
class RewriteReport:
    """How many public-path sites were rewritten, per kind."""

    webpack_bundles: int
    index_public_url: int
    index_links: int
    css_urls: int
    manifest_icons: int


def default_dest() -> Path:
    """``SEGMAP_OHIF_DIR`` if set, else ``<sys.prefix>/share/segmap/ohif``."""
    configured = os.environ.get("SEGMAP_OHIF_DIR")
    if configured:
        return Path(configured)
    return Path(sys.prefix) / "share" / "segmap" / "ohif"


def normalise_base(base: str) -> str:
    """``/ohif`` or ``ohif/`` -> ``/ohif/``; refuses anything but a plain URL path."""
    stripped = base.strip("/")
    if not stripped or not re.fullmatch(r"[A-Za-z0-9._~/-]+", stripped) or "//" in stripped:
        raise InstallError(f"--base {base!r} is not a URL path such as /ohif/")
    return f"/{stripped}/"


def sri_of(path: Path) -> str:
    """The SRI string (``sha512-<base64>``) of a file's bytes."""
    digest = hashlib.sha512()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return "sha512-" + base64.b64encode(digest.digest()).decode("ascii")


def fetch_tarball(workdir: Path) -> Path:
    """``npm pack`` the pinned version into ``workdir``; returns the tarball path."""
    npm = shutil.which("npm")
    if npm is None:
        raise InstallError(
            "npm is not installed; it fetches the OHIF viewer from the npm registry "
            "(Debian: apt-get install npm, or run scripts/system-deps.sh)"
        )
    spec = f"{PACKAGE}@{PINNED_VERSION}"
    done = subprocess.run(
        [npm, "pack", spec, "--json", "--silent", "--pack-destination", str(workdir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise InstallError(f"npm pack {spec} failed:\n{done.stderr.strip()[-2000:]}")
    try:
        filename = json.loads(done.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError) as exc:
        raise InstallError(f"npm pack {spec} printed no tarball name: {done.stdout!r}") from exc
    # npm names scoped tarballs "ohif-app-3.13.2.tgz"; its JSON has used both spellings.
    candidates = [workdir / filename, workdir / filename.lstrip("@").replace("/", "-")]
    for path in candidates:
        if path.is_file():
            return path
    raise InstallError(f"npm pack {spec} reported {filename!r} but wrote no such file")


def verify(tarball: Path) -> None:
    """Refuse a tarball whose SHA-512 is not the pinned one."""
    actual = sri_of(tarball)
    if actual != PINNED_INTEGRITY:
        raise InstallError(
            f"{tarball.name}: integrity {actual} does not match the pinned "
            f"{PINNED_INTEGRITY} for {PACKAGE}@{PINNED_VERSION}; refusing to install it"
        )


def extract_dist(tarball: Path, target: Path) -> None:
    """Extract ``package/dist/*`` of ``tarball`` into ``target`` (created)."""
    prefix = "package/dist/"
    target.mkdir(parents=True)
    with tarfile.open(tarball, "r:gz") as archive:
        members = []
        for member in archive.getmembers():
            if not member.name.startswith(prefix) or member.name == prefix:
                continue
            member.name = member.name[len(prefix) :]
            members.append(member)
        if not any(m.name == "index.html" for m in members):
            raise InstallError(f"{tarball.name} has no package/dist/index.html")
        archive.extractall(target, members=members, filter="data")


def _rewrite_file(path: Path, change: Callable[[str], tuple[str, int]]) -> int:
    text = path.read_text(encoding="utf-8")
    new, count = change(text)
    if count:
        path.write_text(new, encoding="utf-8")
    return count


def _expect(what: str, found: int, expected: int, where: str) -> None:
    if found != expected:
        raise InstallError(
            f"{where}: found {found} {what}, expected {expected} in {PACKAGE}@{PINNED_VERSION}; "
            "this is not the dist the rewrite was written for (update the pin and the "
            "expected counts in scripts/install-ohif.py together)"
        )


def rewrite_public_path(dist: Path, base: str) -> RewriteReport:
    """Rewrite a dist built for ``/`` to be served under ``base`` (``/x/``), in place.

    Counts every site first and changes nothing unless all counts are as expected.
    """
    sub = base[1:]  # what follows the leading slash
    bundles = sorted(
        p for p in dist.glob("*.js") if _WEBPACK_PUBLIC_PATH in p.read_text(encoding="utf-8")
    )
    _expect(
        f"bundles with {_WEBPACK_PUBLIC_PATH!r}", len(bundles), EXPECTED_WEBPACK_BUNDLES, str(dist)
    )
    index = dist / "index.html"
    index_text = index.read_text(encoding="utf-8")
    _expect(
        f"{_INDEX_PUBLIC_URL!r}",
        index_text.count(_INDEX_PUBLIC_URL),
        EXPECTED_INDEX_PUBLIC_URL,
        str(index),
    )
    _expect(
        "absolute href/src/content links",
        len(_INDEX_LINK.findall(index_text)),
        EXPECTED_INDEX_LINKS,
        str(index),
    )
    css = dist / "app.bundle.css"
    css_count = len(_CSS_URL.findall(css.read_text(encoding="utf-8"))) if css.is_file() else 0
    _expect("absolute url(/...)", css_count, EXPECTED_CSS_URLS, str(css))

    replacement = f'__webpack_require__.p = "{base}";'
    for bundle in bundles:
        _rewrite_file(
            bundle,
            lambda t: (t.replace(_WEBPACK_PUBLIC_PATH, replacement), t.count(_WEBPACK_PUBLIC_PATH)),
        )

    def index_change(text: str) -> tuple[str, int]:
        text = text.replace(_INDEX_PUBLIC_URL, f'window.PUBLIC_URL="{base}"')
        return _INDEX_LINK.subn(lambda m: f'{m.group(1)}="/{sub}', text)

    links = _rewrite_file(index, index_change)
    css_urls = _rewrite_file(css, lambda t: _CSS_URL.subn(f"url(/{sub}", t))
    manifest = dist / "manifest.json"
    icons = 0
    if manifest.is_file():
        icons = _rewrite_file(manifest, lambda t: _MANIFEST_SRC.subn(rf'\1"/{sub}', t))
    return RewriteReport(len(bundles), EXPECTED_INDEX_PUBLIC_URL, links, css_urls, icons)


def marker_for(base: str) -> dict[str, str]:
    """The marker content an install for ``base`` of the pinned version has."""
    return {
        "package": PACKAGE,
        "version": PINNED_VERSION,
        "integrity": PINNED_INTEGRITY,
        "base": base,
    }


def installed_marker(dest: Path) -> dict[str, str] | None:
    """The marker of the install at ``dest``, or None when there is none (or unreadable)."""
    try:
        data = json.loads((dest / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def install(
    dest: Path, base: str = DEFAULT_BASE, *, force: bool = False, tarball: Path | None = None
) -> bool:
    """Install the pinned viewer at ``dest`` for ``base``; False when already there.

    ``tarball`` uses a local copy of the package instead of ``npm pack`` (it is verified
    all the same).
    """
    base = normalise_base(base)
    if not force and installed_marker(dest) == marker_for(base):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ohif-install-", dir=dest.parent) as tmp:
        work = Path(tmp)
        source = tarball if tarball is not None else fetch_tarball(work)
        verify(source)
        staged = work / "dist"
        extract_dist(source, staged)
        rewrite_public_path(staged, base)
        (staged / MARKER).write_text(
            json.dumps(marker_for(base), indent=2) + "\n", encoding="utf-8"
        )
        old = work / "previous"
        if dest.exists():
            dest.rename(old)
        staged.rename(dest)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--dest",
        type=Path,
        default=None,
        help="install folder (default: $SEGMAP_OHIF_DIR or <sys.prefix>/share/segmap/ohif)",
    )
    parser.add_argument("--base", default=DEFAULT_BASE, help="URL path it is served at")
    parser.add_argument("--force", action="store_true", help="reinstall even if present")
    parser.add_argument(
        "--tarball",
        type=Path,
        default=None,
        help="use this local copy of the npm tarball (still verified)",
    )
    args = parser.parse_args(argv)
    dest = args.dest or default_dest()
    try:
        changed = install(dest, args.base, force=args.force, tarball=args.tarball)
    except InstallError as exc:
        print(f"install-ohif: {exc}", file=sys.stderr)
        return 1
    state = "installed" if changed else "already installed"
    print(f"{PACKAGE}@{PINNED_VERSION} {state} at {dest} (served at {normalise_base(args.base)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
