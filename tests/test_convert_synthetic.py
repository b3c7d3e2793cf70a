"""End-to-end conversion of synthetic series with known truth, voxel for voxel.

Every case writes a CT series and an RTSTRUCT with :mod:`segmap.testing`, runs
the conversion, reads the NIfTI files back with nibabel, and compares them with a truth
computed here: voxel centres from the NIfTI affine (RAS -> LPS), contours from the
synthetic ROIs (the exact coordinates written to the file), and the even-odd
point-in-polygon test of ``test_convert_truth``. Voxel centres within 1e-6 mm of a contour
edge, widened by the float32 rounding NIfTI-1 applies to its affine (measured per case
against the DICOM headers), are not judged.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from segmap import testing as syn
from segmap.imaging.grid import VoxelGrid
from segmap.pipeline.convert import ConvertOptions, convert
from test_convert_truth import TruthROI, dicom_voxel_to_lps, truth_labels_ijk

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

CASES = {
    # name: (grid, patient position); axial grids use spacings and origins exact in
    # float32, so their NIfTI affine is exact and the edge tolerance stays 1e-6 mm.
    "axial_hfs_square": (syn.axial_grid((64, 56, 16), (0.75, 0.75, 2.5)), "HFS"),
    "axial_ffs_nonsquare": (
        syn.axial_grid((60, 44, 14), (0.625, 1.25, 3.0), patient_position="FFS"),
        "FFS",
    ),
    "oblique_nonsquare": (syn.oblique_grid((58, 46, 15), (0.9, 1.3, 2.5)), "HFS"),
    "coronal": (
        syn.oblique_grid((50, 40, 12), (1.1, 0.8, 3.0), angles_deg=(90.0, 0.0, 0.0)),
        "HFS",
    ),
}


def _truth_rois(rois: tuple[syn.SyntheticROI, ...], values: dict[str, int]) -> list[TruthROI]:
    by_name = {r.name: r for r in rois}
    return [
        TruthROI(v, [c.points_lps for c in by_name[n].contours])
        for n, v in values.items()
        if n in by_name
    ]


def _nifti(path: Path) -> tuple[np.ndarray, np.ndarray, nib.Nifti1Image]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine, img


def _affine_error_mm(
    affine_ras: np.ndarray, dicom_lps: np.ndarray, shape: tuple[int, ...]
) -> float:
    """Largest distance between NIfTI and DICOM positions of the grid's corner voxels."""
    corners = np.array(
        [
            [i, j, k, 1.0]
            for i in (0, shape[0] - 1)
            for j in (0, shape[1] - 1)
            for k in (0, shape[2] - 1)
        ]
    )
    a = (LPS_FROM_RAS @ affine_ras) @ corners.T
    b = dicom_lps @ corners.T
    return float(np.max(np.linalg.norm((a - b)[:3], axis=0)))


def _check_against_truth(mask_path: Path, case: syn.SyntheticCase) -> tuple[np.ndarray, np.ndarray]:
    data, affine, _ = _nifti(mask_path)
    dicom_lps, shape = dicom_voxel_to_lps(case.series.folder)
    assert data.shape == shape
    eps = 1e-6 + _affine_error_mm(affine, dicom_lps, shape)
    assert eps < 1e-3  # NIfTI float32 rounding only
    truth, ambiguous = truth_labels_ijk(
        affine, shape, _truth_rois(case.rois, case.region_values), edge_eps_mm=eps
    )
    judged = ~ambiguous
    wrong = np.argwhere((data != truth) & judged)
    assert wrong.size == 0, (
        f"{len(wrong)} voxels differ from the truth, e.g. (i,j,k)={wrong[:5].tolist()} "
        f"mask={data[tuple(wrong[0])]} truth={truth[tuple(wrong[0])]}"
    )
    assert ambiguous.sum() < 0.001 * data.size
    return data, truth


@pytest.fixture(scope="module", params=sorted(CASES))
def converted(request, tmp_path_factory):
    name = request.param
    grid, position = CASES[name]
    root = tmp_path_factory.mktemp(name)
    case = syn.make_case(root / "in", grid, patient_position=position, seed=len(name))
    result = convert(
        case.region_map_path, case.series.folder, case.rtstruct_path, root / "out", ConvertOptions()
    )
    return name, case, result, root / "out"


