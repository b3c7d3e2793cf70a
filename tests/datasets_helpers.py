"""Batch trees for the dataset tests, made of synthetic cases whose truth is known.

Each case is a phantom CT series with an RTSTRUCT (``segmap.testing``),
converted by ``segmap.pipeline.batch.run_batch`` exactly as ``segmap batch`` does. The
test knows, per batch case, the series folder and the contours of every ROI written,
so it can judge any exported label image against the independent even-odd truth of
``test_convert_truth``. Some cases are planted for the QA to find.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from segmap import testing as syn
from segmap.imaging.grid import VoxelGrid
from segmap.pipeline.batch import discover, run_batch, write_batch_report
from segmap.pipeline.executors import make_executor
from test_convert_truth import TruthROI

VALUES = dict(syn.PHANTOM_REGION_VALUES)
"""The phantom's region map: values 1, 10, 20, ..., so every layout must renumber."""
TENFOLD = 10 ** (1 / 3)
"""Spacing factor that makes every region ten times its volume (same voxel counts)."""


@dataclass
class BuiltCase:
    """A batch case: where its series is, its subject and its truth (map values)."""

    key: str
    series: syn.WrittenSeries
    subject: str
    truth: list[TruthROI]
    grid: VoxelGrid

    @property
    def series_folder(self) -> Path:
        """Where the CT files are."""
        return self.series.folder


@dataclass
class BuiltTree:
    """A converted batch tree and what the test planted in it."""

    inputs: Path
    out: Path
    map_path: Path
    cases: dict[str, BuiltCase] = field(default_factory=dict)
    planted: dict[str, str] = field(default_factory=dict)


def _truth(rois: tuple[syn.SyntheticROI, ...]) -> list[TruthROI]:
    by_name = {r.name: r for r in rois}
    return [
        TruthROI(v, [c.points_lps for c in by_name[n].contours])
        for n, v in VALUES.items()
        if n in by_name
    ]


def shifted(
    rois: tuple[syn.SyntheticROI, ...], mm: tuple[float, float, float]
) -> tuple[syn.SyntheticROI, ...]:
    """``rois`` moved by ``mm`` (LPS), on the same slices."""
    d = np.asarray(mm, dtype=float)
    return tuple(
        syn.SyntheticROI(
            r.name,
            r.color_rgb,
            tuple(syn.SyntheticContour(c.points_lps + d, c.slice_index) for c in r.contours),
            r.hu,
        )
        for r in rois
    )


def add_case(
    tree: BuiltTree,
    name: str,
    seed: int,
    patient: str,
    grid: VoxelGrid,
    *,
    drop: tuple[str, ...] = (),
    extra: tuple[syn.SyntheticROI, ...] = (),
    patient_position: str = "HFS",
) -> tuple[syn.WrittenSeries, tuple[syn.SyntheticROI, ...]]:
    """Write a phantom case at ``inputs/name`` (``ct/``, ``rtstruct.dcm``)."""
    root = tree.inputs / name
    identity = syn.StudyIdentity.generate(seed, patient)
    volume = syn.render_phantom_ct(grid, noise_hu=0.0, seed=seed)
    series = syn.write_ct_series(
        root / "ct", grid, volume, identity=identity, seed=seed, patient_position=patient_position
    )
    rois = tuple(r for r in syn.phantom_rois(grid) if r.name not in drop)
    syn.write_rtstruct(root / "rtstruct.dcm", series, rois + extra, seed=seed)
    tree.cases[f"{name}/rtstruct"] = BuiltCase(
        f"{name}/rtstruct", series, patient, _truth(rois), grid
    )
    return series, rois


def add_collection(
    tree: BuiltTree,
    name: str,
    series: syn.WrittenSeries,
    rois: tuple[syn.SyntheticROI, ...],
    seed: int,
    grid: VoxelGrid,
) -> str:
    """A second RTSTRUCT on a case's series (``inputs/name/second.dcm``)."""
    syn.write_rtstruct(
        tree.inputs / name / "second.dcm", series, rois, seed=seed, label="second reader"
    )
    key = f"{name}/second"
    tree.cases[key] = BuiltCase(key, series, series.identity.patient_id, _truth(rois), grid)
    return key


