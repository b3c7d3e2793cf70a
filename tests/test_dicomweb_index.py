"""The DICOMweb index is filled when instances are stored, and backfilled for older data.

Through the real service (REST uploads), on SQLite and PostgreSQL. The truths are the
files written here and pydicom's reading of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from alembic import command
from alembic.config import Config
from pydicom.uid import RLELossless
from sqlalchemy import func, select
from sqlalchemy.orm import undefer

from imaging_data import Study, multipart, write_phantom_rtstruct, write_seg, write_study
from segmap.imaging.frame_index import FrameIndex, NoPixelData, index_frames, index_frames_of
from segmap.imaging.frame_read import read_frame
from segmap.server.app import create_app
from segmap.server.db.dicomweb import DicomwebInstance, DicomwebSeries, DicomwebStudy
from segmap.server.db.engine import MIGRATIONS_DIR
from segmap.server.dicomweb.dicomjson import BULK_DATA_THRESHOLD
from segmap.server.settings import Settings
from segmap.testing import write_ct_series
from server_fixtures import World


def _upload(world: World, study: Study) -> int:
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    return int(r.json()["sessions"][0]["id"])


def _rows(world: World) -> tuple[list[DicomwebStudy], list[DicomwebSeries], list[DicomwebInstance]]:
    with world.api.app.state.database.session() as db:
        return (
            list(db.scalars(select(DicomwebStudy))),
            list(db.scalars(select(DicomwebSeries).order_by(DicomwebSeries.id))),
            list(
                db.scalars(
                    select(DicomwebInstance)
                    .options(undefer(DicomwebInstance.frame_index))
                    .options(undefer(DicomwebInstance.metadata_json))
                    .order_by(DicomwebInstance.id)
                )
            ),
        )


def test_stored_images_are_indexed_with_their_frames(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path / "d", seed=3, patient_id="IDX", series_numbers=(2, 5))
    session_id = _upload(world, study)
    studies, series, instances = _rows(world)
    first = pydicom.dcmread(study.series[0].files[0])
    assert [(s.session_id, s.study_instance_uid, s.patient_id) for s in studies] == [
        (session_id, first.StudyInstanceUID, "IDX")
    ]
    assert studies[0].study_date == first.StudyDate
    assert sorted((s.series_instance_uid, s.modality, s.series_number) for s in series) == sorted(
        (w.series_instance_uid, "CT", n) for w, n in zip(study.series, (2, 5), strict=True)
    )
    assert all(s.scan_id is not None and s.project_id == "P" for s in series)
    assert len(instances) == len(study.files)
    storage = world.api.app.state.storage
    for path in study.files:
        ds = pydicom.dcmread(path)
        row = next(i for i in instances if i.sop_instance_uid == ds.SOPInstanceUID)
        assert row.sop_class_uid == ds.SOPClassUID and row.instance_number == ds.InstanceNumber
        assert row.transfer_syntax_uid == ds.file_meta.TransferSyntaxUID
        assert row.frame_index is not None and row.frames_refusal is None
        index = FrameIndex.from_bytes(row.frame_index)
        with storage.open(row.storage_key) as fp:
            assert read_frame(fp, index, 1) == ds.PixelData
        assert row.record["00080018"]["Value"] == [ds.SOPInstanceUID]
        assert '"BulkDataURI":"7FE00010"' in (row.metadata_json or "")


def test_collections_are_instances_of_their_own_series(world: World, tmp_path: Path) -> None:
    study = write_study(tmp_path / "d", seed=4, patient_id="RT", series_numbers=(2,))
    session_id = _upload(world, study)
    url = f"/api/v1/projects/P/sessions/{session_id}/collections"
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    r = world.client.put(
        f"{url}/first",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    rt_ds = pydicom.dcmread(rt)
    _, series, instances = _rows(world)
    rt_row = next(i for i in instances if i.collection_id is not None)
    assert rt_row.sop_instance_uid == rt_ds.SOPInstanceUID
    assert "no Pixel Data" in (rt_row.frames_refusal or "") and rt_row.frame_index is None
    rt_series = next(s for s in series if s.id == rt_row.series_id)
    assert rt_series.scan_id is None and rt_series.modality == "RTSTRUCT"
    assert rt_series.series_instance_uid == rt_ds.SeriesInstanceUID

    # Overwriting the label with a SEG replaces the indexed instance and its empty series.
    seg = write_seg(tmp_path / "seg.dcm", study.series[0], ["Liver"])
    r = world.client.put(
        f"{url}/first",
        content=seg.read_bytes(),
        params={"type": "SEG", "overwrite": "true"},
        headers=world.h("owner"),
    )
    assert r.status_code == 200, r.text
    seg_ds = pydicom.dcmread(seg)
    _, series, instances = _rows(world)
    collection_rows = [i for i in instances if i.collection_id is not None]
    assert [i.sop_instance_uid for i in collection_rows] == [seg_ds.SOPInstanceUID]
    assert rt_ds.SeriesInstanceUID not in {s.series_instance_uid for s in series}
    assert collection_rows[0].number_of_frames == int(seg_ds.NumberOfFrames)
    assert collection_rows[0].frame_index is not None


def _downgrade_to_0004(url: str) -> None:
    from segmap.server.db.engine import Database

    database = Database(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with database.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0004")
    finally:
        database.dispose()


def test_instances_stored_before_the_index_are_backfilled_at_start(
    world: World, settings: Settings, tmp_path: Path
) -> None:
    study = write_study(tmp_path / "d", seed=5, patient_id="OLD", series_numbers=(2,))
    session_id = _upload(world, study)
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    r = world.client.put(
        f"/api/v1/projects/P/sessions/{session_id}/collections/old",
        content=rt.read_bytes(),
        params={"type": "RTSTRUCT"},
        headers=world.h("owner"),
    )
    assert r.status_code == 201, r.text
    before = _rows(world)
    world.api.app.state.database.dispose()
    _downgrade_to_0004(settings.effective_database_url)  # as if stored by the older version

    again = create_app(settings)  # migrates to head (empty index), then backfills
    try:
        with again.state.database.session() as db:
            count = db.scalar(select(func.count()).select_from(DicomwebInstance))
            uids = set(db.scalars(select(DicomwebInstance.sop_instance_uid)))
            studies = list(db.scalars(select(DicomwebStudy)))
        assert count == len(study.files) + 1
        assert uids == {i.sop_instance_uid for i in before[2]}
        assert [s.patient_id for s in studies] == ["OLD"]
        create_app(settings).state.database.dispose()  # a second start adds nothing
        with again.state.database.session() as db:
            assert db.scalar(select(func.count()).select_from(DicomwebInstance)) == count
    finally:
        again.state.database.dispose()


def test_frames_indexed_from_the_parsed_header_equal_a_fresh_index(tmp_path: Path) -> None:
    """The indexer reuses its one parse of the file; the layout must not change by it."""
    study = write_study(tmp_path / "d", seed=6, patient_id="SAME", series_numbers=(2,))
    rle = write_ct_series(
        tmp_path / "rle", study.series[0].grid, np.zeros(study.series[0].grid.array_shape),
        transfer_syntax=RLELossless,
    )  # fmt: skip
    seg = write_seg(tmp_path / "seg.dcm", study.series[0], ["A", "B"])
    rt = tmp_path / "rt.dcm"
    write_phantom_rtstruct(rt, study.series[0])
    for path in [study.files[0], rle.files[0], seg]:
        with open(path, "rb") as fp:
            parsed = pydicom.dcmread(fp, defer_size=BULK_DATA_THRESHOLD)
            assert index_frames_of(parsed, fp) == index_frames(path), path.name
    with open(rt, "rb") as fp, pytest.raises(NoPixelData):
        index_frames_of(pydicom.dcmread(fp, defer_size=BULK_DATA_THRESHOLD), fp)
