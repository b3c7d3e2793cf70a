"""Import and export of every label format, on sample files written by hand from each
format's documentation, and round trips through each format."""

from __future__ import annotations

import json
import math
from itertools import combinations

import pytest

from segmap.labelmap import RegionMap, RegionMapError, RegionMapFileError, parse_region_map
from segmap.labelmap.colour_comments import read_colour_comments
from segmap.labelmap.formats import (
    FORMATS,
    LabelFormatError,
    export_map,
    get_format,
    import_file,
    import_text,
)
from segmap.labelmap.palette import colour_for_value

ORGANS = parse_region_map("Liver=10\nSpleen=20\nLeft Kidney=30\nRight Kidney=30\nTumour=5\n")


def pairs(m: RegionMap) -> list[tuple[str, int]]:
    return [(r.label, r.value) for r in m]


# --- MONAI ----------------------------------------------------------------------------


def test_monai_import_plain_dictionary() -> None:
    text = '{"spleen": 1, "right kidney": 2, "left kidney": 3, "background": 0}'
    got = import_text(text, "monai", source="labels.json")
    assert pairs(got.region_map) == [("spleen", 1), ("right kidney", 2), ("left kidney", 3)]
    assert got.colours == {}


def test_monai_import_labels_inside_a_config() -> None:
    text = """{
      "name": "segmentation",
      "labels": {"liver": 1, "liver tumor": 2, "background": 0},
      "dimension": 3
    }"""
    got = import_text(text, "monai", source="info.json")
    assert pairs(got.region_map) == [("liver", 1), ("liver tumor", 2)]


def test_monai_export() -> None:
    data = json.loads(export_map(ORGANS, "monai"))
    assert list(data.items()) == [
        ("Liver", 10),
        ("Spleen", 20),
        ("Left Kidney", 30),
        ("Right Kidney", 30),
        ("Tumour", 5),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('["spleen", "liver"]', "list of names without values"),
        ('"liver"', "expected a JSON object"),
        ('{"liver": 1,\n "spleen": 2,\n}', "labels.json:3: not valid JSON"),
        ('{"liver": 1, "liver": 2}', 'the key "liver" appears twice'),
    ],
)
def test_monai_refused_files(text: str, words: str) -> None:
    with pytest.raises(LabelFormatError) as info:
        import_text(text, "monai", source="labels.json")
    assert words in str(info.value)


def test_monai_rule_problems_are_all_listed() -> None:
    text = '{"liver": "1", "spleen": -2, "Liver": 3, "kidney": 1.5, "": 4}'
    with pytest.raises(RegionMapError) as info:
        import_text(text, "monai", source="labels.json")
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 5
    assert any('"1" is text' in m for m in messages)
    assert any("negative" in m for m in messages)
    assert any("already used" in m for m in messages)
    assert any("not a whole number" in m for m in messages)
    assert any("empty" in m for m in messages)
    assert info.value.lines()[0] == (
        'labels.json: entry "liver": "1" is text; write the value as a number, without quotes'
    )


def test_monai_background_only_has_nothing_to_import() -> None:
    with pytest.raises(RegionMapError, match="nothing to import"):
        import_text('{"background": 0}', "monai", source="l.json")


# --- nnU-Net v2 -------------------------------------------------------------------------

NNUNET_PROSTATE = """{
  "channel_names": {"0": "T2", "1": "ADC"},
  "labels": {"background": 0, "PZ": 1, "TZ": 2},
  "numTraining": 32,
  "file_ending": ".nii.gz"
}"""

NNUNET_BRATS_REGIONS = """{
  "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
  "labels": {
    "background": 0,
    "whole tumor": [1, 2, 3],
    "tumor core": [2, 3],
    "enhancing tumor": 3
  },
  "regions_class_order": [1, 2, 3],
  "numTraining": 1251,
  "file_ending": ".nii.gz"
}"""


def test_nnunet_import_plain_dataset_json() -> None:
    got = import_text(NNUNET_PROSTATE, "nnunet", source="dataset.json")
    assert pairs(got.region_map) == [("PZ", 1), ("TZ", 2)]


def test_nnunet_import_refuses_region_based_labels() -> None:
    with pytest.raises(LabelFormatError) as info:
        import_text(NNUNET_BRATS_REGIONS, "nnunet", source="dataset.json")
    message = str(info.value)
    assert "region-based" in message
    assert '"whole tumor"' in message and '"tumor core"' in message


def test_nnunet_import_refuses_regions_class_order_alone() -> None:
    text = '{"labels": {"background": 0, "a": 1}, "regions_class_order": [1]}'
    with pytest.raises(LabelFormatError, match="region-based"):
        import_text(text, "nnunet", source="dataset.json")


