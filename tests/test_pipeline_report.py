"""The conversion report read back: strict about its layout, the same after a round trip,
and told in sentences whose figures are those of the files written."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segmap import testing as syn
from segmap.errors import SegmapError
from segmap.pipeline.convert import ConvertOptions, convert
from segmap.pipeline.report import (
    REPORT_FORMAT,
    ContourCounts,
    ConvertReport,
    ImageInput,
    RegionRecord,
    UnmatchedRecord,
)

GRID = syn.axial_grid((28, 24, 6), (1.2, 1.0, 2.5))


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> syn.SyntheticCase:
    return syn.make_case(tmp_path_factory.mktemp("report") / "in", GRID, seed=11)


@pytest.fixture(scope="module")
def written(case: syn.SyntheticCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report.json of a real conversion with unmatched and absent labels."""
    root = tmp_path_factory.mktemp("written")
    region_map = syn.write_region_map(
        root / "map.txt", {"Body": 1, "Livr": 10, "Lesion": 60, "Heart": 70}
    )
    convert(
        region_map,
        case.series.folder,
        case.rtstruct_path,
        root / "out",
        ConvertOptions(mask_only=True),
    )
    return root / "out" / "report.json"


def _assert_round_trip(report_json: Path) -> ConvertReport:
    data = json.loads(report_json.read_text(encoding="utf-8"))
    loaded = ConvertReport.load(report_json)
    assert loaded.to_dict() == data
    assert ConvertReport.from_dict(loaded.to_dict()).to_dict() == data
    # Read back as the dataclasses, not as dicts.
    assert isinstance(loaded.inputs.image, ImageInput)
    assert all(isinstance(r, RegionRecord) for r in loaded.regions)
    assert all(isinstance(u, UnmatchedRecord) for u in loaded.unmatched)
    return loaded


# --- round trips on real conversions -------------------------------------------------------


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    order=st.permutations(list(syn.PHANTOM_REGION_VALUES)),
    keep=st.lists(st.booleans(), min_size=7, max_size=7),
    rename=st.sampled_from([None, "Liver", "Kidneys", "Vertebra"]),
    extra_label=st.booleans(),
    mask_only=st.booleans(),
    spacing=st.sampled_from([None, (2.0, 2.0, 2.0)]),
    strict_names=st.booleans(),
)
def test_round_trip_of_real_conversions(
    case: syn.SyntheticCase,
    order: list[str],
    keep: list[bool],
    rename: str | None,
    extra_label: bool,
    mask_only: bool,
    spacing: tuple[float, float, float] | None,
    strict_names: bool,
) -> None:
    """to_dict -> from_dict -> to_dict is the identity, whatever the conversion held:
    regions painted, unmatched (a renamed label), absent labels, overlaps in any order,
    resampled outputs or none."""
    values = {
        name: syn.PHANTOM_REGION_VALUES[name] for name, k in zip(order, keep, strict=True) if k
    }
    if rename in values:
        values[rename.lower() + "x"] = values.pop(rename)
    if extra_label or not values:
        values["Heart"] = 99
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        region_map = syn.write_region_map(root / "map.txt", values)
        options = ConvertOptions(
            mask_only=mask_only and spacing is None,
            spacing=spacing,
            strict_names=strict_names,
            preview=False,
        )
        result = convert(region_map, case.series.folder, case.rtstruct_path, root / "out", options)
        loaded = _assert_round_trip(root / "out" / "report.json")
        assert loaded.to_dict() == result.report.to_dict()
        assert loaded.describe() == result.report.describe()


