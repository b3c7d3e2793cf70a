"""Real DICOM files from public repositories through ``segmap convert``.

Expected values come from each folder's SOURCE.txt (checked there against the source
repositories' own ground truth) or are recomputed here from the files with pydicom and
the independent even-odd test of ``test_convert_truth``, never from segmap's output.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest

from segmap.cli import main
from test_convert_truth import TruthROI, truth_labels_ijk

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _map(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "region2MaskValueMap.txt"
    p.write_text(text, encoding="utf-8")
    return p


def _run(capsys, *args: object) -> tuple[int, str, str]:
    code = main(["convert", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(str(path))
    return np.asarray(img.dataobj), img.affine


def _k_of_position(affine_ras: np.ndarray, position_lps) -> int:
    ijk = np.linalg.inv(LPS_FROM_RAS @ affine_ras) @ np.r_[np.asarray(position_lps, float), 1.0]
    k = int(round(ijk[2]))
    assert abs(ijk[2] - k) < 1e-3 and np.allclose(ijk[:2], 0, atol=1e-3)
    return k


def _independent_seg(
    path: Path, affine_ras: np.ndarray, shape: tuple[int, int, int], threshold: float = 0.5
) -> dict[int, np.ndarray]:
    """Segment number -> boolean ``[i, j, k]`` volume, decoded with pydicom and placed by
    each frame's ImagePositionPatient through the NIfTI affine."""
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    seg_type = str(ds.get("SegmentationType", "")).upper()
    out: dict[int, np.ndarray] = {}
    for n, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        k = _k_of_position(affine_ras, fg.PlanePositionSequence[0].ImagePositionPatient)
        frame = frames[n]
        if seg_type == "LABELMAP":
            pad = ds.get("PixelPaddingValue")
            for number in {int(s.SegmentNumber) for s in ds.SegmentSequence} - {0}:
                hit = (frame == number) & (frame != pad if pad is not None else True)
                out.setdefault(number, np.zeros(shape, bool))[:, :, k] |= hit.T
            continue
        number = int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        if seg_type == "FRACTIONAL":
            hit = frame.astype(float) / float(ds.MaximumFractionalValue) >= threshold
        else:
            hit = frame > 0
        out.setdefault(number, np.zeros(shape, bool))[:, :, k] |= hit.T
    return out


# --- SEG ----------------------------------------------------------------------------------


def test_ct3slice_liver_has_the_reference_voxel_counts(testdata, tmp_path, capsys):
    d = testdata / "dcmqi-ct3slice-seg"
    code, out, err = _run(
        capsys,
        "--map",
        _map(tmp_path, "Liver=1\n"),
        "--image",
        d / "ct",
        "--rois",
        d / "seg" / "liver.dcm",
        "--out",
        tmp_path / "out",
    )
    assert code == 0, err
    mask, affine = _load(tmp_path / "out" / "mask.nii.gz")
    assert int((mask == 1).sum()) == 107098
    # SOURCE.txt per slice: z=-128.69/-127.69/-126.69 -> 36233/35645/35220.
    per_z = {}
    for k in range(mask.shape[2]):
        z = (LPS_FROM_RAS @ affine @ [0, 0, k, 1])[2]
        per_z[round(float(z), 2)] = int((mask[:, :, k] == 1).sum())
    assert per_z == {-128.69: 36233, -127.69: 35645, -126.69: 35220}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (region,) = report["regions"]
    assert (region["name"], region["value"], region["voxels"], region["frames_used"]) == (
        "Liver",
        1,
        107098,
        3,
    )
    assert region["volume_mm3"] == pytest.approx(107098 * 0.810547**2 * 1.0, rel=1e-5)
    # The image keeps Hounsfield units: FFS CT with RescaleIntercept -1024.
    image, _ = _load(tmp_path / "out" / "image.nii.gz")
    ds = pydicom.dcmread(d / "ct" / "01.dcm")
    k = _k_of_position(affine, ds.ImagePositionPatient)
    hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    assert np.array_equal(image[:, :, k], hu.T)
    assert "Liver" in out


PARTIAL = "GREEN=1\nORANGE=2\nPURPLE=3\nLIGHT_BLUE=4\nDARK_BLUE=5\n"


