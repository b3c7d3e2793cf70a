"""``segmap batch`` as users run it: a real command in a subprocess on a generated tree.

The tree mixes good cases (laid out in different ways) with bad ones: a damaged
RTSTRUCT, one whose series is absent, one whose frame of reference does not match its
series, and a file that is not DICOM. The batch must convert the good ones exactly (the
masks are judged against the independent truth of ``test_convert_truth``), carry on past
the bad ones, name each with its reason, and exit 1. On a Dask cluster over TCP the same
command converts everything and exits 0.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs_helpers import assert_mask_matches_truth, small_case, truth_rois
from segmap import testing as syn
from segmap.pipeline.batch import case_name, discover

SEGMAP = [sys.executable, "-m", "segmap.cli"]


def _run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [*SEGMAP, "batch", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, syn.SyntheticCase]]:
    root = tmp_path_factory.mktemp("batch") / "in"
    good: dict[str, syn.SyntheticCase] = {}
    # A case as make_case lays it out.
    good["alice/rtstruct"] = small_case(root / "alice", 1)
    # Series and annotation in sibling folders, the annotation without a .dcm suffix.
    bob = small_case(root / "bob" / "study", 2)
    (root / "bob" / "study" / "annotations").mkdir()
    shutil.move(bob.rtstruct_path, root / "bob" / "study" / "annotations" / "RS_bob")
    good["bob/study/annotations/RS_bob"] = bob
    # Two annotations on one series.
    carol = small_case(root / "carol", 3)
    second = root / "carol" / "second.dcm"
    syn.write_rtstruct(second, carol.series, carol.rois, seed=33, label="second")
    good["carol/rtstruct"] = carol
    good["carol/second"] = carol

    # Bad: a truncated RTSTRUCT.
    damaged = root / "dave" / "rtstruct.dcm"
    damaged.parent.mkdir(parents=True)
    whole = good["alice/rtstruct"].rtstruct_path.read_bytes()
    damaged.write_bytes(whole[: len(whole) * 2 // 3])
    # Bad: the series was never exported with it.
    erin = small_case(root / "erin", 5)
    shutil.rmtree(erin.series.folder)
    # Bad: the RTSTRUCT claims another frame of reference than its series.
    frank = small_case(root / "frank", 6)
    syn.write_rtstruct(
        frank.rtstruct_path,
        frank.series,
        frank.rois,
        seed=6,
        frame_of_reference_uid="1.2.826.0.1.3680043.8.498.1",
    )
    (root / "notes.txt").write_text("not DICOM\n")
    return root, good


def _check_good_outputs(out: Path, good: dict[str, syn.SyntheticCase]) -> None:
    for name, case in good.items():
        folder = out / name
        names = {p.name for p in folder.iterdir()}
        assert {
            "mask.nii.gz",
            "image_resampled.nii.gz",
            "mask_resampled.nii.gz",
            "report.json",
            "preview.png",
        } <= names, (name, names)
        assert_mask_matches_truth(folder / "mask.nii.gz", case.series.folder, truth_rois(case))


def test_case_names_are_relative_paths_without_dcm(tree):
    root, _ = tree
    found = discover(root)
    names = sorted(c.name for c in found.cases)
    assert names == sorted(
        [
            "alice/rtstruct",
            "bob/study/annotations/RS_bob",
            "carol/rtstruct",
            "carol/second",
            "dave/rtstruct",
            "erin/rtstruct",
            "frank/rtstruct",
        ]
    )
    assert case_name(root, root / "x" / "y.DCM") == "x/y"
    # A missing series is known before converting anything.
    erin = next(c for c in found.cases if c.name == "erin/rtstruct")
    assert erin.problem and "not under" in erin.problem
    maps = len(list(root.rglob("map.txt")))
    assert found.non_dicom_files == 1 + maps  # notes.txt and the map files


def test_batch_continues_past_bad_cases_and_reports_them(tree, tmp_path):
    root, good = tree
    out = tmp_path / "out"
    done = _run(
        "--map",
        str(good["alice/rtstruct"].region_map_path),
        "--in",
        str(root),
        "--out",
        str(out),
        "--spacing",
        "2,2,4",
        "--workers",
        "2",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "converted 4 of 7 case(s)" in done.stdout
    lines = done.stdout.splitlines()

    def reason(name: str) -> str:
        hits = [ln for ln in lines if ln.strip().startswith(name + " ")]
        assert len(hits) == 1, done.stdout
        return hits[0]

    assert "dave/rtstruct.dcm" in reason("dave/rtstruct")
    assert "export the ROI collection again" in reason("dave/rtstruct")
    assert "not under" in reason("erin/rtstruct")
    assert "frame of reference" in reason("frank/rtstruct").lower()
    # Progress bar on stderr reached the end.
    assert "7/7" in done.stderr
    report = json.loads((out / "batch_report.json").read_text())
    assert report["cases"] == 7 and report["failed"] == 3 and report["succeeded"] == 4
    failed = {o["name"] for o in report["outcomes"] if not o["ok"]}
    assert failed == {"dave/rtstruct", "erin/rtstruct", "frank/rtstruct"}
    for name in failed:
        assert not (out / name).exists(), f"a failed case left outputs: {name}"
    _check_good_outputs(out, good)


def test_batch_on_a_dask_cluster_over_tcp(tree, tmp_path):
    from distributed import LocalCluster

    root, good = tree
    only_good = tmp_path / "in"
    shutil.copytree(root, only_good, ignore=shutil.ignore_patterns("dave", "erin", "frank"))
    out = tmp_path / "out"
    with LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, protocol="tcp", dashboard_address=None
    ) as cluster:
        address = cluster.scheduler_address
        assert address.startswith("tcp://")
        done = _run(
            "--map",
            str(good["alice/rtstruct"].region_map_path),
            "--in",
            str(only_good),
            "--out",
            str(out),
            "--scheduler",
            address,
            "--no-progress",
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "converted 4 of 4 case(s)" in done.stdout
    assert f"Dask cluster at {address}" in done.stdout
    moved = {name: case for name, case in good.items()}
    for name, case in moved.items():
        folder = out / name
        assert {p.name for p in folder.iterdir()} == {
            "mask.nii.gz",
            "image.nii.gz",
            "report.json",
            "preview.png",
        }
        assert_mask_matches_truth(folder / "mask.nii.gz", case.series.folder, truth_rois(case))


def test_nothing_to_convert_and_bad_map_exit_1(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    map_path = syn.write_region_map(tmp_path / "map.txt", {"Liver": 1})
    done = _run("--map", str(map_path), "--in", str(empty), "--out", str(tmp_path / "o"))
    assert done.returncode == 1
    assert "no RTSTRUCT or SEG" in done.stderr
    bad_map = tmp_path / "bad.txt"
    bad_map.write_text("Liver=0\n")
    done = _run("--map", str(bad_map), "--in", str(empty), "--out", str(tmp_path / "o"))
    assert done.returncode == 1
    assert "bad.txt:1:" in done.stderr and "background" in done.stderr
    assert "Traceback" not in done.stderr
    done = _run("--map", str(map_path), "--in", str(tmp_path / "missing"), "--out", "o")
    assert done.returncode == 1 and "not a folder" in done.stderr
    done = _run("--map", str(map_path), "--in", str(empty), "--out", "o", "--workers", "0")
    assert done.returncode == 2


def test_summary_notes_what_each_converted_case_left_out(tree, tmp_path):
    """The notes are the case's report sentences: an unmatched name with the closest map
    label, map labels the annotation lacks; overlaps by map order are not repeated."""
    root, good = tree
    only_alice = tmp_path / "in"
    shutil.copytree(root / "alice", only_alice / "alice")
    values = {("Livr" if k == "Liver" else k): v for k, v in syn.PHANTOM_REGION_VALUES.items()}
    map_path = syn.write_region_map(tmp_path / "map.txt", {**values, "Heart": 99})
    out = tmp_path / "out"
    done = _run(
        "--map",
        str(map_path),
        "--in",
        str(only_alice),
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-preview",
        "--no-progress",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    notes = [ln.strip() for ln in done.stdout.splitlines() if ln.strip().startswith("note ")]
    assert len(notes) == 2, done.stdout
    assert notes[0].startswith(
        "note alice/rtstruct: ROI 'Liver' matches no label of the map (closest: Livr"
    )
    assert notes[0].endswith("; not painted.")
    assert notes[1] == "note alice/rtstruct: Map labels absent from the annotation: Livr, Heart."
    (outcome,) = json.loads((out / "batch_report.json").read_text())["outcomes"]
    assert outcome["unmatched"] == ["Liver"]
    assert [f"note alice/rtstruct: {n}" for n in outcome["notes"]] == notes
    report = json.loads((out / "alice" / "rtstruct" / "report.json").read_text())
    assert report["overlaps"], "the phantom's organs overlap the body"