def test_round_trip_of_real_seg_and_rtstruct_files(testdata: Path, tmp_path: Path) -> None:
    """Reports of the shared real files: SEGs (frames, overlaps) and a planning system's
    RTSTRUCT (contours skipped, images missing from the series)."""
    cases = [
        (
            "dcmqi-ct3slice-seg",
            "ct",
            "seg/partial_overlaps.dcm",
            "GREEN=1\nORANGE=2\nPURPLE=3\nLIGHT_BLUE=4\nDARK_BLUE=5\n",
        ),
        (
            "dcmqi-tiny-nonsquare-seg",
            "24x38x3/image",
            "24x38x3/seg/sparse-labelmap-ppv5.dcm",
            "Liver=9\n",
        ),
        (
            "rtutils-mim-rtstruct",
            "ct",
            "rtstruct/dummy_rt_MIM.dcm",
            "ROI-1=1\nROI-2=2\nROI-4=4\nOther=7\n",
        ),
    ]
    for n, (folder, image, rois, text) in enumerate(cases):
        region_map = tmp_path / f"map{n}.txt"
        region_map.write_text(text, encoding="utf-8")
        out = tmp_path / f"out{n}"
        convert(
            region_map,
            testdata / folder / image,
            testdata / folder / rois,
            out,
            ConvertOptions(mask_only=True),
        )
        loaded = _assert_round_trip(out / "report.json")
        assert loaded.inputs.annotation.path == str(testdata / folder / rois)
    rt = ConvertReport.load(tmp_path / "out2" / "report.json")
    counts = {r.name: r.contours for r in rt.regions}
    assert all(isinstance(c, ContourCounts) for c in counts.values())
    assert counts["ROI-1"] is not None and counts["ROI-1"].skipped == 1


# --- strict reading -------------------------------------------------------------------------


def _edited(written: Path, edit: Any) -> dict[str, Any]:
    data = json.loads(written.read_text(encoding="utf-8"))
    edit(data)
    return data


def _refused(data: object) -> str:
    with pytest.raises(SegmapError) as err:
        ConvertReport.from_dict(data, source="r.json")
    message = str(err.value)
    assert message.startswith("r.json: ")
    return message


def test_a_missing_field_is_named(written: Path) -> None:
    msg = _refused(_edited(written, lambda d: d["regions"][1].pop("status")))
    assert "regions[1].status is missing" in msg
    msg = _refused(_edited(written, lambda d: d["regions"][0]["contours"].pop("used")))
    assert "regions[0].contours.used is missing" in msg
    # Fields with a default in the code are required in the file all the same.
    msg = _refused(_edited(written, lambda d: d.pop("warnings")))
    assert "warnings is missing" in msg
    msg = _refused(_edited(written, lambda d: d["inputs"]["annotation"].pop("sha256")))
    assert "inputs.annotation.sha256 is missing" in msg


def test_an_unknown_field_is_named(written: Path) -> None:
    msg = _refused(_edited(written, lambda d: d["labels"][0].update(colour="red")))
    assert "labels[0].colour" in msg and "another version" in msg