def test_partial_overlaps_in_map_order(testdata, tmp_path, capsys):
    d = testdata / "dcmqi-ct3slice-seg"
    seg = d / "seg" / "partial_overlaps.dcm"
    code, _, err = _run(
        capsys,
        "--map",
        _map(tmp_path, PARTIAL),
        "--image",
        d / "ct",
        "--rois",
        seg,
        "--out",
        tmp_path / "out",
        "--overlap",
        "order",
    )
    assert code == 0, err
    mask, affine = _load(tmp_path / "out" / "mask.nii.gz")
    segs = _independent_seg(seg, affine, mask.shape)
    # SOURCE.txt: segments 1..5 hold 9602, 11888, 10743, 6693, 4713 voxels.
    assert [int(segs[n].sum()) for n in range(1, 6)] == [9602, 11888, 10743, 6693, 4713]
    expected = np.zeros(mask.shape, np.uint8)
    for n in range(1, 6):  # map order = segment order here; the later line wins
        expected[segs[n]] = n
    assert np.array_equal(mask, expected)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["voxels"] for r in report["regions"]] == [9602, 11888, 10743, 6693, 4713]
    pairs = {(o["first"], o["second"]): o["voxels"] for o in report["overlaps"]}
    names = [line.split("=")[0] for line in PARTIAL.split()]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = int((segs[i + 1] & segs[names.index(b) + 1]).sum())
            assert pairs.get((a, b), 0) == shared


def test_partial_overlaps_refused_under_error_policy(testdata, tmp_path, capsys):
    d = testdata / "dcmqi-ct3slice-seg"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("mine")
    code, out, err = _run(
        capsys,
        "--map",
        _map(tmp_path, PARTIAL),
        "--image",
        d / "ct",
        "--rois",
        d / "seg" / "partial_overlaps.dcm",
        "--out",
        out_dir,
        "--overlap",
        "error",
    )
    assert code == 1
    assert "overlap" in err and "GREEN" in err and "ORANGE" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "region2MaskValueMap.txt"]


@pytest.mark.parametrize("seg_name", ["sparse-labelmap-noppv.dcm", "sparse-labelmap-ppv5.dcm"])
def test_labelmap_seg_with_missing_middle_frame(testdata, tmp_path, capsys, seg_name):
    d = testdata / "dcmqi-tiny-nonsquare-seg" / "24x38x3"
    seg = d / "seg" / seg_name
    code, _, err = _run(
        capsys,
        "--map",
        _map(tmp_path, "Liver=9\n"),
        "--image",
        d / "image",
        "--rois",
        seg,
        "--out",
        tmp_path / "out",
        "--mask-only",
    )
    assert code == 0, err
    mask, affine = _load(tmp_path / "out" / "mask.nii.gz")
    assert mask.shape == (24, 38, 3)  # columns, rows, slices: Rows != Columns
    expected = _independent_seg(seg, affine, mask.shape)[1]
    assert expected[:, :, 1].sum() == 0 and expected.sum() > 0
    assert np.array_equal(mask == 9, expected)
    assert set(np.unique(mask)) == {0, 9}
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    (region,) = report["regions"]
    assert region["frames_used"] == 2 and region["voxels"] == int(expected.sum())


def test_non_byte_aligned_binary_frames(testdata, tmp_path, capsys):
    d = testdata / "dcmqi-tiny-nonsquare-seg" / "23x38x3"
    code, _, err = _run(
        capsys,
        "--map",
        _map(tmp_path, "Liver=1\n"),
        "--image",
        d / "image",
        "--rois",
        d / "seg" / "label.seg.dcm",
        "--out",
        tmp_path / "out",
    )
    assert code == 0, err
    mask, _ = _load(tmp_path / "out" / "mask.nii.gz")
    assert mask.shape == (23, 38, 3)
    # SOURCE.txt: 322 voxels, per slice 4/314/4.
    assert int(mask.sum()) == 322
    assert sorted(int(mask[:, :, k].sum()) for k in range(3)) == [4, 4, 314]


