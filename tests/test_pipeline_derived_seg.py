"""The derived DICOM SEG of a conversion: what it holds and that it reads back as the mask.

Each SEG written here is read three ways: by segmap's own SEG reader (a second
conversion with the SEG as the ROI input and the same map, which must give the same
composite voxel for voxel), by highdicom (``segread``, pixels by source instance), and by
a decoder written here with pydicom alone, which places every frame on the slice of the
image it references (slices sorted here along ``row x column`` from the image headers)
and checks each frame's geometry against that image's header. The phantom cases also
compare the SEG with the independent polygon truth of ``test_convert_truth``.
"""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

import segmap
from segmap import testing as syn
from segmap.cli import main
from segmap.imaging.series import load_series
from segmap.labelmap import RegionMap, read_region_map
from segmap.labelmap.palette import colour_for_value
from segmap.pipeline.convert import ConvertOptions, convert
from segmap.pipeline.derived_seg import SegKind, build_derived_seg
from segmap.pipeline.derived_seg_segments import DerivedSegError
from test_convert_truth import TruthROI, truth_labels_ijk

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
LABELMAP_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.7"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

# Colours for two of the phantom's values, written into the map as comments.
MAP_COLOURS = {10: (221, 130, 101), 60: (12, 200, 250)}

CASES = {
    "axial_hfs_square": syn.axial_grid((48, 40, 12), (0.75, 0.75, 2.5)),
    "axial_ffs_nonsquare": syn.axial_grid((44, 36, 10), (0.625, 1.25, 3.0), patient_position="FFS"),
    "oblique_nonsquare": syn.oblique_grid((46, 38, 11), (0.9, 1.3, 2.5)),
}


# --- an independent reading of a SEG --------------------------------------------------


def _image_slices(folder: Path) -> tuple[list[pydicom.Dataset], dict[str, int]]:
    """Image headers sorted along row x column, and the slice index of each SOP UID."""
    headers = [
        pydicom.dcmread(p, stop_before_pixels=True)
        for p in folder.iterdir()
        if p.suffix == ".dcm" or p.is_file()
    ]
    headers = [h for h in headers if h.get("Modality") not in ("SEG", "RTSTRUCT")]
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    headers.sort(key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, float), normal)))
    return headers, {str(h.SOPInstanceUID): k for k, h in enumerate(headers)}