def convert_tree(
    tree: BuiltTree, spacing: tuple[float, float, float] | None = None, out: Path | None = None
) -> Path:
    """Convert every case of the tree with ``run_batch`` (two local workers)."""
    out = out or tree.out
    options = {"spacing": spacing, "preview": False}
    with make_executor(2) as executor:
        result = run_batch(discover(tree.inputs), tree.map_path, out, executor, options)
    write_batch_report(result, out)
    assert not result.failed, [o.error for o in result.failed]
    return out


def new_tree(root: Path) -> BuiltTree:
    """An empty tree under ``root`` with the phantom's region map."""
    tree = BuiltTree(root / "in", root / "out", root / "region2MaskValueMap.txt")
    syn.write_region_map(tree.map_path, VALUES)
    return tree


def plant_value(mask_path: Path, value: int) -> None:
    """Rewrite a mask with a few voxels of ``value`` (as a hand edit in another tool would)."""
    image = nib.load(str(mask_path))
    data = np.asarray(image.dataobj).copy()
    data[:3, :3, 0] = value
    edited = nib.Nifti1Image(data, image.affine, header=image.header)
    temp = mask_path.with_name(".edited.nii.gz")
    nib.save(edited, temp)
    os.replace(temp, mask_path)


def native_tree(root: Path) -> BuiltTree:
    """The QA tree, converted on each scan's own grid.

    ``alice`` (PAT001) has two studies; ``carol`` (PAT002) two collections on one scan,
    the second shifted 3 mm; ``dave`` lacks the Spleen and has a Stomach the map does not
    hold; ``erin`` is ten times every volume; ``frank``'s mask is edited to hold value 7.
    The others differ a little in size, so volumes differ a little.
    """
    tree = new_tree(root)
    ax = syn.axial_grid
    add_case(tree, "alice/study1", 1, "PAT001", ax((48, 40, 8), (1.5, 1.5, 3.0)))
    add_case(tree, "alice/study2", 11, "PAT001", ax((50, 42, 8), (1.5, 1.5, 3.0)))
    carol_grid = ax((46, 40, 8), (1.5, 1.5, 3.0))
    series, rois = add_case(tree, "carol", 3, "PAT002", carol_grid)
    tree.planted["first_collection"] = "carol/rtstruct"
    tree.planted["second_collection"] = add_collection(
        tree, "carol", series, shifted(rois, (3.0, 0.0, 0.0)), 33, carol_grid
    )
    liver = next(r for r in syn.phantom_rois(ax((52, 44, 8), (1.5, 1.5, 3.0))) if r.name == "Liver")
    stomach = syn.SyntheticROI("Stomach", (200, 200, 0), liver.contours)
    add_case(
        tree,
        "dave",
        4,
        "PAT003",
        ax((52, 44, 8), (1.5, 1.5, 3.0)),
        drop=("Spleen",),
        extra=(stomach,),
    )
    tree.planted["missing"] = "dave/rtstruct"
    add_case(
        tree, "erin", 5, "PAT004", ax((48, 44, 8), (1.5 * TENFOLD, 1.5 * TENFOLD, 3.0 * TENFOLD))
    )
    tree.planted["tenfold"] = "erin/rtstruct"
    add_case(tree, "gina", 7, "PAT005", ax((44, 40, 8), (1.5, 1.5, 3.0)))
    add_case(tree, "frank", 6, "PAT006", ax((48, 42, 8), (1.5, 1.5, 3.0)))
    tree.planted["unexpected"] = "frank/rtstruct"
    convert_tree(tree)
    plant_value(tree.out / "frank" / "rtstruct" / "mask.nii.gz", 7)
    return tree


def resampled_tree(root: Path, spacing: tuple[float, float, float]) -> BuiltTree:
    """Four scans on four different grids (one oblique, one feet first), converted with
    ``spacing``."""
    tree = new_tree(root)
    add_case(tree, "p1", 101, "PAT101", syn.axial_grid((48, 40, 8), (1.5, 1.5, 3.0)))
    add_case(tree, "p2", 102, "PAT102", syn.axial_grid((40, 36, 10), (1.8, 1.8, 2.5)))
    add_case(tree, "p3", 103, "PAT103", syn.oblique_grid((44, 40, 8), (1.6, 1.6, 3.2)))
    add_case(
        tree,
        "p4",
        104,
        "PAT104",
        syn.axial_grid((36, 32, 6), (2.0, 2.0, 4.0), patient_position="FFS"),
        patient_position="FFS",
    )
    convert_tree(tree, spacing)
    return tree
