"""Choosing the referenced series and reading the inputs, in parallel or not."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
import traceback
from typing import Any

import numpy as np
import pytest

from segmap import testing as syn
from segmap.errors import SeriesSelectionError
from segmap.pipeline import inputs
from segmap.pipeline.inputs import is_rtstruct, read_inputs
from segmap.pipeline.speedups import NO_SPEEDUPS_ENV


@pytest.fixture(scope="module")
def two_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    grid_a = syn.axial_grid((24, 20, 6), (1.0, 1.0, 2.5))
    grid_b = syn.axial_grid((24, 20, 8), (1.0, 1.0, 2.0))
    ident = syn.StudyIdentity.generate(5)
    a = syn.write_ct_series(
        root / "both",
        grid_a,
        syn.render_phantom_ct(grid_a),
        identity=ident,
        seed=5,
        series_number=2,
        file_prefix="a",
    )
    b = syn.write_ct_series(
        root / "both",
        grid_b,
        syn.render_phantom_ct(grid_b),
        identity=ident,
        seed=5,
        series_number=3,
        file_prefix="b",
        frame_of_reference_uid=a.frame_of_reference_uid,
    )
    only_a = syn.write_ct_series(
        root / "only_a",
        grid_a,
        syn.render_phantom_ct(grid_a),
        identity=ident,
        seed=5,
        series_number=2,
    )
    syn.write_rtstruct(root / "rt_b.dcm", b, syn.phantom_rois(grid_b), seed=5)
    return root, a, b, only_a


@pytest.mark.parametrize("parallel", [True, False])
def test_referenced_series_is_chosen_among_several(two_series, parallel):
    root, a, b, _ = two_series
    got = read_inputs(root / "rt_b.dcm", root / "both", parallel=parallel)
    assert got.series.series_instance_uid == b.series_instance_uid
    assert got.series.grid.size == b.grid.size
    assert got.info.modality == "RTSTRUCT" and got.warnings == []
    assert [r.name for r in got.contour_regions] == list(syn.PHANTOM_REGION_VALUES)
    assert {"read_annotation", "load_series"} <= set(got.timings_s)


def test_single_other_series_is_used_with_a_warning(two_series):
    root, a, b, only_a = two_series
    got = read_inputs(root / "rt_b.dcm", root / "only_a")
    assert got.series.series_instance_uid == only_a.series_instance_uid
    assert len(got.warnings) == 1 and b.series_instance_uid in got.warnings[0]


def test_several_series_none_referenced_is_an_error_listing_them(two_series, tmp_path):
    root, a, b, _ = two_series
    other = syn.write_ct_series(tmp_path / "x", a.grid, syn.render_phantom_ct(a.grid), seed=9)
    syn.write_rtstruct(tmp_path / "rt.dcm", other, syn.phantom_rois(a.grid), seed=9)
    with pytest.raises(SeriesSelectionError) as err:
        read_inputs(tmp_path / "rt.dcm", root / "both")
    msg = str(err.value)
    assert other.series_instance_uid in msg
    assert a.series_instance_uid in msg and b.series_instance_uid in msg


def test_is_rtstruct_reads_only_the_start(two_series, tmp_path):
    root, a, *_ = two_series
    assert is_rtstruct(root / "rt_b.dcm")
    assert not is_rtstruct(a.files[0])
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    assert not is_rtstruct(junk)
    # The start of a file is enough: everything after Modality can be missing.
    data = (root / "rt_b.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:1000])
    assert is_rtstruct(cut)


def test_threaded_callers_read_sequentially(two_series):
    root, *_ = two_series
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        got = read_inputs(root / "rt_b.dcm", root / "both", parallel=True)
    finally:
        stop.set()
        other.join()
    assert not got.read_in_parallel


# --- the forked read, in a process that is sure to run one thread ----------------------
# Forking is only used by a single-threaded process; pytest's may not be one (a test
# before this one can leave a thread behind), so these checks run in a fresh spawned
# interpreter, where the fork path must be taken: a test of it that could pass without it
# running tests nothing.

_real_timed_read_rtstruct = inputs._timed_read_rtstruct
_RELEASE: Any = None  # set in the fresh process; the forked child inherits it


def _held_read_rtstruct(path):
    """The child's RTSTRUCT read, held until ``while_waiting`` has run in the parent.

    So the parent is certain to be waiting for the child when it calls ``while_waiting``,
    without guessing at a time: the parse cannot finish before the call.
    """
    if not _RELEASE.wait(timeout=120):
        raise RuntimeError("while_waiting was not called while the RTSTRUCT was parsed")
    return _real_timed_read_rtstruct(path)


def _summary(got):
    return {
        "read_in_parallel": got.read_in_parallel,
        "sop_instance_uids": got.series.sop_instance_uids,
        "regions": [
            (r.number, r.name, [c.points_lps for c in r.contours]) for r in got.contour_regions
        ],
    }


def _forked_reads(rt_path, folder):
    """In the fresh process: two parallel reads, the second under the caller's freeze."""
    global _RELEASE
    os.environ.pop(NO_SPEEDUPS_ENV, None)
    facts = {"threads_at_start": threading.active_count()}
    # Looked up by name in the forked child, which inherits this replacement.
    inputs._timed_read_rtstruct = _held_read_rtstruct
    waits = []

    def while_waiting():
        waits.append(gc.get_freeze_count())
        _RELEASE.set()

    _RELEASE = multiprocessing.get_context("fork").Event()
    facts["first"] = _summary(
        read_inputs(rt_path, folder, parallel=True, while_waiting=while_waiting)
    )
    facts["frozen_while_waiting"] = list(waits)
    facts["frozen_after"] = gc.get_freeze_count()
    gc.freeze()
    facts["frozen_by_caller"] = gc.get_freeze_count()
    _RELEASE = multiprocessing.get_context("fork").Event()
    facts["second"] = _summary(
        read_inputs(rt_path, folder, parallel=True, while_waiting=while_waiting)
    )
    facts["frozen_after_second"] = gc.get_freeze_count()
    gc.unfreeze()
    facts["waits"] = len(waits)
    return facts