def test_nnunet_export_renumbers_consecutively_and_records_it() -> None:
    data = json.loads(export_map(ORGANS, "nnunet"))
    # Map values 5, 10, 20, 30 become 1, 2, 3, 4; the two kidneys share 30, one class.
    assert data["labels"] == {
        "background": 0,
        "Tumour": 1,
        "Liver": 2,
        "Spleen": 3,
        "Left Kidney + Right Kidney": 4,
    }
    assert list(data["labels"].values()) == [0, 1, 2, 3, 4]
    assert data["file_ending"] == ".nii.gz"
    record = data["segmap"]
    assert record["map_value_to_nnunet_value"] == {"5": 1, "10": 2, "20": 3, "30": 4}
    assert record["region_map"][0] == {"label": "Liver", "value": 10}
    assert record["sha256"] == ORGANS.sha256


def test_nnunet_round_trip_restores_values_and_order() -> None:
    back = import_text(export_map(ORGANS, "nnunet"), "nnunet", source="dataset.json")
    assert pairs(back.region_map) == pairs(ORGANS)


def test_nnunet_export_into_a_full_dataset_json_still_imports() -> None:
    exported = json.loads(export_map(ORGANS, "nnunet"))
    full = json.loads(NNUNET_PROSTATE) | exported  # what a dataset assembler would write
    back = import_text(json.dumps(full), "nnunet", source="dataset.json")
    assert back.region_map == ORGANS


def test_nnunet_edited_after_export_is_refused() -> None:
    data = json.loads(export_map(ORGANS, "nnunet"))
    data["labels"]["Pancreas"] = 5
    with pytest.raises(LabelFormatError, match="changed after segmap exported"):
        import_text(json.dumps(data), "nnunet", source="dataset.json")


def test_nnunet_without_record_keeps_consecutive_values() -> None:
    data = json.loads(export_map(ORGANS, "nnunet"))
    del data["segmap"]
    back = import_text(json.dumps(data), "nnunet", source="dataset.json")
    assert pairs(back.region_map) == [
        ("Tumour", 1),
        ("Liver", 2),
        ("Spleen", 3),
        ("Left Kidney + Right Kidney", 4),
    ]


def test_nnunet_region_named_background_gets_a_distinct_class_name() -> None:
    m = parse_region_map("background=3\nLiver=1\n")
    data = json.loads(export_map(m, "nnunet"))
    assert data["labels"]["background"] == 0
    assert len(data["labels"]) == 3
    assert import_text(json.dumps(data), "nnunet", source="d").region_map == m


def test_nnunet_without_labels() -> None:
    with pytest.raises(LabelFormatError, match='no "labels" object'):
        import_text('{"channel_names": {"0": "CT"}}', "nnunet", source="dataset.json")


def test_broken_record_is_reported() -> None:
    data = json.loads(export_map(ORGANS, "nnunet"))
    data["segmap"]["region_map"][1]["value"] = 0
    with pytest.raises(LabelFormatError, match="does not hold a valid region map"):
        import_text(json.dumps(data), "nnunet", source="dataset.json")
    data["segmap"] = "hello"
    with pytest.raises(LabelFormatError, match="not a region map record"):
        import_text(json.dumps(data), "nnunet", source="dataset.json")


# --- Medical Segmentation Decathlon ---------------------------------------------------

MSD_LIVER = """{
  "name": "Liver",
  "description": "Liver and tumour segmentation",
  "tensorImageSize": "3D",
  "modality": {"0": "CT"},
  "labels": {"0": "background", "1": "liver", "2": "cancer"},
  "numTraining": 2,
  "numTest": 0,
  "training": [
    {"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"},
    {"image": "./imagesTr/liver_1.nii.gz", "label": "./labelsTr/liver_1.nii.gz"}
  ],
  "test": []
}"""


def test_msd_import() -> None:
    got = import_text(MSD_LIVER, "msd", source="dataset.json")
    assert pairs(got.region_map) == [("liver", 1), ("cancer", 2)]


def test_msd_export_without_shared_values_has_no_record() -> None:
    m = parse_region_map("Liver=10\nTumour=5\n")
    data = json.loads(export_map(m, "msd"))
    assert data == {"labels": {"0": "background", "10": "Liver", "5": "Tumour"}}
    assert import_text(json.dumps(data), "msd", source="d").region_map == m


def test_msd_export_with_shared_values_records_the_map() -> None:
    data = json.loads(export_map(ORGANS, "msd"))
    assert data["labels"] == {
        "0": "background",
        "10": "Liver",
        "20": "Spleen",
        "30": "Left Kidney + Right Kidney",
        "5": "Tumour",
    }
    assert "segmap" in data
    assert import_text(json.dumps(data), "msd", source="d").region_map == ORGANS


