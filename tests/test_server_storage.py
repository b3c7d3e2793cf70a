"""Local storage: hashing and size limits while streaming, atomic placement, safe keys."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import pytest

from segmap.server.errors import PayloadTooLarge
from segmap.server.storage import LocalStorage, new_key


def test_staging_hashes_and_counts_while_streaming(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    chunks = [os.urandom(1000), b"", os.urandom(70_000), b"tail"]
    with storage.stage(max_bytes=10**6) as w:
        for c in chunks:
            w.write(c)
        staged = w.finish()
    data = b"".join(chunks)
    assert staged.size == len(data)
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    assert staged.path.parent == storage.staging
    key = new_key("models/1")
    storage.commit(staged, key)
    assert not staged.path.exists()
    with storage.open(key) as f:
        assert f.read() == data
    assert list(storage.staging.iterdir()) == []


def test_limit_is_enforced_mid_stream_and_partial_file_removed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with storage.stage(max_bytes=10) as w:
        w.write(b"12345")
        w.write(b"67890")
        with pytest.raises(PayloadTooLarge, match="10 bytes"):
            w.write(b"!")
    assert list(storage.staging.iterdir()) == []


def test_leaving_block_without_finish_discards(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(RuntimeError), storage.stage(max_bytes=100) as w:
        w.write(b"half")
        raise RuntimeError("client went away")
    assert list(storage.staging.iterdir()) == []


def test_write_from_file_object_and_bytes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    data = os.urandom(3 * 1024 * 1024 + 5)
    with storage.stage(max_bytes=len(data)) as w:
        w.write_from(io.BytesIO(data))
        staged = w.finish()
    assert staged.sha256 == hashlib.sha256(data).hexdigest()
    storage.discard(staged)
    with storage.stage(max_bytes=3) as w:
        w.write_from(b"abc")
        assert w.finish().size == 3


def test_commit_replaces_whole_file_and_open_handles_keep_old_bytes(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    key = new_key("models/7")
    for content in (b"old" * 1000, b"new"):
        with storage.stage(10**6) as w:
            w.write(content)
            staged = w.finish()
        if content == b"new":
            reader = storage.open(key)
        storage.commit(staged, key)
    assert reader.read() == b"old" * 1000  # a reader never sees a mix
    reader.close()
    assert storage.read_bytes(key) == b"new"


@pytest.mark.parametrize(
    "key", ["../escape", "models/../../etc/passwd", "/abs", "models//x", "", "models/.", "a b"]
)
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path)
    with pytest.raises(ValueError, match="invalid storage key"):
        storage.open(key)


def test_delete_and_delete_prefix(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    keys = [new_key("models/1"), new_key("models/1"), new_key("models/2")]
    for k in keys:
        with storage.stage(100) as w:
            w.write(k.encode())
            storage.commit(w.finish(), k)
    storage.delete(keys[0])
    storage.delete(keys[0])  # already gone: no error
    assert not storage.exists(keys[0]) and storage.exists(keys[1])
    storage.delete_prefix("models/1")
    assert not storage.exists(keys[1]) and storage.exists(keys[2])


def test_sweep_removes_only_old_staging_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    old = storage.staging / "upload-old.part"
    new = storage.staging / "upload-new.part"
    old.write_bytes(b"x")
    new.write_bytes(b"y")
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert storage.sweep_staging(older_than_s=3600) == 1
    assert [p.name for p in storage.staging.iterdir()] == ["upload-new.part"]


def test_keys_are_unique() -> None:
    assert len({new_key("models/1") for _ in range(1000)}) == 1000
