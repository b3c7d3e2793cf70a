"""What the real OHIF 3.13 stored in the browser journeys becomes the right masks.

No browser here: ``tests/fixtures/ohif/<kind>/`` holds what OHIF stored in
``test_viewer_journey.py`` (``ohif.dcm``), the CT it was painted on (``ct.zip``) and the
strokes with the region map (``strokes.json``); see the README there. Each file is
converted by segmap's library and judged against the brush's geometry
(:mod:`ohif_painting`), with the tolerances the journeys use.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import nibabel as nib
import pydicom
import pytest

from ohif_painting import assert_painted, load_strokes
from segmap.pipeline.convert import MASK_NAME, convert
from test_viewer_journey import EXPORTS, FIXTURES, RLE_LOSSLESS, RTSTRUCT


def unpack(kind: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The fixture's CT folder, OHIF's file and the region map, ready to convert."""
    folder = FIXTURES / kind
    with zipfile.ZipFile(folder / "ct.zip") as archive:
        archive.extractall(tmp_path)
    strokes, region_map = load_strokes(folder / "strokes.json")
    map_path = tmp_path / "region2MaskValueMap.txt"
    map_path.write_text(region_map, encoding="utf-8")
    return tmp_path / "ct", folder / "ohif.dcm", map_path


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_the_file_is_what_ohif_writes_for_that_export(kind: str) -> None:
    ds = pydicom.dcmread(FIXTURES / kind / "ohif.dcm")
    assert ds.SOPClassUID == EXPORTS[kind].sop_class
    strokes, _ = load_strokes(FIXTURES / kind / "strokes.json")
    painted = sorted({s.label for s in strokes})
    if ds.SOPClassUID == RTSTRUCT:
        names = sorted(r.ROIName for r in ds.StructureSetROISequence)
        assert set(painted) <= set(names)
    else:
        assert ds.file_meta.TransferSyntaxUID == RLE_LOSSLESS  # OHIF's default store
        labels = [s.SegmentLabel for s in ds.SegmentSequence]
        assert set(painted) <= set(labels)


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_ohif_file_converts_to_the_painted_mask(kind: str, tmp_path: Path) -> None:
    ct, ohif_file, map_path = unpack(kind, tmp_path / "in")
    convert(map_path, ct, ohif_file, tmp_path / "out")
    strokes, _ = load_strokes(FIXTURES / kind / "strokes.json")
    mask = nib.load(str(tmp_path / "out" / MASK_NAME))
    counts = assert_painted(mask.to_bytes(), ct, strokes, EXPORTS[kind].tolerance_mm)
    assert set(counts) == {10, 20}
