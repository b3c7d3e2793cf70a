"""The ``segmap convert`` command line: exit codes, messages, outputs, a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest

from segmap import testing as syn
from segmap.cli import main


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return syn.make_case(root / "in", syn.axial_grid((40, 32, 10), (1.0, 1.0, 2.5)), seed=4)


def _args(case, out, *extra):
    return [
        "convert",
        "--map",
        str(case.region_map_path),
        "--image",
        str(case.series.folder),
        "--rois",
        str(case.rtstruct_path),
        "--out",
        str(out),
        *extra,
    ]


@pytest.mark.parametrize(
    "extra",
    [
        ["--spacing", "1,1"],
        ["--spacing", "0,1,1"],
        ["--spacing", "a,b,c"],
        ["--threshold", "0"],
        ["--threshold", "1.5"],
        ["--interp", "cubic"],
        ["--overlap", "first"],
        ["--unmatched", "ignore"],
        ["--mask-only", "--spacing", "1,1,1"],
    ],
)
def test_usage_errors_exit_2_and_write_nothing(case, tmp_path, capsys, extra):
    code = main(_args(case, tmp_path / "out", *extra))
    err = capsys.readouterr().err
    assert code == 2
    assert "usage:" in err and "error:" in err
    assert not (tmp_path / "out").exists()


def test_missing_required_option_is_a_usage_error(capsys):
    assert main(["convert", "--map", "m.txt"]) == 2
    assert "required" in capsys.readouterr().err


@pytest.mark.parametrize("which", ["map", "image", "rois"])
def test_missing_input_is_bad_input_with_one_line(case, tmp_path, capsys, which):
    args = _args(case, tmp_path / "out")
    args[args.index(f"--{which}") + 1] = str(tmp_path / f"no_such_{which}")
    code = main(args)
    err = capsys.readouterr().err
    assert code == 1
    assert f"no_such_{which}" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_invalid_region_map_is_refused_before_anything_is_read(case, tmp_path, capsys):
    bad = tmp_path / "map.txt"
    bad.write_text("Liver=0\nSpleen=abc\n")
    args = _args(case, tmp_path / "out")
    args[args.index("--map") + 1] = str(bad)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "map.txt" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unmatched_names_skip_by_default_and_error_on_request(case, tmp_path, capsys):
    renamed = tmp_path / "map.txt"
    renamed.write_text("Body=1\nLiverr=10\n")
    args = _args(case, tmp_path / "skip", "--mask-only")
    args[args.index("--map") + 1] = str(renamed)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "'Liver'" in out and "Liverr" in out  # skipped, with the suggestion
    report = json.loads((tmp_path / "skip" / "report.json").read_text())
    liver = next(u for u in report["unmatched"] if u["name"] == "Liver")
    assert liver["suggestions"][0] == "Liverr"
    assert report["absent_labels"] == ["Liverr"]
    mask = np.asarray(nib.load(str(tmp_path / "skip" / "mask.nii.gz")).dataobj)
    assert set(np.unique(mask)) == {0, 1}
    args = _args(case, tmp_path / "err", "--mask-only", "--unmatched", "error")
    args[args.index("--map") + 1] = str(renamed)
    assert main(args) == 1
    assert "Liver" in capsys.readouterr().err
    assert not (tmp_path / "err").exists()


def test_strict_names_compare_exactly(case, tmp_path, capsys):
    lower = tmp_path / "map.txt"
    lower.write_text("body=1\n")
    args = _args(case, tmp_path / "loose", "--mask-only")
    args[args.index("--map") + 1] = str(lower)
    assert main(args) == 0
    assert "'Body' -> body=1" in capsys.readouterr().out
    args = _args(case, tmp_path / "strict", "--mask-only", "--strict-names")
    args[args.index("--map") + 1] = str(lower)
    assert main(args) == 0
    report = json.loads((tmp_path / "strict" / "report.json").read_text())
    assert {u["name"] for u in report["unmatched"]} == set(syn.PHANTOM_REGION_VALUES)


def test_no_preview_and_bspline(case, tmp_path, capsys):
    assert (
        main(_args(case, tmp_path / "o", "--no-preview", "--spacing", "1.5", "--interp", "bspline"))
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [
        "image_resampled.nii.gz",
        "mask.nii.gz",
        "mask_resampled.nii.gz",
        "report.json",
    ]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["options"]["spacing"] == [1.5, 1.5, 1.5]
    assert report["options"]["interp"] == "bspline"
    grids = {o["name"]: o["grid"] for o in report["outputs"]}
    assert grids["image_resampled.nii.gz"]["spacing_mm"] == [1.5, 1.5, 1.5]


def test_a_real_process_exits_0_and_prints_a_summary(case, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "segmap.cli", *_args(case, tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "mask.nii.gz" in proc.stdout and "'Aorta' -> Aorta=40" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "image.nii.gz",
        "mask.nii.gz",
        "preview.png",
        "report.json",
    ]
    # The summary's figures are the mask's: the lesion, painted last, shows whole.
    mask = np.asarray(nib.load(str(tmp_path / "out" / "mask.nii.gz")).dataobj)
    n = int((mask == 60).sum())
    ml = n * float(np.prod(case.series.grid.spacing)) / 1000
    assert f"  ROI 'Lesion' -> Lesion=60: {n} voxels, {ml:.2f} mL" in proc.stdout
    # What was decided is said too: the lesion lies inside the liver.
    assert "Liver and Lesion overlap in " in proc.stdout


def test_a_real_process_with_bad_input_exits_1_without_traceback(case, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "segmap.cli",
            *_args(case, tmp_path / "out")[:-2],
            "--out",
            str(tmp_path / "out"),
            "--rois",
            str(case.series.files[0]),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr and "RTSTRUCT or SEG" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_program_entry_point_returns_main_code_and_freezes_the_heap(case, tmp_path, monkeypatch):
    """``run`` (the ``segmap`` program) is ``main`` followed by ``gc.freeze()``, so the
    interpreter's shutdown collections skip the heap; the outputs are complete before."""
    import gc

    from segmap.cli import run

    out = tmp_path / "out"
    monkeypatch.delenv("SEGMAP_NO_SPEEDUPS", raising=False)  # this tests the trick itself
    monkeypatch.setattr(sys, "argv", ["segmap", *_args(case, out, "--mask-only")])
    try:
        assert run() == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # this test process goes on
    assert sorted(p.name for p in out.iterdir()) == ["mask.nii.gz", "report.json"]


def test_program_entry_point_without_speedups_leaves_the_heap_alone(case, tmp_path, monkeypatch):
    import gc

    from segmap.cli import run

    out = tmp_path / "out"
    monkeypatch.setenv("SEGMAP_NO_SPEEDUPS", "1")
    monkeypatch.setattr(sys, "argv", ["segmap", *_args(case, out, "--mask-only")])
    assert gc.get_freeze_count() == 0
    assert run() == 0
    assert gc.get_freeze_count() == 0
    assert sorted(p.name for p in out.iterdir()) == ["mask.nii.gz", "report.json"]


def test_command_line_choices_are_the_library_ones():
    # segmap/cli/convert.py lists them itself so that `segmap --help` need not import numpy.
    from segmap.cli.convert import INTERPOLATIONS, OVERLAP_POLICIES, UNMATCHED_POLICIES
    from segmap.masks.policies import OverlapPolicy, UnmatchedPolicy
    from segmap.pipeline.convert import INTERPOLATION_ORDERS

    assert tuple(INTERPOLATION_ORDERS) == INTERPOLATIONS
    assert tuple(p.value for p in OverlapPolicy) == OVERLAP_POLICIES
    assert tuple(p.value for p in UnmatchedPolicy) == UNMATCHED_POLICIES