def test_mask_matches_independent_truth_voxel_for_voxel(converted):
    name, case, result, out = converted
    data, truth = _check_against_truth(out / "mask.nii.gz", case)
    # Every phantom region made it into the mask, including the lesion inside the liver.
    for label, value in case.region_values.items():
        assert (data == value).sum() > 0, f"{name}: {label} missing"
    # The aorta has a hole: its lumen (inside the outer contour) is not aorta.
    assert set(np.unique(data)) <= {0, *case.region_values.values()}


def test_outputs_and_report_contents(converted):
    name, case, result, out = converted
    assert sorted(p.name for p in out.iterdir()) == [
        "image.nii.gz",
        "mask.nii.gz",
        "preview.png",
        "report.json",
    ]
    report = json.loads((out / "report.json").read_text())
    data, _, _ = _nifti(out / "mask.nii.gz")
    assert report["inputs"]["image"]["series_instance_uid"] == case.series.series_instance_uid
    assert report["inputs"]["annotation"]["modality"] == "RTSTRUCT"
    assert report["region_map"]["sha256"] == result.report.region_map.sha256
    by_label = {lab["label"]: lab for lab in report["labels"]}
    for label, value in case.region_values.items():
        assert by_label[label]["voxels"] == int((data == value).sum())
        assert by_label[label]["present"] is True
    body = next(r for r in report["regions"] if r["name"] == "Body")
    # The body overhangs the image left and right on every slice: clipped, not dropped.
    assert body["contours"]["clipped_at_image_edge"] == body["contours"]["used"] > 0
    assert body["contours"]["skipped"] == 0
    assert report["unmatched"] == [] and report["absent_labels"] == []
    # The lesion lies inside the liver: their overlap is counted and the lesion wins.
    pairs = {(o["first"], o["second"]): o for o in report["overlaps"]}
    assert pairs[("Liver", "Lesion")]["voxels"] > 0
    assert pairs[("Liver", "Lesion")]["winner"] == "Lesion"
    kinds = {o["name"]: o for o in report["outputs"]}
    assert set(kinds) == {"mask.nii.gz", "image.nii.gz", "preview.png"}
    assert kinds["mask.nii.gz"]["grid"]["size_ijk"] == list(data.shape)
    for stage in ("read_annotation", "load_series", "place_regions", "paint", "total"):
        assert stage in report["timings_s"]
    assert report["segmap_version"]


def test_nifti_world_positions_and_image_values(converted):
    """Image voxel (i, j, k) holds the DICOM pixel at that point: row j, column i of the
    slice whose ImagePositionPatient the affine puts at k."""
    name, case, result, out = converted
    image, affine, img = _nifti(out / "image.nii.gz")
    mask, mask_affine, mimg = _nifti(out / "mask.nii.gz")
    assert np.array_equal(affine, mask_affine)
    for im in (img, mimg):
        assert int(im.header["qform_code"]) == 1 and int(im.header["sform_code"]) == 1
        assert np.allclose(im.get_qform(), im.get_sform(), atol=1e-4)
    dicom_lps, shape = dicom_voxel_to_lps(case.series.folder)
    assert _affine_error_mm(affine, dicom_lps, shape) < 1e-4
    to_index = np.linalg.inv(LPS_FROM_RAS @ affine)
    for f in case.series.files:
        ds = pydicom.dcmread(f)
        ijk = to_index @ np.r_[np.asarray(ds.ImagePositionPatient, float), 1.0]
        assert np.allclose(ijk[:2], 0.0, atol=1e-4)
        k = int(round(ijk[2]))
        assert abs(ijk[2] - k) < 1e-4
        hu = ds.pixel_array.astype(np.int32) * int(ds.RescaleSlope) + int(ds.RescaleIntercept)
        assert np.array_equal(image[:, :, k], hu.T)  # pixel_array is [row j, column i]


