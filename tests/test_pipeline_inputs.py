"""Choosing the referenced series and reading the inputs, in parallel or not."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from segmap import testing as syn
from segmap.errors import SeriesSelectionError
from segmap.pipeline import inputs
from segmap.pipeline.inputs import is_rtstruct, read_inputs


@pytest.fixture(scope="module")
def two_series(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    grid_a = syn.axial_grid((24, 20, 6), (1.0, 1.0, 2.5))
    grid_b = syn.axial_grid((24, 20, 8), (1.0, 1.0, 2.0))
    ident = syn.StudyIdentity.generate(5)
    a = syn.write_ct_series(root / "both", grid_a, syn.render_phantom_ct(grid_a), identity=ident,
                            seed=5, series_number=2, file_prefix="a")
    b = syn.write_ct_series(root / "both", grid_b, syn.render_phantom_ct(grid_b), identity=ident,
                            seed=5, series_number=3, file_prefix="b",
                            frame_of_reference_uid=a.frame_of_reference_uid)
    only_a = syn.write_ct_series(root / "only_a", grid_a, syn.render_phantom_ct(grid_a),
                                 identity=ident, seed=5, series_number=2)
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


def test_parallel_and_sequential_reads_agree(two_series):
    root, *_ = two_series
    p = read_inputs(root / "rt_b.dcm", root / "both", parallel=True)
    s = read_inputs(root / "rt_b.dcm", root / "both", parallel=False)
    assert not s.read_in_parallel
    if threading.active_count() == 1:  # pytest's own thread only: the fork path must run
        assert p.read_in_parallel
    assert p.series.sop_instance_uids == s.series.sop_instance_uids
    for rp, rs in zip(p.contour_regions, s.contour_regions, strict=True):
        assert (rp.number, rp.name) == (rs.number, rs.name)
        for cp, cs in zip(rp.contours, rs.contours, strict=True):
            assert np.array_equal(cp.points_lps, cs.points_lps)


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


_real_timed_read_rtstruct = inputs._timed_read_rtstruct


def _slow_read_rtstruct(path):
    """The child's RTSTRUCT read, held back so the parent is sure to be waiting for it."""
    time.sleep(0.5)
    return _real_timed_read_rtstruct(path)


def test_while_waiting_runs_once_while_the_child_parses_and_never_without_one(
    two_series, monkeypatch
):
    root, *_ = two_series
    calls: list[int] = []
    s = read_inputs(root / "rt_b.dcm", root / "both", parallel=False,
                    while_waiting=lambda: calls.append(1))
    assert calls == []
    # Looked up by name in the forked child, which inherits this patch.
    monkeypatch.setattr(inputs, "_timed_read_rtstruct", _slow_read_rtstruct)
    p = read_inputs(root / "rt_b.dcm", root / "both", parallel=True,
                    while_waiting=lambda: calls.append(1))
    # Without a safe fork (other threads running) the reads run in turn: no waiting.
    assert calls == ([1] if p.read_in_parallel else [])
    assert p.series.sop_instance_uids == s.series.sop_instance_uids


def test_parallel_read_leaves_the_garbage_collector_as_it_found_it(two_series):
    """The heap is frozen only for the duration of a parallel read."""
    import gc

    root, *_ = two_series
    assert gc.get_freeze_count() == 0
    read_inputs(root / "rt_b.dcm", root / "both", parallel=True)
    assert gc.get_freeze_count() == 0
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        read_inputs(root / "rt_b.dcm", root / "both", parallel=True)
        # The caller's freeze is not undone (a few frozen objects may have been freed).
        assert gc.get_freeze_count() > frozen // 2
    finally:
        gc.unfreeze()