@pytest.mark.parametrize(
    ("edit", "where", "expected"),
    [
        (lambda d: d["regions"][0].update(voxels="12"), "regions[0].voxels", "a whole number"),
        (lambda d: d["regions"][0].update(voxels=True), "regions[0].voxels", "a whole number"),
        (lambda d: d["labels"][0].update(present=1), "labels[0].present", "true or false"),
        (lambda d: d["labels"][0].update(volume_mm3="1.5"), "labels[0].volume_mm3", "a number"),
        (lambda d: d.update(regions={}), "regions", "a list"),
        (lambda d: d["inputs"].update(image=[]), "inputs.image", "an object"),
        (lambda d: d["timings_s"].update(paint=None), "timings_s.paint", "a number"),
        (
            lambda d: d["region_map"]["regions"][0].update(label=3),
            "region_map.regions[0].label",
            "text",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_named(
    written: Path, edit: Any, where: str, expected: str
) -> None:
    msg = _refused(_edited(written, edit))
    assert f"{where} must be {expected}" in msg


def test_nullable_fields_take_null(written: Path) -> None:
    data = _edited(written, lambda d: d["region_map"].update(path=None))
    assert ConvertReport.from_dict(data).region_map.path is None


def test_a_newer_or_unknown_format_is_refused(written: Path) -> None:
    msg = _refused(_edited(written, lambda d: d.update(report_format=REPORT_FORMAT + 1)))
    assert f"report_format {REPORT_FORMAT + 1} is newer" in msg and "upgrade segmap" in msg
    for bad in (0, "1", 1.0, None):
        msg = _refused(_edited(written, lambda d, bad=bad: d.update(report_format=bad)))
        assert "report_format" in msg
    msg = _refused(_edited(written, lambda d: d.pop("report_format")))
    assert "not a segmap conversion report" in msg
    assert "JSON object" in _refused([1, 2])


def test_load_names_the_file(written: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.json"
    cut.write_bytes(written.read_bytes()[:200])
    with pytest.raises(SegmapError, match=r"cut\.json is not JSON \(line \d+"):
        ConvertReport.load(cut)
    with pytest.raises(SegmapError, match="no_such.json"):
        ConvertReport.load(tmp_path / "no_such.json")
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(_edited(written, lambda d: d["overlaps"][0].pop("winner"))))
    with pytest.raises(SegmapError, match=r"edited\.json: overlaps\[0\]\.winner is missing"):
        ConvertReport.load(edited)


# --- sentences --------------------------------------------------------------------------------


def _hand_made_report() -> dict[str, Any]:
    """A small report written out by hand: one of each thing a report can say."""
    grid = {
        "size_ijk": [4, 3, 2],
        "spacing_mm": [0.5, 0.5, 2.0],
        "origin_lps_mm": [0, 0, 0],
        "direction_lps": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "voxel_to_ras": [],
    }
    contours = {
        "total": 5,
        "used": 3,
        "skipped": 2,
        "skipped_by_reason": {
            "off_every_slice_plane": 1,
            "open": 1,
            "point_or_degenerate": 0,
            "not_planar": 0,
        },
        "clipped_at_image_edge": 2,
        "referencing_images_not_in_series": 1,
        "slices": 2,
        "plane_tolerance_mm": 0.5,
    }
    region = {
        "source": "ROI",
        "number": 1,
        "name": "liver",
        "matched_label": "Liver",
        "value": 10,
        "status": "painted",
        "voxels": 2000,
        "volume_mm3": 1234.5,
        "painted_voxels": 1900,
        "contours": contours,
        "frames_used": None,
        "suggestions": [],
    }
    return {
        "inputs": {
            "image": {
                "folder": "ct",
                "study_instance_uid": "1.2",
                "series_instance_uid": "1.3",
                "frame_of_reference_uid": None,
                "modality": "CT",
                "slices": 2,
                "series_description": "",
                "patient_id": "P",
                "study_date": "",
            },
            "annotation": {
                "path": "rt.dcm",
                "modality": "RTSTRUCT",
                "sop_instance_uid": "1.4",
                "series_instance_uid": "1.5",
                "study_instance_uid": "1.2",
                "frame_of_reference_uid": None,
                "referenced_series_uids": ["1.3"],
                "sha256": "ab",
            },
            "grid": grid,
        },
        "region_map": {
            "path": "map.txt",
            "sha256": "cd",
            "dtype": "uint8",
            "regions": [
                {"label": "Liver", "value": 10},
                {"label": "Lesion", "value": 60},
                {"label": "Heart", "value": 70},
            ],
            "shared_values": {},
        },
        "options": {"spacing": None},
        "regions": [
            region,
            {
                **region,
                "number": 2,
                "name": "Lesion",
                "matched_label": "Lesion",
                "value": 60,
                "voxels": 100,
                "volume_mm3": 50.0,
                "painted_voxels": 100,
                "contours": {
                    **contours,
                    "skipped": 0,
                    "clipped_at_image_edge": 0,
                    "referencing_images_not_in_series": 0,
                    "skipped_by_reason": dict.fromkeys(contours["skipped_by_reason"], 0),
                    "used": 5,
                },
            },
            {
                **region,
                "number": 3,
                "name": "Tumor",
                "matched_label": "Lesion",
                "value": 60,
                "status": "empty",
                "voxels": 0,
                "volume_mm3": 0.0,
                "painted_voxels": 0,
                "contours": None,
                "frames_used": 0,
            },
            {
                **region,
                "number": 4,
                "name": "Spleeen",
                "matched_label": None,
                "value": None,
                "status": "unmatched",
                "contours": None,
                "suggestions": ["Spleen", "Liver"],
            },
        ],
        "labels": [
            {"label": "Liver", "value": 10, "present": True, "voxels": 1900, "volume_mm3": 1172.3}
        ],
        "unmatched": [
            {"name": "Spleeen", "number": 4, "source": "ROI", "suggestions": ["Spleen", "Liver"]}
        ],
        "absent_labels": ["Heart"],
        "overlaps": [
            {
                "first": "Liver",
                "second": "Lesion",
                "first_value": 10,
                "second_value": 60,
                "voxels": 100,
                "winner": "Lesion",
            }
        ],
        "fixups": ["slice 3 moved"],
        "outputs": [
            {
                "name": "mask.nii.gz",
                "kind": "mask",
                "grid": grid,
                "dtype": "uint8",
                "bytes": 3100,
                "sha256": "ef",
            },
            {
                "name": "preview.png",
                "kind": "preview",
                "grid": None,
                "dtype": None,
                "bytes": 2_500_000,
                "sha256": "01",
            },
        ],
        "timings_s": {"total": 1.0},
        "warnings": ["the folder held another series"],
        "segmap_version": "0",
        "report_format": REPORT_FORMAT,
        "created_utc": "2026-01-01T00:00:00Z",
    }


def test_the_report_in_sentences() -> None:
    report = ConvertReport.from_dict(_hand_made_report())
    assert report.describe() == [
        "ROI 'liver' -> Liver=10: 2000 voxels, 1.23 mL, from 3 of 5 contours "
        "(2 clipped at the image edge).",
        "ROI 'Lesion' -> Lesion=60: 100 voxels, 0.05 mL, from 5 of 5 contours.",
        "ROI 'liver': 2 of 5 contours skipped (1 off every slice plane, 1 open).",
        "ROI 'liver': 1 contour references images that are not in the series.",
        "ROI 'Tumor' matched Lesion=60 but none of its voxels lies in the image; nothing painted.",
        "ROI 'Spleeen' matches no label of the map (closest: Spleen, Liver); not painted.",
        "Map labels absent from the annotation: Heart.",
        "Liver and Lesion overlap in 100 voxels; Lesion is painted there.",
        "Warning: the folder held another series",
        "Fix-up: slice 3 moved",
        "mask.nii.gz: composite mask, 4 x 3 x 2 voxels of 0.5 x 0.5 x 2 mm, uint8, 3.1 kB.",
        "preview.png: preview picture, 2.5 MB.",
    ]
    assert report.describe(outputs=False) == report.describe()[:-2]
    assert report.notes() == report.describe()[2:-2]
    assert not any("overlap" in s for s in report.notes(overlaps=False))
    assert len(report.notes(overlaps=False)) == len(report.notes()) - 1


def test_a_clean_conversion_has_no_notes(case: syn.SyntheticCase, tmp_path: Path) -> None:
    result = convert(
        case.region_map_path,
        case.series.folder,
        case.rtstruct_path,
        tmp_path / "out",
        ConvertOptions(mask_only=True),
    )
    assert result.report.notes(overlaps=False) == []
    # The phantom's organs lie inside the body: those overlaps are all there is to say.
    assert all(" overlap in " in s for s in result.report.notes())


def test_summary_figures_are_those_of_the_mask(written: Path) -> None:
    """Voxels and mL in the sentences match the mask on disk (last-painted regions)."""
    report = ConvertReport.load(written)
    mask = np.asarray(nib.load(str(written.parent / "mask.nii.gz")).dataobj)
    voxel_mm3 = float(np.prod(GRID.spacing))
    n = int((mask == 60).sum())  # the lesion is painted last: all of it shows
    assert n > 0
    assert f"ROI 'Lesion' -> Lesion=60: {n} voxels, {n * voxel_mm3 / 1000:.2f} mL" in "\n".join(
        report.describe()
    )
    assert "ROI 'Liver' matches no label of the map (closest: Livr" in "\n".join(report.notes())
    assert "Map labels absent from the annotation: Livr, Heart." in report.notes()


def test_from_dict_does_not_keep_references_to_its_input(written: Path) -> None:
    data = json.loads(written.read_text(encoding="utf-8"))
    before = copy.deepcopy(data)
    report = ConvertReport.from_dict(data)
    report.regions[0].suggestions.append("changed")
    report.to_dict()
    assert data == before
