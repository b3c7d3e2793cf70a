"""A project archive for the DICOMweb tests: what is stored, and dicomweb-client on it.

The study is written here with ``segmap.testing`` (two CT series, one of them RLE
Lossless) and stored through the REST API, with a SEG and an RTSTRUCT on the first
series stored as ROI collections; every truth a test asserts is read from these files.
The client is dicomweb-client over real HTTP (uvicorn on loopback).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.uid import RLELossless

from imaging_data import GRID_SPACING, Study, multipart, write_phantom_rtstruct, write_seg
from segmap.testing import StudyIdentity, axial_grid, write_ct_series
from server_fixtures import World


@dataclass(frozen=True)
class Stored:
    """The files stored in project P (by SOPInstanceUID) and the study they make."""

    study: Study
    seg: Path
    rtstruct: Path

    @property
    def files(self) -> dict[str, Path]:
        """Every stored file by SOPInstanceUID."""
        paths = [*self.study.files, self.seg, self.rtstruct]
        return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in paths}

    @property
    def study_uid(self) -> str:
        """The StudyInstanceUID."""
        return self.study.identity.study_instance_uid


def store_study(world: World, folder: Path, patient_id: str = "DW1", seed: int = 21) -> Stored:
    """Write and store (REST upload + collection PUTs) the study described above."""
    identity = StudyIdentity.generate(seed, patient_id=patient_id)
    grid = axial_grid((24, 20, 4), GRID_SPACING)
    volume = np.random.default_rng(seed).integers(-1000, 1200, grid.array_shape).astype(float)
    series = tuple(
        write_ct_series(
            folder / f"s{number}",
            grid,
            volume,
            identity=identity,
            seed=seed + number,
            series_number=number,
            series_description=f"Synthetic CT {number}",
            transfer_syntax=syntax,
            file_prefix=f"s{number}-",
        )
        for number, syntax in ((2, pydicom.uid.ExplicitVRLittleEndian), (3, RLELossless))
    )
    study = Study(identity, series)
    r = world.client.post(
        "/api/v1/projects/P/sessions", files=multipart(study.files), headers=world.h("owner")
    )
    assert r.status_code == 201, r.text
    session_id = r.json()["sessions"][0]["id"]
    seg = write_seg(folder / "seg.dcm", series[0], ["Liver", "Spleen"])
    rt = folder / "rt.dcm"
    write_phantom_rtstruct(rt, series[0])
    url = f"/api/v1/projects/P/sessions/{session_id}/collections"
    for label, path, kind in (("seg", seg, "SEG"), ("rt", rt, "RTSTRUCT")):
        r = world.client.put(
            f"{url}/{label}", content=path.read_bytes(), params={"type": kind},
            headers=world.h("owner"),
        )  # fmt: skip
        assert r.status_code == 201, r.text
    return Stored(study, seg, rt)


def client_for(base: str, headers: dict[str, str], project: str = "P") -> DICOMwebClient:
    """dicomweb-client on project ``project``'s root, sending ``headers``."""
    return DICOMwebClient(url=f"{base}/dicomweb/projects/{project}", headers=headers)


def basic_client(base: str, username: str, password: str, project: str = "P") -> DICOMwebClient:
    """dicomweb-client with HTTP Basic credentials (as command-line tools use)."""
    session = requests.Session()
    session.auth = (username, password)
    return DICOMwebClient(url=f"{base}/dicomweb/projects/{project}", session=session)


def raw_instances(client: DICOMwebClient, url: str) -> list[bytes]:
    """The parts of a WADO-RS instances answer as bytes (dicomweb-client's decoder)."""
    accept = {"Accept": 'multipart/related; type="application/dicom"'}
    response = client._http_get(url, headers=accept)
    return list(client._decode_multipart_message(response, stream=False))
