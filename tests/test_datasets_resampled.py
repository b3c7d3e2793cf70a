"""A dataset of scans on different grids, at the model's spacing, checked and planned by
nnU-Net v2 itself.

Four scans (axial at three spacings, one oblique, one feet first) are converted by
``segmap batch --spacing 2,2,4``; ``--resampled`` takes the resampled pairs. nnU-Net's
``nnUNetv2_plan_and_preprocess --verify_dataset_integrity`` runs in a subprocess on the
exported raw dataset, with its three folders in a temporary directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from datasets_helpers import resampled_tree
from segmap.datasets.batchtree import scan_batch_tree
from segmap.datasets.errors import DatasetError
from segmap.datasets.export import export_folder
from segmap.datasets.freeze import FreezeOptions, freeze
from segmap.pipeline.convert import ConvertOptions, convert

SPACING = (2.0, 2.0, 4.0)
DATASET_ID = 503


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return resampled_tree(tmp_path_factory.mktemp("resampled-tree"), SPACING)


@pytest.fixture(scope="module")
def frozen(tree):
    return freeze(
        scan_batch_tree(tree.out).conversions,
        FreezeOptions(name="Resampled", dataset_id=DATASET_ID, resampled=True, folds=2),
    )


@pytest.fixture(scope="module")
def raw(frozen, tmp_path_factory):
    return export_folder(frozen, "nnunet", tmp_path_factory.mktemp("nnUNet_raw")).path


def test_cases_of_different_grids_have_one_spacing_when_resampled(tree, frozen, raw):
    native = {c.grid.size + c.grid.spacing for c in tree.cases.values()}
    assert len(native) == 4  # four different scan grids went in
    assert frozen.manifest.resampled and frozen.manifest.spacing_mm == SPACING
    for case in frozen.manifest.cases:
        image = nib.load(str(raw / "imagesTr" / f"{case.name}_0000.nii.gz"))
        label = nib.load(str(raw / "labelsTr" / f"{case.name}.nii.gz"))
        for img in (image, label):
            assert np.allclose(img.header.get_zooms(), SPACING)
            # The spacing of the affine itself, not only the header's voxel sizes.
            assert np.allclose(np.linalg.norm(img.affine[:3, :3], axis=0), SPACING)
        assert image.shape == label.shape
        assert np.allclose(image.affine, label.affine)


def test_nnunet_verifies_the_dataset_and_plans_it(frozen, raw, tmp_path):
    tool = Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"
    assert tool.is_file(), "nnunetv2 is a test dependency: run scripts/setup.sh test"
    base = raw.parent
    env = dict(
        os.environ,
        nnUNet_raw=str(base),
        nnUNet_preprocessed=str(tmp_path / "pre"),
        nnUNet_results=str(tmp_path / "results"),
        nnUNet_def_n_proc="1",
        OMP_NUM_THREADS="1",
    )
    done = subprocess.run(
        # One process each for the check, the fingerprint and the preprocessing: on two
        # cores, nnU-Net's default of eight costs three times the CPU for tiny cases.
        [
            str(tool),
            "-d",
            str(DATASET_ID),
            "--verify_dataset_integrity",
            "-c",
            "3d_fullres",
            "-np",
            "1",
            "-npfp",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "verify_dataset_integrity Done" in done.stdout
    pre = tmp_path / "pre" / raw.name
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    # nnU-Net orders axes slowest first (k, j, i).
    assert plans["configurations"]["3d_fullres"]["spacing"] == [SPACING[2], SPACING[1], SPACING[0]]
    fingerprint = json.loads((pre / "dataset_fingerprint.json").read_text())
    assert len(fingerprint["spacings"]) == len(frozen.manifest.cases) == 4
    assert all(np.allclose(s, SPACING[::-1]) for s in fingerprint["spacings"])
    data = pre / "nnUNetPlans_3d_fullres"
    preprocessed = {
        p.name.split(".")[0]
        for p in data.iterdir()
        if not p.name.endswith(".pkl") and "_seg" not in p.name
    }
    assert preprocessed == {c.name for c in frozen.manifest.cases}
    # splits_final.json is in nnU-Net's own format and is read from the preprocessed folder.
    shutil.copy(raw / "splits_final.json", pre / "splits_final.json")
    from nnunetv2.utilities.file_path_utilities import load_json  # type: ignore[import-untyped]

    splits = load_json(str(pre / "splits_final.json"))
    assert sorted(n for s in splits for n in s["val"]) == sorted(preprocessed)


def test_the_native_grid_is_refused_when_only_resampled_pairs_exist(tree):
    with pytest.raises(DatasetError, match="no image on the scan's own grid.*--resampled"):
        freeze(scan_batch_tree(tree.out).conversions, FreezeOptions(folds=2))


def test_resampled_pairs_of_two_spacings_are_refused(tree, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(tree.out, mixed / "a")
    case = tree.cases["p1/rtstruct"]
    convert(
        tree.map_path,
        case.series_folder,
        tree.inputs / "p1" / "rtstruct.dcm",
        mixed / "b" / "p1",
        ConvertOptions(spacing=(1.5, 1.5, 3.0), preview=False),
    )
    with pytest.raises(
        DatasetError,
        match=r"different spacings: .* is 2 x 2 x 4 mm, .* is "
        r"1.5 x 1.5 x 3 mm",
    ):
        freeze(scan_batch_tree(mixed).conversions, FreezeOptions(resampled=True, folds=2))