def test_irregular_series_refused_then_fixed_up(testdata, tmp_path, capsys):
    d = testdata / "highdicom-pydicom-ct2-seg"
    seg = d / "seg" / "seg_image_ct_binary.dcm"
    m = _map(tmp_path, "first segment=7\n")
    code, _, err = _run(
        capsys, "--map", m, "--image", d / "ct2", "--rois", seg, "--out", tmp_path / "refused"
    )
    assert code == 1
    assert "17106.dcm" in err and "17136.dcm" in err and "Traceback" not in err
    assert not (tmp_path / "refused").exists()
    code, _, err = _run(
        capsys,
        "--map",
        m,
        "--image",
        d / "ct2",
        "--rois",
        seg,
        "--out",
        tmp_path / "out",
        "--fixup",
    )
    assert code == 0, err
    mask, affine = _load(tmp_path / "out" / "mask.nii.gz")
    # SOURCE.txt: slices ordered by z hold 0/127/256/255 voxels.
    counts = {}
    for f in sorted((d / "ct2").iterdir()):
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        k = _k_of_position(affine, ds.ImagePositionPatient)
        counts[float(ds.ImagePositionPatient[2])] = int((mask[:, :, k] == 7).sum())
    assert [counts[z] for z in sorted(counts)] == [0, 127, 256, 255]
    assert int((mask == 7).sum()) == 638
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["fixups"] and "uneven" in report["fixups"][0].lower()


@pytest.mark.parametrize("threshold", [0.5, 0.01, 0.6])
def test_fractional_threshold(testdata, tmp_path, capsys, threshold):
    d = testdata / "highdicom-pydicom-ct2-seg"
    seg = d / "seg" / "seg_image_ct_true_fractional.dcm"
    code, _, err = _run(
        capsys,
        "--map",
        _map(tmp_path, "first segment=3\n"),
        "--image",
        d / "ct2",
        "--rois",
        seg,
        "--out",
        tmp_path / "out",
        "--fixup",
        "--threshold",
        threshold,
        "--mask-only",
    )
    assert code == 0, err
    mask, affine = _load(tmp_path / "out" / "mask.nii.gz")
    expected = _independent_seg(seg, affine, mask.shape, threshold)[1]
    assert np.array_equal(mask == 3, expected)
    if threshold == 0.01:
        assert int(expected.sum()) == 149 + 256 + 256  # SOURCE.txt: nonzero 0/149/256/256


# --- RTSTRUCT -------------------------------------------------------------------------------


def _rtstruct_contours(path: Path) -> dict[str, list[np.ndarray]]:
    ds = pydicom.dcmread(path)
    names = {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}
    out: dict[str, list[np.ndarray]] = {}
    for rc in ds.ROIContourSequence:
        pts = [np.asarray(c.ContourData, float).reshape(-1, 3) for c in rc.ContourSequence]
        out[names[int(rc.ReferencedROINumber)]] = pts
    return out


def test_mim_rtstruct_contours_on_missing_slice_skipped_rest_kept(testdata, tmp_path, capsys):
    d = testdata / "rtutils-mim-rtstruct"
    rt = d / "rtstruct" / "dummy_rt_MIM.dcm"
    roi_map = "ROI-1=1\nROI-2=2\nROI-3=3\nROI-4=4\n"
    code, out, err = _run(
        capsys,
        "--map",
        _map(tmp_path, roi_map),
        "--image",
        d / "ct",
        "--rois",
        rt,
        "--out",
        tmp_path / "out",
    )
    assert code == 0, err
    mask, affine = _load(tmp_path / "out" / "mask.nii.gz")
    contours = _rtstruct_contours(rt)
    rois = [TruthROI(v, contours[f"ROI-{v}"]) for v in range(1, 5)]
    truth, ambiguous = truth_labels_ijk(affine, mask.shape, rois)
    assert np.array_equal(mask[~ambiguous], truth[~ambiguous])
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    z_of_k = {k: round(float((LPS_FROM_RAS @ affine @ [0, 0, k, 1])[2]), 1) for k in range(2)}
    # platipy's vertex-rounding rasteriser (SOURCE.txt) within a boundary ring of it.
    platipy = {1: (3090, 2070), 2: (1493, 2380), 3: (2853, 1855), 4: (2593, 4702)}
    for r in report["regions"]:
        v = r["value"]
        assert r["contours"]["total"] == 3
        assert r["contours"]["used"] == 2
        assert r["contours"]["skipped_by_reason"]["off_every_slice_plane"] == 1
        assert r["contours"]["referencing_images_not_in_series"] == 1
        assert r["voxels"] == int((truth == v).sum()) + int(((mask == v) & ambiguous).sum())
        per_z = {z_of_k[k]: int((mask[:, :, k] == v).sum()) for k in range(2)}
        for z, ref in zip((60.0, 65.0), platipy[v], strict=True):
            assert abs(per_z[z] - ref) / ref < 0.08
    assert "off every slice plane" in out