def _decode(seg_path: Path, image_folder: Path, value_of_label: dict[str, int]) -> np.ndarray:
    """The SEG as a ``[k, j, i]`` volume of map values, decoded and placed with pydicom.

    Every frame goes to the slice of the image its DerivationImageSequence names; its
    position, the shared orientation and pixel spacing must equal that image's; no voxel
    may belong to two segments.
    """
    headers, k_of = _image_slices(image_folder)
    ds = pydicom.dcmread(seg_path)
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    shared = ds.SharedFunctionalGroupsSequence[0]
    first = headers[0]
    assert np.allclose(
        shared.PlaneOrientationSequence[0].ImageOrientationPatient,
        first.ImageOrientationPatient,
        atol=1e-6,
    )
    assert np.allclose(shared.PixelMeasuresSequence[0].PixelSpacing, first.PixelSpacing)
    value_of_number = {
        int(s.SegmentNumber): value_of_label[str(s.SegmentLabel)]
        for s in ds.SegmentSequence
        if int(s.SegmentNumber) != 0
    }
    out = np.zeros((len(headers), int(first.Rows), int(first.Columns)), dtype=np.int64)
    for n, fg in enumerate(ds.PerFrameFunctionalGroupsSequence):
        (source,) = fg.DerivationImageSequence[0].SourceImageSequence
        k = k_of[str(source.ReferencedSOPInstanceUID)]
        assert np.allclose(
            fg.PlanePositionSequence[0].ImagePositionPatient,
            headers[k].ImagePositionPatient,
            atol=1e-6,
        )
        if ds.SegmentationType == "LABELMAP":
            for number, value in value_of_number.items():
                out[k][frames[n] == number] = value
            continue
        ident = fg if "SegmentIdentificationSequence" in fg else shared  # per frame or shared
        number = int(ident.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        hit = frames[n] > 0
        assert not np.any(out[k][hit]), "a voxel belongs to two segments"
        out[k][hit] = value_of_number[number]
    return out


def _cielab_rgb(item: pydicom.Dataset) -> tuple[int, int, int]:
    rgb = hd.color.CIELabColor.from_dicom_value(list(item.RecommendedDisplayCIELabValue))
    return rgb.to_rgb(clip=True)


def _read_back(map_path: Path, image_folder: Path, seg: Path, out: Path, *, fixup: bool = False):
    """A second conversion with the SEG as the ROI input (segmap's own SEG reader)."""
    return convert(map_path, image_folder, seg, out, ConvertOptions(mask_only=True, fixup=fixup))


def _highdicom_values(
    seg_path: Path, headers: list[pydicom.Dataset], value_of_label: dict[str, int]
) -> np.ndarray:
    seg = hd.seg.segread(seg_path)
    numbers = seg.get_pixels_by_source_instance(
        [str(h.SOPInstanceUID) for h in headers],
        combine_segments=True,
        assert_missing_frames_are_empty=True,
    )
    lut = np.zeros(int(numbers.max(initial=0)) + 1, dtype=np.int64)
    for item in seg.SegmentSequence:
        if int(item.SegmentNumber) < lut.size and int(item.SegmentNumber) != 0:
            lut[int(item.SegmentNumber)] = value_of_label[str(item.SegmentLabel)]
    return lut[numbers]


# --- phantom cases ----------------------------------------------------------------------


def _phantom_map(path: Path) -> Path:
    lines = [f"# segmap colour: {v} {r} {g} {b} 255" for v, (r, g, b) in MAP_COLOURS.items()]
    lines += [f"{name}={value}" for name, value in syn.PHANTOM_REGION_VALUES.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=list(CASES))
def phantom(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    case = syn.make_case(root / "in", CASES[request.param], seed=7, vertices=48)
    map_path = _phantom_map(root / "in" / "region2MaskValueMap.txt")
    result = convert(
        map_path,
        case.series.folder,
        case.rtstruct_path,
        root / "out",
        ConvertOptions(write_seg=True, preview=False),
    )
    return case, map_path, result, root


def test_seg_reads_back_through_segmap_as_the_same_composite(phantom):
    case, map_path, result, root = phantom
    back = _read_back(map_path, case.series.folder, root / "out" / "seg.dcm", root / "back")
    assert np.array_equal(back.labels_kji, result.labels_kji)
    assert back.report.overlaps == [] and back.report.unmatched == []
    assert back.grid.same_geometry(result.grid)


def test_seg_decoded_independently_is_the_composite_and_the_polygon_truth(phantom):
    case, map_path, result, root = phantom
    values = syn.PHANTOM_REGION_VALUES
    decoded = _decode(root / "out" / "seg.dcm", case.series.folder, values)
    assert np.array_equal(decoded, result.labels_kji)
    # The polygon truth, from voxel centres given by the image headers alone.
    headers, _ = _image_slices(case.series.folder)
    a = np.eye(4)
    iop = np.asarray(headers[0].ImageOrientationPatient, float)
    dj, di = (float(x) for x in headers[0].PixelSpacing)
    p0 = np.asarray(headers[0].ImagePositionPatient, float)
    p1 = np.asarray(headers[-1].ImagePositionPatient, float)
    a[:3, 0], a[:3, 1] = iop[:3] * di, iop[3:] * dj
    a[:3, 2], a[:3, 3] = (p1 - p0) / (len(headers) - 1), p0
    shape_ijk = (int(headers[0].Columns), int(headers[0].Rows), len(headers))
    by_name = {r.name: r for r in case.rois}
    truth, ambiguous = truth_labels_ijk(
        LPS_TO_RAS @ a,
        shape_ijk,
        [TruthROI(v, [c.points_lps for c in by_name[n].contours]) for n, v in values.items()],
    )
    decoded_ijk = decoded.transpose(2, 1, 0)
    assert np.array_equal(decoded_ijk[~ambiguous], truth[~ambiguous])
    assert np.count_nonzero(truth == 60) > 0  # the lesion, inside the liver, is there


def test_seg_reads_in_highdicom_by_source_instance(phantom):
    case, _, result, root = phantom
    headers, _ = _image_slices(case.series.folder)
    values = _highdicom_values(root / "out" / "seg.dcm", headers, syn.PHANTOM_REGION_VALUES)
    assert np.array_equal(values, result.labels_kji)


def test_overlaps_come_out_as_the_composite_not_as_the_raw_regions(phantom):
    case, _, result, root = phantom
    raw = {r.name: r.voxels for r in result.report.regions}
    pairs = {(o.first, o.second) for o in result.report.overlaps}
    assert ("Liver", "Lesion") in pairs  # the phantom's lesion lies inside its liver
    ds = pydicom.dcmread(root / "out" / "seg.dcm")
    assert ds.SegmentsOverlap == "NO"
    number = {str(s.SegmentLabel): int(s.SegmentNumber) for s in ds.SegmentSequence}
    frames = ds.pixel_array.reshape(int(ds.NumberOfFrames), int(ds.Rows), int(ds.Columns))
    of = [
        int(fg.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        for fg in ds.PerFrameFunctionalGroupsSequence
    ]
    liver = sum(int(frames[n].sum()) for n in range(len(of)) if of[n] == number["Liver"])
    lesion = sum(int(frames[n].sum()) for n in range(len(of)) if of[n] == number["Lesion"])
    assert liver == np.count_nonzero(result.labels_kji == 10) < raw["Liver"]
    assert lesion == raw["Lesion"]
    assert liver + lesion == np.count_nonzero(np.isin(result.labels_kji, (10, 60)))


def test_segments_labels_colours_and_algorithm_follow_the_map(phantom):
    _, _, _, root = phantom
    ds = pydicom.dcmread(root / "out" / "seg.dcm")
    items = list(ds.SegmentSequence)
    assert [str(s.SegmentLabel) for s in items] == list(syn.PHANTOM_REGION_VALUES)
    assert [int(s.SegmentNumber) for s in items] == list(range(1, 8))
    for item, value in zip(items, syn.PHANTOM_REGION_VALUES.values(), strict=True):
        expected = MAP_COLOURS.get(value) or colour_for_value(value)[:3]
        assert all(abs(a - b) <= 1 for a, b in zip(_cielab_rgb(item), expected, strict=True))
        assert item.SegmentAlgorithmType == "SEMIAUTOMATIC"
        algo = item.SegmentationAlgorithmIdentificationSequence[0]
        assert (algo.AlgorithmName, algo.AlgorithmVersion) == ("segmap", segmap.__version__)
        assert f"(mask value {value})" in item.SegmentDescription


def test_seg_identity_references_and_omitted_empty_frames(phantom):
    case, _, result, root = phantom
    ds = pydicom.dcmread(root / "out" / "seg.dcm")
    image = pydicom.dcmread(case.series.files[0], stop_before_pixels=True)
    rt = pydicom.dcmread(case.rtstruct_path, stop_before_pixels=True)
    assert (ds.SOPClassUID, ds.Modality, ds.SegmentationType) == (SEG_STORAGE, "SEG", "BINARY")
    assert ds.StudyInstanceUID == image.StudyInstanceUID
    assert ds.FrameOfReferenceUID == image.FrameOfReferenceUID
    assert ds.PatientID == image.PatientID
    assert ds.SeriesInstanceUID not in (image.SeriesInstanceUID, rt.SeriesInstanceUID)
    assert ds.SOPInstanceUID != rt.SOPInstanceUID
    assert ds.SeriesNumber == image.SeriesNumber + 1000
    assert "region2MaskValueMap.txt" in ds.SeriesDescription
    (ref,) = ds.ReferencedSeriesSequence
    assert ref.SeriesInstanceUID == image.SeriesInstanceUID
    assert {str(r.ReferencedSOPInstanceUID) for r in ref.ReferencedInstanceSequence} == set(
        case.series.sop_instance_uids
    )
    # One frame per slice and segment that holds a voxel, none for the others.
    labels = result.labels_kji
    expected = sum(
        int(np.any(labels[k] == v))
        for k in range(labels.shape[0])
        for v in syn.PHANTOM_REGION_VALUES.values()
    )
    assert int(ds.NumberOfFrames) == expected < labels.shape[0] * 7


def test_the_report_lists_the_seg_among_the_outputs(phantom):
    _, _, _, root = phantom
    report = json.loads((root / "out" / "report.json").read_text())
    (rec,) = [o for o in report["outputs"] if o["name"] == "seg.dcm"]
    assert rec["kind"] == "seg" and rec["bytes"] == (root / "out" / "seg.dcm").stat().st_size
    assert {o["name"] for o in report["outputs"]} >= {"mask.nii.gz", "image.nii.gz", "seg.dcm"}
    assert report["options"]["write_seg"] is True
    assert "write_seg" in report["timings_s"]


# --- maps: shared values, Unicode, labels a SEG cannot hold ---------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    case = syn.make_case(
        root / "in", syn.axial_grid((32, 28, 8), (1.0, 1.0, 2.5)), seed=2, vertices=32
    )
    return case, root


def test_labels_sharing_a_value_are_one_segment_labelled_by_the_first(small, tmp_path):
    case, _ = small
    m = tmp_path / "map.txt"
    m.write_text("Body=1\nLiver=10\nSpleen=10\nKidneys=30\nLesion=60\n", encoding="utf-8")
    result = convert(
        m,
        case.series.folder,
        case.rtstruct_path,
        tmp_path / "out",
        ConvertOptions(mask_only=True, write_seg=True),
    )
    ds = pydicom.dcmread(tmp_path / "out" / "seg.dcm")
    assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == [
        "Body",
        "Liver",
        "Kidneys",
        "Lesion",
    ]
    assert ds.SegmentSequence[1].SegmentDescription == "Liver + Spleen (mask value 10)"
    back = _read_back(m, case.series.folder, tmp_path / "out" / "seg.dcm", tmp_path / "back")
    assert np.array_equal(back.labels_kji, result.labels_kji)
    assert set(np.unique(back.labels_kji)) == {0, 1, 10, 30, 60}


def test_unicode_labels_are_written_in_utf8_and_read_back(small, tmp_path):
    case, _ = small
    series = load_series(case.series.folder)
    labels = np.zeros(series.grid.array_shape, np.uint8)
    labels[2:5, 4:9, 6:12] = 3
    labels[3, 10:12, 10:14] = 9
    rmap = RegionMap.from_pairs([("Bauchspeicheldrüse", 3), ("肝臓", 9)])
    seg_path = build_derived_seg(labels, series, rmap).save(tmp_path / "seg.dcm")
    ds = pydicom.dcmread(seg_path)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert [str(s.SegmentLabel) for s in ds.SegmentSequence] == ["Bauchspeicheldrüse", "肝臓"]
    m = tmp_path / "map.txt"
    m.write_text("Bauchspeicheldrüse=3\n肝臓=9\n", encoding="utf-8")
    back = _read_back(m, case.series.folder, seg_path, tmp_path / "back")
    assert np.array_equal(back.labels_kji, labels)


@pytest.mark.parametrize("label, why", [("L" * 65, "65 characters"), ("Left\\Right", "backslash")])
def test_a_label_a_seg_cannot_hold_is_refused_and_nothing_is_written(
    small, tmp_path, capsys, label, why
):
    case, _ = small
    m = tmp_path / "map.txt"
    m.write_text(f"Body=1\n{label}=5\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(
        [
            "convert",
            "--map",
            str(m),
            "--image",
            str(case.series.folder),
            "--rois",
            str(case.rtstruct_path),
            "--out",
            str(out),
            "--seg",
            "--mask-only",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert "map line 2" in err and why in err and "Traceback" not in err
    assert not out.exists()
    # Without the SEG the same map converts.
    assert (
        main(
            [
                "convert",
                "--map",
                str(m),
                "--image",
                str(case.series.folder),
                "--rois",
                str(case.rtstruct_path),
                "--out",
                str(out),
                "--mask-only",
            ]
        )
        == 0
    )


def test_mask_values_the_map_lacks_or_a_wrong_shape_are_refused(small):
    case, _ = small
    series = load_series(case.series.folder)
    rmap = RegionMap.from_pairs([("Liver", 10)])
    labels = np.zeros(series.grid.array_shape, np.uint8)
    labels[1, 1, 1] = 11
    with pytest.raises(DerivedSegError, match="value.*11.*lacks"):
        build_derived_seg(labels, series, rmap)
    with pytest.raises(DerivedSegError, match="shape"):
        build_derived_seg(labels[:-1], series, rmap)


def test_labelmap_kind_numbers_segments_by_value_and_reads_back(small, tmp_path):
    case, _ = small
    m = _phantom_map(tmp_path / "map.txt")
    result = convert(
        m, case.series.folder, case.rtstruct_path, tmp_path / "out", ConvertOptions(mask_only=True)
    )
    series = load_series(case.series.folder)
    derived = build_derived_seg(
        result.labels_kji, series, read_region_map(m), kind=SegKind.LABELMAP
    )
    seg_path = derived.save(tmp_path / "labelmap.dcm")
    ds = pydicom.dcmread(seg_path)
    assert (ds.SOPClassUID, ds.SegmentationType) == (LABELMAP_SEG_STORAGE, "LABELMAP")
    numbers = {str(s.SegmentLabel): int(s.SegmentNumber) for s in ds.SegmentSequence}
    assert numbers == {"Background": 0, **syn.PHANTOM_REGION_VALUES}
    assert np.array_equal(
        _decode(seg_path, case.series.folder, syn.PHANTOM_REGION_VALUES), result.labels_kji
    )
    back = _read_back(m, case.series.folder, seg_path, tmp_path / "back")
    assert np.array_equal(back.labels_kji, result.labels_kji)
    hd.seg.segread(seg_path)  # highdicom reads it without error


def test_an_anonymised_series_without_patient_and_thickness_attributes(small, tmp_path):
    case, _ = small
    folder = tmp_path / "anon"
    folder.mkdir()
    dropped = (
        "PatientBirthDate",
        "PatientSex",
        "StudyID",
        "AccessionNumber",
        "StudyTime",
        "SliceThickness",
    )
    for f in case.series.files:
        ds = pydicom.dcmread(f)
        for keyword in dropped:
            delattr(ds, keyword) if keyword in ds else None
        ds.save_as(folder / f.name)
    m = _phantom_map(tmp_path / "map.txt")
    result = convert(
        m,
        folder,
        case.rtstruct_path,
        tmp_path / "out",
        ConvertOptions(mask_only=True, write_seg=True),
    )
    ds = pydicom.dcmread(tmp_path / "out" / "seg.dcm")
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    assert float(measures.SliceThickness) == pytest.approx(2.5)  # the slice spacing
    assert ds.PatientSex == "" and ds.StudyID == ""
    back = _read_back(m, folder, tmp_path / "out" / "seg.dcm", tmp_path / "back")
    assert np.array_equal(back.labels_kji, result.labels_kji)


def test_voxels_on_planes_without_an_image_are_counted_and_reported(small, tmp_path):
    case, _ = small
    # Leave slice 3 out: the fix-up puts an empty plane where it was.
    folder = tmp_path / "gap"
    folder.mkdir()
    gone = case.series.files[3]
    for f in case.series.files:
        if f != gone:
            (folder / f.name).write_bytes(f.read_bytes())
    series = load_series(folder, fixup=True)
    assert series.empty_planes == (3,)
    labels = np.zeros(series.grid.array_shape, np.uint8)
    labels[2, 5:9, 5:9] = 4  # 16 voxels on a plane with an image
    labels[3, 5:8, 5:8] = 4  # 9 voxels on the plane without one
    derived = build_derived_seg(labels, series, RegionMap.from_pairs([("Liver", 4)]))
    assert derived.omitted_voxels == 9 and derived.frames == 1
    seg_path = derived.save(tmp_path / "seg.dcm")
    m = tmp_path / "map.txt"
    m.write_text("Liver=4\n", encoding="utf-8")
    back = _read_back(m, folder, seg_path, tmp_path / "back", fixup=True)
    expected = labels.copy()
    expected[3] = 0
    assert np.array_equal(back.labels_kji, expected)


# --- the command line -------------------------------------------------------------------


def test_cli_seg_flag_writes_seg_beside_the_nifti_outputs(small, tmp_path, capsys):
    case, _ = small
    args = [
        "convert",
        "--map",
        str(case.region_map_path),
        "--image",
        str(case.series.folder),
        "--rois",
        str(case.rtstruct_path),
        "--no-preview",
    ]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "seg.dcm").exists()
    assert main([*args, "--out", str(tmp_path / "out"), "--seg"]) == 0
    out = capsys.readouterr().out
    assert "seg.dcm" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "image.nii.gz",
        "mask.nii.gz",
        "report.json",
        "seg.dcm",
    ]
    hd.seg.segread(tmp_path / "out" / "seg.dcm")


# --- real series ------------------------------------------------------------------------


def _real_round_trip(
    tmp_path: Path, map_text: str, image: Path, rois: Path, *, fixup: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    m = tmp_path / "region2MaskValueMap.txt"
    m.write_text(map_text, encoding="utf-8")
    values = {line.split("=")[0]: int(line.split("=")[1]) for line in map_text.splitlines()}
    result = convert(
        m,
        image,
        rois,
        tmp_path / "out",
        ConvertOptions(mask_only=True, write_seg=True, fixup=fixup),
    )
    seg_path = tmp_path / "out" / "seg.dcm"
    back = _read_back(m, image, seg_path, tmp_path / "back", fixup=fixup)
    assert np.array_equal(back.labels_kji, result.labels_kji)
    assert back.report.overlaps == []
    headers, _ = _image_slices(image)
    if not fixup:  # the headers' own order is the grid's only without gaps
        assert np.array_equal(_decode(seg_path, image, values), result.labels_kji)
        assert np.array_equal(_highdicom_values(seg_path, headers, values), result.labels_kji)
    ds = pydicom.dcmread(seg_path)
    assert ds.FrameOfReferenceUID == headers[0].FrameOfReferenceUID
    return (
        result.labels_kji,
        back.labels_kji,
        {o.first + "/" + o.second: o.voxels for o in result.report.overlaps},
    )


def test_real_overlapping_seg_becomes_a_seg_of_the_composite(testdata, tmp_path):
    d = testdata / "dcmqi-ct3slice-seg"
    partial = "GREEN=1\nORANGE=2\nPURPLE=3\nLIGHT_BLUE=4\nDARK_BLUE=5\n"
    labels, _, overlaps = _real_round_trip(
        tmp_path, partial, d / "ct", d / "seg" / "partial_overlaps.dcm"
    )
    assert overlaps and sum(overlaps.values()) > 0  # the input's segments do overlap
    assert labels.shape == (3, 512, 512)


def test_real_planning_system_rtstruct_on_a_partial_series(testdata, tmp_path):
    d = testdata / "rtutils-mim-rtstruct"
    labels, _, _ = _real_round_trip(
        tmp_path,
        "ROI-1=1\nROI-2=2\nROI-3=3\nROI-4=4\n",
        d / "ct",
        d / "rtstruct" / "dummy_rt_MIM.dcm",
    )
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}


def test_real_frames_not_byte_aligned_rows_unequal_columns(testdata, tmp_path):
    # 23 columns x 38 rows: 874 pixels a frame, so the BINARY frames written are not
    # byte aligned in the packed pixel data.
    d = testdata / "dcmqi-tiny-nonsquare-seg" / "23x38x3"
    labels, _, _ = _real_round_trip(tmp_path, "Liver=1\n", d / "image", d / "seg" / "label.seg.dcm")
    assert labels.shape == (3, 38, 23) and int(np.count_nonzero(labels)) == 322


def test_real_uneven_series_with_the_fixup(testdata, tmp_path):
    d = testdata / "highdicom-pydicom-ct2-seg"
    labels, _, _ = _real_round_trip(
        tmp_path, "first segment=7\n", d / "ct2", d / "seg" / "seg_image_ct_binary.dcm", fixup=True
    )
    assert int(np.count_nonzero(labels == 7)) == 638  # SOURCE.txt: 0 + 127 + 256 + 255
    ds = pydicom.dcmread(tmp_path / "out" / "seg.dcm")
    assert int(ds.NumberOfFrames) == 3  # the slice without a voxel has no frame
