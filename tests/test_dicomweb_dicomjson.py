"""DICOM JSON: read back by pydicom's ``Dataset.from_json`` (bulk values through the URIs)
and by dicomweb-client's loader; QIDO results built from index records."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from segmap.server.dicomweb.bulkdata import (
    bulk_path_text,
    bulk_uri,
    find_element,
    parse_bulk_path,
)
from segmap.server.dicomweb.dicomjson import (
    BULK_DATA_THRESHOLD,
    instance_metadata,
    level_record,
    qido_result,
)
from segmap.server.dicomweb.errors import BadRequest
from segmap.server.dicomweb.levels import (
    NUMBER_OF_STUDY_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_SERIES,
    Level,
    returned,
)
from segmap.server.dicomweb.query import parse_query

URL = "http://segmap.test/dicomweb/projects/p1/studies/1/series/2/instances/3"


def _round_trip(ds: Dataset) -> tuple[dict[str, object], Dataset]:
    """Metadata as sent (JSON text), then read back resolving every BulkDataURI."""
    text = json.dumps(instance_metadata(ds, URL))
    resolved: list[str] = []

    def fetch(uri: str) -> bytes:
        assert uri.startswith(URL + "/bulk/")
        resolved.append(uri)
        value = find_element(ds, parse_bulk_path(uri[len(URL) + 6 :])).value
        return bytes(value)

    back = Dataset.from_json(text, bulk_data_uri_handler=fetch)
    return json.loads(text), back


def _assert_same(ds: Dataset, back: Dataset) -> None:
    assert set(back.keys()) == set(filter(lambda t: t & 0xFFFF, ds.keys()))
    for element in ds:
        if element.tag.element == 0:
            continue
        other = back[element.tag]
        if element.VR == "SQ":
            assert len(other.value) == len(element.value)
            for a, b in zip(element.value, other.value, strict=True):
                _assert_same(a, b)
        else:
            assert other.value == element.value, element.tag


@pytest.mark.parametrize(
    "name",
    ["dcmqi-ct3slice-seg/ct/01.dcm", "dcmqi-ct3slice-seg/seg/partial_overlaps.dcm",
     "rtutils-mim-rtstruct/rtstruct/dummy_rt_MIM.dcm", "highdicom-pydicom-ct2-seg/ct2/17106.dcm"],
)  # fmt: skip
def test_real_files_round_trip(testdata: Path, name: str) -> None:
    ds = pydicom.dcmread(testdata / name)
    sent, back = _round_trip(ds)
    _assert_same(ds, back)
    assert list(sent) == sorted(sent)  # attributes in tag order (F.2.2)
    assert all(not key.endswith("0000") for key in sent)  # no group lengths
    if "PixelData" in ds:
        assert sent["7FE00010"] == {"vr": ds["PixelData"].VR, "BulkDataURI": URL + "/bulk/7FE00010"}


def test_small_pixel_data_is_still_bulk_and_small_binary_is_inline(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "highdicom-pydicom-ct2-seg/ct2/17106.dcm")  # 16x16: 512 B
    ds.add_new(0x00291010, "OB", b"\x01\x02\x03")  # a small private binary value
    ds.add_new(0x00290010, "LO", "segmap test")
    sent, back = _round_trip(ds)
    assert "BulkDataURI" in sent["7FE00010"]  # type: ignore[operator]
    assert sent["00291010"] == {"vr": "OB", "InlineBinary": "AQID"}
    assert back[0x00291010].value == b"\x01\x02\x03"


def test_large_binary_in_a_sequence_names_its_place(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    item0, item1 = Dataset(), Dataset()
    item0.RedPaletteColorLookupTableData = b"\x00" * 10
    item1.RedPaletteColorLookupTableData = bytes(range(256)) * 8  # 2048 bytes
    item1["RedPaletteColorLookupTableData"].VR = "OW"
    ds.IconImageSequence = [item0, item1]
    sent, back = _round_trip(ds)
    items = sent["00880200"]["Value"]  # type: ignore[index]
    assert "InlineBinary" in items[0]["00281201"]
    uri = items[1]["00281201"]["BulkDataURI"]
    assert uri == bulk_uri(URL, (0x00880200, 1, 0x00281201)) == URL + "/bulk/00880200/1/00281201"
    assert back.IconImageSequence[1].RedPaletteColorLookupTableData == bytes(range(256)) * 8
    assert len(bytes(range(256)) * 8) > BULK_DATA_THRESHOLD


def test_highdicom_seg_round_trip(tmp_path: Path) -> None:
    from test_imaging_frame_index import _seg

    path = _seg(tmp_path, "BINARY", pydicom.uid.ExplicitVRLittleEndian)
    ds = pydicom.dcmread(path)
    _, back = _round_trip(ds)
    _assert_same(ds, back)
    assert back.SegmentSequence[0].SegmentLabel == "Liver"
    assert len(back.PerFrameFunctionalGroupsSequence) == 3


def test_deferred_values_are_not_read(testdata: Path) -> None:
    path = testdata / "dcmqi-ct3slice-seg/ct/01.dcm"
    ds = pydicom.dcmread(path, defer_size=1024)
    sent = instance_metadata(ds, URL)
    raw = ds.get_item(0x7FE00010, keep_deferred=True)
    assert isinstance(raw, RawDataElement) and raw.value is None  # still on disk
    assert sent["7FE00010"]["vr"] == "OW"  # implicit VR file: chosen from BitsAllocated 16
    assert sent["00100010"]["Value"] == [{"Alphabetic": str(pydicom.dcmread(path).PatientName)}]


def test_bulk_paths() -> None:
    assert bulk_path_text((0x7FE00010,)) == "7FE00010"
    assert parse_bulk_path("00880200/1/00281201") == (0x00880200, 1, 0x00281201)
    for bad in ("00880200/1", "7FE0001", "00880200/x/00281201", "00880200/01/00281201"):
        with pytest.raises(BadRequest, match="bulk data path"):
            parse_bulk_path(bad)
    ds = Dataset()
    ds.IconImageSequence = [Dataset()]
    with pytest.raises(LookupError, match="1 item"):
        find_element(ds, (0x00880200, 3, 0x00281201))
    with pytest.raises(LookupError, match="no element"):
        find_element(ds, (0x7FE00010,))


def test_qido_study_result_from_an_index_record(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "dcmqi-ct3slice-seg/ct/01.dcm", stop_before_pixels=True)
    record = level_record(ds, Level.STUDY)
    assert "7FE00010" not in record and "00080060" not in record  # Modality is series-level
    query = parse_query([("includefield", "StudyDescription")], Level.STUDY)
    result = qido_result(
        [record], query.return_tags(),
        retrieve_url="http://segmap.test/dicomweb/projects/p1/studies/" + ds.StudyInstanceUID,
        counts={NUMBER_OF_STUDY_RELATED_SERIES: 2, NUMBER_OF_STUDY_RELATED_INSTANCES: 4},
        modalities=["SEG", "CT", "CT"],
    )  # fmt: skip
    assert list(result) == sorted(result)
    back = Dataset.from_json(result)
    assert back.StudyInstanceUID == ds.StudyInstanceUID
    assert back.PatientID == ds.PatientID and back.PatientName == ds.PatientName
    assert back.NumberOfStudyRelatedSeries == 2 and back.NumberOfStudyRelatedInstances == 4
    assert list(back.ModalitiesInStudy) == ["CT", "SEG"]
    assert back.InstanceAvailability == "ONLINE"
    assert back.RetrieveURL.endswith(ds.StudyInstanceUID)
    assert ("StudyDescription" in back) == ("StudyDescription" in ds)
    assert "PatientAge" not in back  # stored, but neither a default nor asked for


def test_qido_series_result_outside_a_study_carries_the_study(testdata: Path) -> None:
    ds = pydicom.dcmread(testdata / "dcmqi-ct3slice-seg/seg/liver.dcm", stop_before_pixels=True)
    records = [level_record(ds, Level.STUDY), level_record(ds, Level.SERIES)]
    tags = returned(Level.SERIES)  # /series: not scoped to a study
    result = qido_result(records, tags, counts={0x00201209: 1})
    back = Dataset.from_json(result)
    assert back.Modality == "SEG" and back.SeriesInstanceUID == ds.SeriesInstanceUID
    assert back.PatientID == ds.PatientID and back.NumberOfSeriesRelatedInstances == 1
    everything = qido_result(records, None)
    assert ("0008103E" in everything) == ("SeriesDescription" in ds)
    assert "0020000E" in everything and "00100020" in everything
