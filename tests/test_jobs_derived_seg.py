"""Each conversion job also writes the mask as a DICOM SEG, and the DICOMweb root lists
it as a series of the session's study (what OHIF opens over the scan)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom

from jobs_helpers import small_case
from segmap import testing as syn
from server_fixtures import World
from test_jobs_api import put_map, upload_case, wait_for_jobs

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def test_conversion_seg_is_a_series_of_the_study_and_holds_the_mask(
    world: World, tmp_path: Path
) -> None:
    c, h = world.client, world.h("member")
    r = c.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    put_map(world, "liver-ct", syn.PHANTOM_REGION_VALUES)
    case = small_case(tmp_path / "case", 31)
    up = upload_case(world, case)
    (job,) = wait_for_jobs(world, 1)
    assert job["state"] == "succeeded", job
    first_image = pydicom.dcmread(case.series.files[0])
    study, image_series = first_image.StudyInstanceUID, first_image.SeriesInstanceUID

    root = "/dicomweb/projects/P"
    r = c.get(f"{root}/studies/{study}/series", params={"Modality": "SEG"}, headers=h)
    assert r.status_code == 200, r.text
    found = r.json()
    # The derived SEG only: the annotation is an RTSTRUCT.
    assert len(found) == 1
    series_uid = found[0]["0020000E"]["Value"][0]
    r = c.get(f"{root}/studies/{study}/series/{series_uid}/instances", headers=h)
    (instance,) = r.json()
    assert instance["00080016"]["Value"] == [SEG_STORAGE]
    sop = instance["00080018"]["Value"][0]
    r = c.get(
        f"{root}/studies/{study}/series/{series_uid}/instances/{sop}",
        headers={**h, "Accept": "application/dicom"},
    )
    assert r.status_code == 200, r.text
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(r.content)))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == image_series
    labels = {s.SegmentLabel for s in seg.SegmentSequence}
    # Segments are named from the map (a value shared by several names joins them).
    map_names = set(syn.PHANTOM_REGION_VALUES)
    assert labels and all(set(label.split(" / ")) <= map_names for label in labels), labels

    # The same voxels as the NIfTI mask the job stored beside it.
    assert job["resources_url"].startswith(f"/api/v1/projects/P/sessions/{up['session']['id']}/")
    base = job["resources_url"].removeprefix("/api/v1")
    mask_bytes = c.get(f"/api/v1{base}/liver-ct/files/mask.nii.gz", headers=h)
    assert mask_bytes.status_code == 200
    mask = np.asarray(nib.Nifti1Image.from_bytes(gzip.decompress(mask_bytes.content)).dataobj)
    labelled = int(np.count_nonzero(mask))
    assert labelled > 0
    frames = seg.pixel_array  # (frames, rows, columns), one frame per segment per plane
    assert int(np.count_nonzero(frames)) == labelled

    # Converting again replaces the SEG: still one derived SEG series in the study.
    r = c.post("/api/v1/projects/P/models/liver-ct/convert", json={}, headers=world.h("owner"))
    assert r.status_code in (200, 201, 202), r.text
    wait_for_jobs(world, 2)
    r = c.get(f"{root}/studies/{study}/series", params={"Modality": "SEG"}, headers=h)
    assert len(r.json()) == 1 and r.json()[0]["0020000E"]["Value"][0] != series_uid