def test_resampled_outputs_hold_map_values_on_the_requested_grid(converted, tmp_path):
    name, case, result, _ = converted
    spacing = (1.0, 1.0, 1.0)
    convert(
        case.region_map_path,
        case.series.folder,
        case.rtstruct_path,
        tmp_path / "o",
        ConvertOptions(spacing=spacing),
    )
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == [
        "image_resampled.nii.gz",
        "mask.nii.gz",
        "mask_resampled.nii.gz",
        "preview.png",
        "report.json",
    ]
    native, native_affine, _ = _nifti(tmp_path / "o" / "mask.nii.gz")
    mask_r, aff_r, _ = _nifti(tmp_path / "o" / "mask_resampled.nii.gz")
    image_r, aff_ir, _ = _nifti(tmp_path / "o" / "image_resampled.nii.gz")
    assert np.array_equal(aff_r, aff_ir) and mask_r.shape == image_r.shape
    assert set(np.unique(mask_r)) <= {0, *case.region_values.values()}
    # Same origin and direction, requested spacing, same physical extent within half a voxel.
    lps_n, lps_r = LPS_FROM_RAS @ native_affine, LPS_FROM_RAS @ aff_r
    assert np.allclose(lps_r[:3, 3], lps_n[:3, 3], atol=1e-4)
    assert np.allclose(np.linalg.norm(lps_r[:3, :3], axis=0), spacing, atol=1e-5)
    dir_n = lps_n[:3, :3] / np.linalg.norm(lps_n[:3, :3], axis=0)
    assert np.allclose(lps_r[:3, :3] / spacing, dir_n, atol=1e-5)
    ext_n = np.array(native.shape) * np.linalg.norm(lps_n[:3, :3], axis=0)
    assert np.all(np.abs(np.array(mask_r.shape) * spacing - ext_n) <= np.array(spacing) / 2 + 1e-6)
    # Nearest neighbour: each resampled voxel holds the native voxel its centre falls in.
    to_native = np.linalg.inv(lps_n) @ lps_r
    idx = np.argwhere(np.ones(mask_r.shape, bool))
    cont = idx @ to_native[:3, :3].T + to_native[:3, 3]
    frac = np.abs(cont - np.round(cont))
    near = np.round(cont).astype(int)
    inside = np.all((near >= 0) & (near < np.array(native.shape)), axis=1)
    clear = inside & np.all(np.abs(frac - 0.5) > 1e-3, axis=1)
    got = mask_r[tuple(idx[clear].T)]
    want = native[tuple(near[clear].T)]
    assert np.array_equal(got, want)


def test_linear_field_is_reproduced_by_linear_resampling(tmp_path):
    # f = 3 i - 2 j + 5 k - 200 HU on an oblique, non-square grid: trilinear interpolation
    # reproduces a linear function exactly, up to the rounding to whole HU on output.
    grid = syn.oblique_grid((30, 26, 12), (0.8, 1.2, 2.0), angles_deg=(8.0, 14.0, -21.0))
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in grid.array_shape), indexing="ij")
    field = 3 * ii - 2 * jj + 5 * kk - 200
    series = syn.write_ct_series(tmp_path / "ct", grid, field, seed=7)
    rois = syn.phantom_rois(grid)
    syn.write_rtstruct(tmp_path / "rt.dcm", series, rois, seed=7)
    syn.write_region_map(tmp_path / "map.txt", syn.PHANTOM_REGION_VALUES)
    spacing = (0.7, 0.9, 1.3)
    convert(
        tmp_path / "map.txt",
        series.folder,
        tmp_path / "rt.dcm",
        tmp_path / "o",
        ConvertOptions(spacing=spacing, interp="linear", preview=False),
    )
    img, aff, _ = _nifti(tmp_path / "o" / "image_resampled.nii.gz")
    dicom_lps, shape = dicom_voxel_to_lps(series.folder)
    src_from_dst = np.linalg.inv(dicom_lps) @ (LPS_FROM_RAS @ aff)
    idx = np.argwhere(np.ones(img.shape, bool))
    c = idx @ src_from_dst[:3, :3].T + src_from_dst[:3, 3]
    inside = np.all((c >= -1e-6) & (c <= np.array(shape) - 1 + 1e-6), axis=1)
    assert inside.mean() > 0.8
    expected = 3 * c[:, 0] - 2 * c[:, 1] + 5 * c[:, 2] - 200
    got = img[tuple(idx[inside].T)].astype(float)
    # 0.5 for the rounding to whole HU; 1e-3 for the float32 affine NIfTI-1 stores.
    assert np.max(np.abs(got - expected[inside])) <= 0.5 + 1e-3