def _send_result(conn, fn, args):
    try:
        conn.send((True, fn(*args)))
    except BaseException:
        conn.send((False, traceback.format_exc()))
    finally:
        conn.close()


def run_in_fresh_process(fn, *args):
    """``fn(*args)`` in a new interpreter (spawned: one thread, not a daemon)."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_send_result, args=(send, fn, args))
    proc.start()
    send.close()
    try:
        if not receive.poll(300):
            raise AssertionError("the fresh process gave no answer")
        ok, value = receive.recv()
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
    if not ok:
        raise AssertionError(f"in the fresh process:\n{value}")
    return value


@pytest.fixture(scope="module")
def forked(two_series):
    root, *_ = two_series
    return run_in_fresh_process(_forked_reads, root / "rt_b.dcm", root / "both")


def test_a_single_threaded_process_reads_in_parallel_with_the_same_result(two_series, forked):
    root, *_ = two_series
    assert forked["threads_at_start"] == 1
    assert forked["first"]["read_in_parallel"] and forked["second"]["read_in_parallel"]
    s = read_inputs(root / "rt_b.dcm", root / "both", parallel=False)
    assert not s.read_in_parallel
    for got in (forked["first"], forked["second"]):
        assert got["sop_instance_uids"] == s.series.sop_instance_uids
        assert len(got["regions"]) == len(s.contour_regions)
        for (number, name, points), rs in zip(got["regions"], s.contour_regions, strict=True):
            assert (number, name) == (rs.number, rs.name)
            for cp, cs in zip(points, rs.contours, strict=True):
                assert np.array_equal(cp, cs.points_lps)


def test_while_waiting_runs_once_while_the_child_parses_and_never_without_one(two_series, forked):
    root, *_ = two_series
    calls: list[int] = []
    read_inputs(
        root / "rt_b.dcm", root / "both", parallel=False, while_waiting=lambda: calls.append(1)
    )
    assert calls == []
    # Once per parallel read; the child's parse was held until then (_held_read_rtstruct).
    assert forked["waits"] == 2


def test_parallel_read_freezes_the_heap_and_leaves_the_collector_as_it_found_it(forked):
    # Frozen while the child parses, unfrozen after.
    assert len(forked["frozen_while_waiting"]) == 1  # taken after the first read
    assert forked["frozen_while_waiting"][0] > 0
    assert forked["frozen_after"] == 0
    # The caller's own freeze is not undone (a few frozen objects may have been freed).
    assert forked["frozen_by_caller"] > 0
    assert forked["frozen_after_second"] > forked["frozen_by_caller"] // 2


def test_no_speedups_reads_one_after_the_other(two_series, monkeypatch):
    root, *_ = two_series
    monkeypatch.setenv(NO_SPEEDUPS_ENV, "1")
    calls: list[int] = []
    got = read_inputs(
        root / "rt_b.dcm", root / "both", parallel=True, while_waiting=lambda: calls.append(1)
    )
    assert not got.read_in_parallel and calls == []
    assert got.series.series_instance_uid == two_series[2].series_instance_uid