def test_frame_of_reference_mismatch_is_refused(testdata, tmp_path, capsys):
    d = testdata / "rtutils-mim-rtstruct"
    out_dir = tmp_path / "does" / "not" / "exist"
    code, out, err = _run(
        capsys,
        "--map",
        _map(tmp_path, "ROI-1=1\n"),
        "--image",
        d / "ct",
        "--rois",
        d / "rtstruct" / "rt_qurit_FoR_mismatch.dcm",
        "--out",
        out_dir,
    )
    assert code == 1
    assert "frame of reference" in err and "rt_qurit_FoR_mismatch.dcm" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "does").exists()


# --- mask-only never decodes pixels -----------------------------------------------------------


def test_mask_only_does_not_decode_pixel_data(testdata, tmp_path, capsys):
    d = testdata / "dcmqi-ct3slice-seg"
    broken = tmp_path / "ct"
    broken.mkdir()
    for f in sorted((d / "ct").iterdir()):
        data = f.read_bytes()
        ds = pydicom.dcmread(f)
        pixel_bytes = len(ds.PixelData)
        # Cut every file in the middle of its pixel data: headers intact, pixels unreadable.
        (broken / f.name).write_bytes(data[: len(data) - pixel_bytes // 2])
    with pytest.raises(Exception):  # noqa: B017 - proof that the pixels really are broken
        pydicom.dcmread(broken / "01.dcm").pixel_array  # noqa: B018
    m = _map(tmp_path, "Liver=1\n")
    seg = d / "seg" / "liver.dcm"
    code, _, err = _run(
        capsys,
        "--map",
        m,
        "--image",
        broken,
        "--rois",
        seg,
        "--out",
        tmp_path / "mask_only",
        "--mask-only",
    )
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "mask_only").iterdir()) == [
        "mask.nii.gz",
        "report.json",
    ]
    mask, _ = _load(tmp_path / "mask_only" / "mask.nii.gz")
    assert int(mask.sum()) == 107098
    # A full conversion has to read the pixels, fails with a clear message, writes nothing.
    code, _, err = _run(
        capsys, "--map", m, "--image", broken, "--rois", seg, "--out", tmp_path / "full"
    )
    assert code == 1 and "Traceback" not in err
    assert "01.dcm" in err or "02.dcm" in err or "03.dcm" in err
    assert not (tmp_path / "full").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_failure_after_mask_written_leaves_existing_outputs_untouched(testdata, tmp_path, capsys):
    """A second run into a folder that holds a previous result, failing late (pixel data),
    leaves the previous files byte for byte."""
    d = testdata / "dcmqi-ct3slice-seg"
    m = _map(tmp_path, "Liver=1\n")
    seg = d / "seg" / "liver.dcm"
    out_dir = tmp_path / "out"
    code, _, err = _run(capsys, "--map", m, "--image", d / "ct", "--rois", seg, "--out", out_dir)
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in out_dir.iterdir()}
    broken = tmp_path / "ct"
    shutil.copytree(d / "ct", broken)
    victim = broken / "02.dcm"
    victim.write_bytes(victim.read_bytes()[:-1000])
    code, _, err = _run(
        capsys,
        "--map",
        _map(tmp_path, "Liver=2\n"),
        "--image",
        broken,
        "--rois",
        seg,
        "--out",
        out_dir,
    )
    assert code == 1
    assert {p.name: p.read_bytes() for p in out_dir.iterdir()} == before
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
