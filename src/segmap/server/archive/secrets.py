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
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from segmap.errors import SegmapError
from segmap.server.private_files import write_file_once

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
        write_file_once(path, Fernet.generate_key())  # whoever links first wins
    key = path.read_bytes().strip()
    if not key:
        raise SecretKeyError(
            f"{path} is empty: restore it from a backup, or delete it and "
            "enter every archive password again"
        )
    return key
