"""The archive password, encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256).

The key is ``SEGMAP_SECRET_KEY`` when set (any text; a Fernet key is derived from it with
SHA-256, so the same text on every service of a shared database decrypts the same rows),
else the file ``archive_key`` in the data folder, made on first use with mode 0600. A
database copied without that key holds no usable password. Passwords never go to logs:
nothing here logs, and callers only ever log that a password exists.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from segmap.errors import SegmapError
from segmap.server.private_files import FILE_MODE

SECRET_KEY_ENV = "SEGMAP_SECRET_KEY"
KEY_FILE = "archive_key"


class SecretKeyError(SegmapError):
    """The stored password cannot be decrypted with this service's key."""


@dataclass(frozen=True)
class SecretBox:
    """Encrypts and decrypts the archive passwords of one service."""

    fernet: Fernet

    def encrypt(self, password: str) -> str:
        """The password as a Fernet token (text)."""
        return self.fernet.encrypt(password.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """The password back; ``SecretKeyError`` when the key is not the one it was made with."""
        try:
            return self.fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretKeyError(
                "the archive password cannot be decrypted with this service's key "
                f"(${SECRET_KEY_ENV} or the data folder's {KEY_FILE} changed); enter the "
                "password again on the project's Archive page"
            ) from exc


def secret_box(data_dir: Path) -> SecretBox:
    """The box of the service whose data folder is ``data_dir`` (see module doc)."""
    text = os.environ.get(SECRET_KEY_ENV, "")
    if text:
        digest = hashlib.sha256(b"segmap archive password\0" + text.encode("utf-8")).digest()
        return SecretBox(Fernet(base64.urlsafe_b64encode(digest)))
    return SecretBox(Fernet(_key_file(data_dir / KEY_FILE)))


def _key_file(path: Path) -> bytes:
    """The key in ``path``, made first when there is none (safe with other processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _make_key_file(path)
    key = path.read_bytes().strip()
    if not key:
        raise SecretKeyError(
            f"{path} is empty: restore it from a backup, or delete it and "
            "enter every archive password again"
        )
    return key


def _make_key_file(path: Path) -> None:
    """Put a new key at ``path`` whole, unless another process put one there first.

    The key is written and synced in a private temporary file beside ``path`` and then
    hard-linked into place: the link either appears with the whole key in it or fails
    because ``path`` exists, so no process ever reads a file made but not yet written
    (which creating ``path`` itself and then writing it would let one do). Whoever links
    first wins; the others read the winner's key.
    """
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".new")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes it 0600 already; say so whatever it does
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key())
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return  # another process made the key first: it is the one used
        _fsync_folder(path.parent)  # the new name survives a crash of the machine
    finally:
        os.unlink(temp)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
