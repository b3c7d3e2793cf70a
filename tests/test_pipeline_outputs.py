"""The all-or-nothing output folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from segmap.errors import SegmapError
from segmap.pipeline.outputs import OutputTransaction


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_commit_moves_every_file_in(tmp_path):
    dest = tmp_path / "a" / "b" / "out"
    with OutputTransaction(dest) as tx:
        tx.path("mask.nii.gz").write_bytes(b"m")
        tx.path("report.json").write_text("{}")
        assert not dest.exists()  # nothing visible before commit
        tx.commit()
    assert _listing(dest) == {"mask.nii.gz": b"m", "report.json": b"{}"}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out"]  # no staging left


def test_exception_leaves_a_missing_destination_missing_with_its_parents(tmp_path):
    dest = tmp_path / "new" / "deeper" / "out"
    with pytest.raises(RuntimeError), OutputTransaction(dest) as tx:
        tx.path("mask.nii.gz").write_bytes(b"m")
        raise RuntimeError("conversion failed")
    assert list(tmp_path.iterdir()) == []


def test_exception_leaves_an_existing_destination_as_it_was(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mask.nii.gz").write_bytes(b"old mask")
    (dest / "notes.txt").write_text("mine")
    before = _listing(dest)
    with pytest.raises(RuntimeError), OutputTransaction(dest) as tx:
        tx.path("mask.nii.gz").write_bytes(b"new mask")
        raise RuntimeError("late failure")
    assert _listing(dest) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_leaving_without_commit_discards(tmp_path):
    dest = tmp_path / "out"
    with OutputTransaction(dest) as tx:
        tx.path("x.txt").write_text("x")
    assert not dest.exists() and list(tmp_path.iterdir()) == []


def test_commit_replaces_same_names_and_keeps_others(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "mask.nii.gz").write_bytes(b"old")
    (dest / "keep.txt").write_text("keep")
    with OutputTransaction(dest) as tx:
        tx.path("mask.nii.gz").write_bytes(b"new")
        tx.commit()
    assert _listing(dest) == {"mask.nii.gz": b"new", "keep.txt": b"keep"}


def test_a_folder_in_the_way_is_refused_before_anything_moves(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a.txt").write_text("old a")
    (dest / "b.txt").mkdir()
    (dest / "b.txt" / "inside").write_text("occupied")
    with OutputTransaction(dest) as tx:
        tx.path("a.txt").write_text("new a")
        tx.path("b.txt").write_text("new b")
        with pytest.raises(SegmapError, match="is a folder"):
            tx.commit()
    assert (dest / "a.txt").read_text() == "old a"
    assert (dest / "b.txt" / "inside").read_text() == "occupied"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_rename_failing_midway_rolls_everything_back(tmp_path, monkeypatch):
    # A rename inside one folder cannot be made to fail here (the tests run as root, on
    # one file system), so the third rename is made to fail by hand.
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "a.txt").write_text("old a")
    (dest / "c.txt").write_text("old c")
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append((src, dst))
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    with OutputTransaction(dest) as tx:
        for name in ("a.txt", "b.txt", "c.txt"):
            tx.path(name).write_text(f"new {name}")
        monkeypatch.setattr("segmap.pipeline.outputs.os.replace", failing_replace)
        with pytest.raises(OSError, match="No space"):
            tx.commit()
        monkeypatch.setattr("segmap.pipeline.outputs.os.replace", real_replace)
    assert _listing(dest) == {"a.txt": b"old a", "c.txt": b"old c"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_destination_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "out"
    target.write_text("a file")
    with pytest.raises(SegmapError, match="not a folder"), OutputTransaction(target):
        pass
    assert target.read_text() == "a file"


@pytest.mark.parametrize("name", ["", ".", "..", "sub/x.txt", "/etc/passwd"])
def test_output_names_must_be_plain(tmp_path, name):
    with OutputTransaction(tmp_path / "out") as tx, pytest.raises(ValueError):
        tx.path(name)


def test_a_parent_made_by_a_conversion_beside_this_one_is_taken(tmp_path, monkeypatch):
    # segmap batch converts carol/first and carol/second at once: both find out/carol
    # missing, and the other one creates it first.
    original_mkdir = Path.mkdir

    def other_wins(self, *args, **kwargs):
        if self.name == "carol" and not self.exists():
            original_mkdir(self)
        return original_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", other_wins)
    with OutputTransaction(tmp_path / "out" / "carol" / "second") as tx:
        tx.path("mask.nii.gz").write_bytes(b"m")
        tx.commit()
    assert _listing(tmp_path / "out" / "carol" / "second") == {"mask.nii.gz": b"m"}
    # A failing conversion removes only the folders it made, not the other's.
    with OutputTransaction(tmp_path / "out" / "dave" / "first"):
        pass
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["carol"]


def test_a_parent_removed_under_us_is_made_again(tmp_path, monkeypatch):
    import tempfile

    calls = []
    original_mkdtemp = tempfile.mkdtemp

    def parent_vanishes_once(*args, **kwargs):
        calls.append(kwargs["dir"])
        if len(calls) == 1:
            os.rmdir(kwargs["dir"])  # a failed conversion beside this one cleaned up
            raise FileNotFoundError(kwargs["dir"])
        return original_mkdtemp(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", parent_vanishes_once)
    with OutputTransaction(tmp_path / "out" / "erin") as tx:
        tx.path("report.json").write_text("{}")
        tx.commit()
    assert len(calls) == 2
    assert _listing(tmp_path / "out" / "erin") == {"report.json": b"{}"}
