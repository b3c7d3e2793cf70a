"""Helpers for the archive tests: a real Orthanc, fast followers, waits, and the truths.

Orthanc is :class:`segmap.testing.orthanc.OrthancServer` (Debian ``orthanc`` and
``orthanc-dicomweb``, a plain process on loopback). The truth of a SEG written by
``imaging_data.write_seg`` is counted here by hand: segment ``n`` (0-based) covers rows
``2 + 3n`` to ``4 + 3n`` and columns 3 to 8 of every slice.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import highdicom as hd
import httpx
import numpy as np
import pydicom
import pytest

from segmap.server.app import create_app
from segmap.server.archive.follower import FollowerTiming
from segmap.server.settings import Settings
from segmap.testing.orthanc import OrthancServer, missing_parts
from server_fixtures import World, in_ci

T = TypeVar("T")

# Short waits so the tests follow within a second or two; the backoff still doubles.
FAST = FollowerTiming(
    poll_s=0.2,
    dicomweb_poll_s=0.3,
    sweep_s=0.0,
    backoff_min_s=0.2,
    backoff_max_s=1.0,
    watch_s=0.2,
)
DICOM_JSON = {"Accept": "application/dicom+json"}
SEG_ROWS = lambda n: slice(2 + 3 * n, 5 + 3 * n)  # noqa: E731  rows of segment n
SEG_COLUMNS = slice(3, 9)


def require_orthanc() -> None:
    """Skip (fail in CI) when Orthanc or its DICOMweb plugin is missing."""
    reason = missing_parts()
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason} (CI=true: Orthanc tests must run here)", pytrace=False)
        pytest.skip(reason)


def fast_app(settings: Settings, timing: FollowerTiming = FAST) -> Iterator[Any]:
    """The real application with short follower waits (``timing``)."""
    application = create_app(settings)
    application.state.archive_timing = timing
    yield application
    application.state.database.dispose()


def orthanc_server(tmp_path: Path, **kwargs: Any) -> Iterator[OrthancServer]:
    """A private Orthanc with StableAge 1 s."""
    require_orthanc()
    with OrthancServer(tmp_path / "orthanc", stable_age_s=1, **kwargs) as server:
        yield server


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 120.0) -> T:
    """Poll ``probe`` until it gives a true value; fail naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)  # polling interval; the loop ends on the condition
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def connect(world: World, body: dict[str, Any], who: str = "owner") -> dict[str, Any]:
    """PUT the archive connection; its answer."""
    r = world.client.put(f"{world.project_url}/archive", json=body, headers=world.h(who))
    assert r.status_code in (200, 201), r.text
    return dict(r.json())


def archive_state(world: World) -> dict[str, Any]:
    """GET the archive connection (owner)."""
    r = world.client.get(f"{world.project_url}/archive", headers=world.h("owner"))
    assert r.status_code == 200, r.text
    return dict(r.json())


def collections(world: World) -> list[dict[str, Any]]:
    """Every ROI collection of every session of project P."""
    c, h = world.client, world.h("owner")
    found = []
    for s in c.get(f"{world.project_url}/sessions", headers=h).json():
        r = c.get(f"{world.project_url}/sessions/{s['id']}/collections", headers=h)
        found.extend(r.json())
    return found


def seg_truth(shape_ijk: tuple[int, int, int], values: list[int]) -> np.ndarray:
    """The mask of ``write_seg``'s boxes, ``[i, j, k]``, segment ``n`` painted ``values[n]``."""
    truth = np.zeros(shape_ijk, dtype=np.int64)
    for n, value in enumerate(values):
        truth[SEG_COLUMNS, SEG_ROWS(n), :] = value
    return truth


def derived_seg_in_orthanc(orthanc: OrthancServer, study: str) -> list[str]:
    """SeriesInstanceUIDs of the SEG series in Orthanc made by segmap (found by QIDO)."""
    r = httpx.get(
        f"{orthanc.dicomweb_url}/studies/{study}/series",
        params={"Modality": "SEG", "includefield": "00080070"},
        headers=DICOM_JSON,
        auth=orthanc.auth,
    )
    assert r.status_code in (200, 204), r.text
    rows = r.json() if r.status_code == 200 else []
    return [
        s["0020000E"]["Value"][0]
        for s in rows
        if (s.get("00080070", {}).get("Value") or [""])[0] == "segmap"
    ]


def read_back_seg(
    orthanc: OrthancServer,
    study: str,
    series: str,
    ct_files: list[Path],
    values_by_label: dict[str, int],
) -> np.ndarray:
    """The SEG stored in Orthanc (WADO-RS) painted as a label mask ``[i, j, k]``.

    Each frame is placed on the slice of the CT instance it was derived from, and takes
    the value the map gives its segment's label (labels joined by " / " share a value).
    """
    r = httpx.get(
        f"{orthanc.dicomweb_url}/studies/{study}/series/{series}",
        headers={"Accept": 'multipart/related; type="application/dicom"'},
        auth=orthanc.auth,
    )
    assert r.status_code == 200, r.text
    from segmap.server.archive.wado_parts import split_multipart

    (part,) = list(split_multipart(r.headers["content-type"], r.content))
    seg = hd.seg.Segmentation.from_dataset(pydicom.dcmread(io.BytesIO(part)))
    slice_of = {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: k
        for k, p in enumerate(ct_files)
    }
    first = pydicom.dcmread(ct_files[0], stop_before_pixels=True)
    mask = np.zeros((int(first.Columns), int(first.Rows), len(ct_files)), dtype=np.int64)
    labels = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    pixels = seg.pixel_array.reshape(-1, int(seg.Rows), int(seg.Columns))
    for frame, group in zip(pixels, seg.PerFrameFunctionalGroupsSequence, strict=True):
        number = int(group.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        source = group.DerivationImageSequence[0].SourceImageSequence[0]
        k = slice_of[source.ReferencedSOPInstanceUID]
        value = values_by_label[labels[number].split(" / ")[0]]
        mask[:, :, k][frame.T > 0] = value
    return mask