def test_shuffled_files_and_instance_numbers_do_not_matter(tmp_path):
    grid = syn.axial_grid((40, 36, 12), (0.75, 0.75, 2.5))
    a = syn.make_case(tmp_path / "a", grid, shuffle=False, seed=3)
    b = syn.make_case(tmp_path / "b", grid, shuffle=True, seed=3)
    inst = [int(pydicom.dcmread(f, stop_before_pixels=True).InstanceNumber) for f in b.series.files]
    assert inst != sorted(inst)  # the shuffled case really is out of order
    ra = convert(a.region_map_path, a.series.folder, a.rtstruct_path, tmp_path / "oa")
    rb = convert(b.region_map_path, b.series.folder, b.rtstruct_path, tmp_path / "ob")
    assert np.array_equal(ra.labels_kji, rb.labels_kji)
    _check_against_truth(tmp_path / "ob" / "mask.nii.gz", b)


def test_contours_off_plane_and_on_a_missing_slice_are_skipped_and_counted(tmp_path):
    grid = syn.axial_grid((48, 40, 12), (0.75, 0.75, 2.5))
    case = syn.make_case(tmp_path / "in", grid, seed=5)
    liver = next(r for r in case.rois if r.name == "Liver")
    # One extra contour halfway between two slice planes, one open contour.
    between = liver.contours[0].points_lps + 0.5 * grid.spacing[2] * grid.slice_normal_lps
    extra = (
        syn.SyntheticContour(
            between, None, referenced_sop_instance_uid=case.series.sop_instance_uids[0]
        ),
        syn.SyntheticContour(
            liver.contours[1].points_lps,
            liver.contours[1].slice_index,
            geometric_type="OPEN_PLANAR",
        ),
    )
    rois = tuple(
        replace(r, contours=r.contours + extra) if r.name == "Liver" else r for r in case.rois
    )
    syn.write_rtstruct(case.rtstruct_path, case.series, rois, seed=5)
    # Remove the top slice from the series: contours drawn there now point at a missing
    # image and lie beyond the last plane.
    top = case.series.files[-1]
    top.unlink()
    on_top = {
        r.name: sum(1 for c in r.contours if c.slice_index == grid.size[2] - 1) for r in case.rois
    }
    out = tmp_path / "out"
    convert(case.region_map_path, case.series.folder, case.rtstruct_path, out)
    report = json.loads((out / "report.json").read_text())
    for r in report["regions"]:
        c = r["contours"]
        expect_off = on_top[r["name"]] + (1 if r["name"] == "Liver" else 0)
        assert c["skipped_by_reason"]["off_every_slice_plane"] == expect_off, r["name"]
        assert c["referencing_images_not_in_series"] == on_top[r["name"]]
        assert c["skipped_by_reason"]["open"] == (1 if r["name"] == "Liver" else 0)
        assert c["used"] == c["total"] - c["skipped"]
    # The rest of each ROI is kept: the mask equals the truth on the remaining slices.
    kept = replace(
        case,
        rois=tuple(
            replace(r, contours=tuple(c for c in r.contours if c.slice_index != grid.size[2] - 1))
            for r in case.rois
        ),
    )
    _check_against_truth(out / "mask.nii.gz", kept)


def test_rtstruct_referencing_other_series_in_same_folder_is_chosen(tmp_path):
    # Two series in one folder (same frame of reference); the RTSTRUCT names the second.
    grid = syn.axial_grid((40, 32, 10), (0.75, 0.75, 2.5))
    ident = syn.StudyIdentity.generate(11)
    vol = syn.render_phantom_ct(grid, seed=1)
    first = syn.write_ct_series(
        tmp_path / "ct", grid, vol, identity=ident, seed=1, series_number=2, file_prefix="a"
    )
    other_grid = syn.axial_grid((40, 32, 10), (0.75, 0.75, 2.0))
    second = syn.write_ct_series(
        tmp_path / "ct",
        other_grid,
        syn.render_phantom_ct(other_grid, seed=2),
        identity=ident,
        seed=1,
        series_number=3,
        file_prefix="b",
        frame_of_reference_uid=first.frame_of_reference_uid,
    )
    rois = syn.phantom_rois(other_grid)
    syn.write_rtstruct(tmp_path / "rt.dcm", second, rois, seed=2)
    syn.write_region_map(tmp_path / "map.txt", syn.PHANTOM_REGION_VALUES)
    res = convert(
        tmp_path / "map.txt",
        tmp_path / "ct",
        tmp_path / "rt.dcm",
        tmp_path / "o",
        ConvertOptions(mask_only=True),
    )
    assert res.report.inputs.image.series_instance_uid == second.series_instance_uid
    assert res.grid.size == other_grid.size
    assert isinstance(res.grid, VoxelGrid)