def test_msd_bad_keys_are_all_reported() -> None:
    text = '{"labels": {"0": "background", "one": "liver", "-2": "x", "3": 4}}'
    with pytest.raises(RegionMapError) as info:
        import_text(text, "msd", source="dataset.json")
    messages = [p.message for p in info.value.problems]
    assert len(messages) == 3
    assert "the key is the value" in messages[0]
    assert "not text" in messages[2]


# --- 3D Slicer colour table -----------------------------------------------------------

SLICER_TABLE = """\
# Color table file /home/lab/organs.ctbl
# 4 values
0 Background 0 0 0 0
1 liver 221 130 101 255
2 left_kidney 185 102 83 255
5 spleen 157 108 162 200
"""


def test_slicer_import() -> None:
    got = import_text(SLICER_TABLE, "slicer", source="organs.ctbl")
    assert pairs(got.region_map) == [("liver", 1), ("left_kidney", 2), ("spleen", 5)]
    assert got.colours == {
        1: (221, 130, 101, 255),
        2: (185, 102, 83, 255),
        5: (157, 108, 162, 200),
    }


def test_slicer_import_crlf_and_short_rows() -> None:
    got = import_text("1 liver\r\n2 bone 241 214 145\r\n", "slicer", source="t.txt")
    assert pairs(got.region_map) == [("liver", 1), ("bone", 2)]
    assert got.colours == {2: (241, 214, 145, 255)}


def test_slicer_export_uses_given_colours_then_the_palette() -> None:
    m = parse_region_map("Liver=1\nspleen=5\n")
    text = export_map(m, "slicer", {1: (221, 130, 101, 255)})
    r, g, b, a = colour_for_value(5)
    rows = [line for line in text.splitlines() if not line.startswith("#")]
    assert rows == [
        "0 Background 0 0 0 0",
        "1 Liver 221 130 101 255",
        f"5 spleen {r} {g} {b} {a}",
    ]
    assert "segmap region" not in text  # nothing lost, so nothing recorded


def test_slicer_export_spaces_become_underscores_and_the_map_is_recorded() -> None:
    text = export_map(ORGANS, "slicer")
    rows = [line.split()[:2] for line in text.splitlines() if not line.startswith("#")]
    assert rows == [
        ["0", "Background"],
        ["10", "Liver"],
        ["20", "Spleen"],
        ["30", "Left_Kidney+Right_Kidney"],
        ["5", "Tumour"],
    ]
    assert "# segmap region: Left Kidney=30" in text.splitlines()
    back = import_text(text, "slicer", source="t.ctbl")
    assert pairs(back.region_map) == pairs(ORGANS)


def test_slicer_renamed_in_slicer_after_export_is_refused() -> None:
    text = export_map(ORGANS, "slicer").replace(" Spleen ", " Milz ")
    with pytest.raises(LabelFormatError, match="changed after segmap exported"):
        import_text(text, "slicer", source="t.ctbl")


def test_slicer_bad_rows_all_reported_with_lines() -> None:
    text = "1 liver 1 2\n2 bone 300 0 0 255\nx spleen 1 2 3 4\n3 a 1 2 3 4 5\n"
    with pytest.raises(RegionMapError) as info:
        import_text(text, "slicer", source="t.ctbl")
    assert [p.line for p in info.value.problems] == [1, 2, 3, 4]
    assert "value name R G B A" in info.value.problems[0].message
    assert "0 to 255" in info.value.problems[1].message


# --- ITK-SNAP label description -------------------------------------------------------

ITKSNAP_FILE = """\
################################################
# ITK-SnAP Label Description File
# File format:
# IDX   -R-  -G-  -B-  -A--  VIS MSH  LABEL
################################################
    0     0    0    0        0  0  0    "Clear Label"
    1   255    0    0        1  1  1    "Liver"
    2     0  255    0      0.5  1  0    "Left Kidney"
    7     0    0  255        1  0  1    "Spleen"
"""


def test_itksnap_import() -> None:
    got = import_text(ITKSNAP_FILE, "itksnap", source="labels.txt")
    assert pairs(got.region_map) == [("Liver", 1), ("Left Kidney", 2), ("Spleen", 7)]
    assert got.colours == {1: (255, 0, 0, 255), 2: (0, 255, 0, 128), 7: (0, 0, 255, 255)}


