"""The archive passwords' key file: made once, whole, even by many processes at once.

Services sharing a data folder (several ``segmap serve``, the command line) may all look
for ``archive_key`` before any has made it. Each must end with the same key, none may
read a file that exists but is not written yet, and the file is owner-only.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from race_helpers import call_together
from segmap.server.archive.secrets import KEY_FILE, SECRET_KEY_ENV, SecretKeyError, secret_box

PROCESSES = 6
THREADS = 4  # per process
ROUNDS = 5  # each on a fresh folder


def encrypt_own(caller: str, folder: str) -> str:
    """For :func:`race_helpers.call_together`: the caller's own password and its token
    from ``folder``'s box."""
    text = f"pw-{caller}"
    return text + " " + secret_box(Path(folder)).encrypt(text)


def _race(folder: Path) -> list[str]:
    """PROCESSES processes of THREADS threads ask for the box at once; their lines."""
    env_free = {k: v for k, v in os.environ.items() if k != SECRET_KEY_ENV}
    return call_together(
        "test_archive_secrets:encrypt_own",
        [str(folder)],
        processes=PROCESSES,
        threads=THREADS,
        env=env_free,
    )


@pytest.fixture(autouse=True)
def _key_from_the_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SECRET_KEY_ENV, raising=False)


def test_processes_making_the_key_at_once_all_get_the_one_key(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        folder = tmp_path / f"data-{round_}"
        lines = _race(folder)
        errors = [line for line in lines if line.startswith("ERROR")]
        assert not errors, errors
        assert len(lines) == PROCESSES * THREADS
        # The key now in the folder decrypts what every thread encrypted: one key for all.
        box = secret_box(folder)
        for line in lines:
            text, token = line.split(" ")
            assert box.decrypt(token) == text
        key = folder / KEY_FILE
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert [p.name for p in folder.iterdir()] == [KEY_FILE], "no temporary file left"


def _race_threads(folder: Path, count: int) -> tuple[list[tuple[str, str]], list[BaseException]]:
    """``count`` threads ask for the box at once: (password, token) each, and failures."""
    start = threading.Barrier(count)
    tokens: list[tuple[str, str]] = []
    failures: list[BaseException] = []

    def ask(n: int) -> None:
        start.wait()
        try:
            tokens.append((f"pw-{n}", secret_box(folder).encrypt(f"pw-{n}")))
        except BaseException as exc:  # recorded: the test's assertion names it
            failures.append(exc)

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return tokens, failures


def test_threads_making_the_key_at_once_all_get_the_one_key(tmp_path: Path) -> None:
    count = 16
    for round_ in range(ROUNDS * 2):
        folder = tmp_path / f"data-{round_}"
        tokens, failures = _race_threads(folder, count)
        assert not failures, failures
        assert len(tokens) == count
        box = secret_box(folder)
        assert sorted(box.decrypt(token) for _, token in tokens) == sorted(t for t, _ in tokens)
        assert stat.S_IMODE((folder / KEY_FILE).stat().st_mode) == 0o600
        assert [p.name for p in folder.iterdir()] == [KEY_FILE]


def test_an_empty_key_file_is_reported_not_replaced(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / KEY_FILE).write_bytes(b"")
    with pytest.raises(SecretKeyError, match="is empty") as raised:
        secret_box(folder)
    assert str(folder / KEY_FILE) in str(raised.value)
    assert (folder / KEY_FILE).read_bytes() == b""  # kept: a backup may restore it