def test_itksnap_export_rows() -> None:
    m = parse_region_map("Liver=1\nLeft Kidney=2\n")
    text = export_map(m, "itksnap", {1: (255, 0, 0, 255), 2: (0, 255, 0, 51)})
    rows = [line.split(None, 7) for line in text.splitlines() if not line.startswith("#")]
    assert rows == [
        ["0", "0", "0", "0", "0", "0", "0", '"Clear Label"'],
        ["1", "255", "0", "0", "1", "1", "1", '"Liver"'],
        ["2", "0", "255", "0", "0.2", "1", "1", '"Left Kidney"'],
    ]
    assert "segmap region" not in text


def test_itksnap_every_opacity_survives_the_round_trip() -> None:
    m = RegionMap.from_pairs((f"L{a}", a + 1) for a in range(256))
    colours = {a + 1: (1, 2, 3, a) for a in range(256)}
    back = import_text(export_map(m, "itksnap", colours), "itksnap", source="x")
    assert back.colours == colours


def test_itksnap_shared_values_and_quotes_are_recorded() -> None:
    m = parse_region_map('Tumour "core"=3\nLeft Kidney=30\nRight Kidney=30\n')
    text = export_map(m, "itksnap")
    assert "\"Tumour 'core'\"" in text
    assert '"Left Kidney + Right Kidney"' in text
    assert import_text(text, "itksnap", source="x").region_map == m


def test_itksnap_bad_rows() -> None:
    text = '1 255 0 0 1 1 1 Liver\n2 255 0 0 1.5 1 1 "Spleen"\n'
    with pytest.raises(RegionMapError) as info:
        import_text(text, "itksnap", source="x")
    assert [p.line for p in info.value.problems] == [1, 2]
    assert "opacity" in info.value.problems[1].message


# --- every format ---------------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_round_trip_through_every_format(fmt: str) -> None:
    m = parse_region_map(
        "Liver=10\nLeft  Kidney=30\nRight Kidney=30\nT=2 zone=7\nNiere ä=300\nTumour=5\n"
    )
    back = import_text(export_map(m, fmt), fmt, source="x")
    assert pairs(back.region_map) == pairs(m)


@pytest.mark.parametrize("fmt", ["slicer", "itksnap"])
def test_colour_formats_carry_the_palette_when_no_colours_are_given(fmt: str) -> None:
    back = import_text(export_map(ORGANS, fmt), fmt, source="x")
    assert back.colours == {v: colour_for_value(v) for v in set(ORGANS.values)}


@pytest.mark.parametrize("fmt", ["slicer", "itksnap"])
def test_imported_colours_are_kept_in_the_map_file_and_reused(fmt: str) -> None:
    colours = {10: (1, 2, 3, 255), 20: (4, 5, 6, 100)}
    imported = import_text(
        export_map(parse_region_map("Liver=10\nSpleen=20\n"), fmt, colours), fmt, source="x"
    )
    map_text = imported.to_map_text(source="x")
    assert parse_region_map(map_text) == imported.region_map
    assert read_colour_comments(map_text) == colours


def test_map_without_colours_writes_no_comments() -> None:
    imported = import_text('{"a": 1}', "monai", source="x")
    assert imported.to_map_text() == "a=1\n"


def test_unknown_format() -> None:
    with pytest.raises(LabelFormatError, match="choose one of monai, nnunet, msd"):
        get_format("csv")


def test_import_file_checks_the_file(tmp_path) -> None:
    f = tmp_path / "labels.json"
    f.write_bytes(b'\xef\xbb\xbf{"liver": 1}')
    assert pairs(import_file(f, "monai").region_map) == [("liver", 1)]
    with pytest.raises(RegionMapFileError, match="does not exist"):
        import_file(tmp_path / "none.json", "monai")
    f.write_bytes(b"")
    with pytest.raises(RegionMapFileError, match="is empty"):
        import_file(f, "monai")
    f.write_bytes(b'{"l\xe9ber": 1}')
    with pytest.raises(RegionMapFileError, match="not UTF-8"):
        import_file(f, "monai")


# --- palette ------------------------------------------------------------------------


def test_palette_is_valid_and_stable() -> None:
    for v in (1, 2, 255, 256, 65535):
        c = colour_for_value(v)
        assert all(isinstance(x, int) and 0 <= x <= 255 for x in c)
        assert c[3] == 255
        assert colour_for_value(v) == c


@pytest.mark.parametrize("values", [range(1, 21), range(10, 101, 10)])
def test_palette_colours_of_a_typical_map_are_far_apart(values: range) -> None:
    # 40 in RGB distance is a clearly visible difference side by side.
    closest = min(
        math.dist(colour_for_value(a)[:3], colour_for_value(b)[:3])
        for a, b in combinations(values, 2)
    )
    assert closest >= 40
