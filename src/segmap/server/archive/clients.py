"""Clients of the lab's archive over httpx: Orthanc's REST API, and DICOMweb.

Both give what the follower and the importer need — the files of a series, the series of
a study, storing a file — and say what went wrong in three kinds of error:
:class:`ArchiveUnavailable` (cannot connect, timed out, a 5xx: try again later),
:class:`ArchiveRefused` (401/403: the credentials) and :class:`ArchiveAnswerError` (an
answer that is not what the protocol says: wrong URL, or not that kind of server).
Messages name the URL without credentials, never the password.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from segmap.server.archive.errors import (
    ArchiveAnswerError,
    ArchiveError,
    ArchiveRefused,
    ArchiveUnavailable,
)
from segmap.server.archive.http import ArchiveHttp
from segmap.server.archive.wado_parts import iter_multipart

__all__ = [
    "ArchiveAnswerError",
    "ArchiveClient",
    "ArchiveError",
    "ArchiveRefused",
    "ArchiveUnavailable",
    "DicomwebClient",
    "OrthancClient",
    "SeriesRef",
    "client_for",
]

TIMEOUT_S = 30.0
DICOM_JSON = "application/dicom+json"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'
STUDY_UID_TAG = "0020000D"
SERIES_DATE_TAG = "00080021"
SERIES_INSTANCES_TAG = "00201209"  # NumberOfSeriesRelatedInstances
# QIDO's includefield is sent once per attribute: PS3.18 allows that and a comma-separated
# list alike, but Orthanc's DICOMweb plugin (1.7) ignores a list and returns no SeriesDate,
# which left the DICOMweb follower without a cursor (every poll a full search).
FILE_HEADERS = {"Accept-Encoding": "identity"}
# Files are asked for uncompressed: httpx offers gzip by default and Orthanc (its
# HttpCompressionEnabled is on by default) then deflates every file it sends, which cost
# ~80 ms per 512 x 512 CT slice of noisy pixels against ~1.5 ms uncompressed on loopback
# (0.5 MB at a LAN's 100 MB/s is 5 ms): the CPU, not the network, was the bottleneck.
# JSON answers stay compressed; they are small and deflate well.
FETCH_WORKERS = 4
# Instance files fetched from Orthanc at once. Uncompressed on loopback the transfer alone
# is no faster so (300 CT slices: 0.6 to 1.0 s one after the other, 0.6 to 0.8 s four at a
# time, eight no better), but the importer stores each file while the next ones arrive:
# with the machine loaded, the import of a 300-slice CT took 4.9 s (median of 3) this way
# against 7.3 s fetching and storing one file after the other.


@dataclass(frozen=True)
class SeriesRef:
    """A series of the archive: its UIDs, modality, Orthanc's id (Orthanc only) and how
    many instances it holds (0: not said)."""

    study_uid: str
    series_uid: str
    modality: str
    orthanc_id: str = ""
    series_date: str = ""
    instances: int = 0


class OrthancClient:
    """Orthanc's REST API at ``url`` (e.g. ``http://pacs:8042``)."""

    kind = "orthanc"

    def __init__(
        self, url: str, username: str = "", password: str = "", timeout_s: float = TIMEOUT_S
    ) -> None:
        self.http = ArchiveHttp(url, username, password, timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def system(self) -> dict[str, Any]:
        """``GET /system`` (what Orthanc says of itself)."""
        found = self.http.json("GET", "/system")
        if not isinstance(found, dict) or "ApiVersion" not in found:
            raise ArchiveAnswerError(
                f"{self.http.base}/system is not Orthanc's REST API (no ApiVersion in the "
                "answer); give the Orthanc server's root URL, e.g. http://host:8042"
            )
        return found

    def changes(self, since: int, limit: int = 100) -> tuple[list[dict[str, Any]], int, bool]:
        """Changes after sequence number ``since``: (changes, last sequence number, done)."""
        found = self.http.json("GET", f"/changes?since={since}&limit={limit}")
        if not isinstance(found, dict) or "Changes" not in found:
            raise ArchiveAnswerError(f"{self.http.base}/changes did not answer a change list")
        return list(found["Changes"]), int(found.get("Last", since)), bool(found.get("Done"))

    def last_change(self) -> int:
        """The newest sequence number (``/changes?last``)."""
        found = self.http.json("GET", "/changes?last")
        return int(found.get("Last", 0)) if isinstance(found, dict) else 0

    def series_by_id(self, orthanc_id: str) -> tuple[SeriesRef, list[str]] | None:
        """A series by Orthanc id with its instances' ids; None when it is gone."""
        answer = self.http.call("GET", f"/series/{quote(orthanc_id)}")
        if answer.status_code == 404:
            return None
        series = answer.json()
        study = self.http.json("GET", f"/studies/{quote(series['ParentStudy'])}")
        tags = series.get("MainDicomTags", {})
        ref = SeriesRef(
            study_uid=str(study.get("MainDicomTags", {}).get("StudyInstanceUID", "")),
            series_uid=str(tags.get("SeriesInstanceUID", "")),
            modality=str(tags.get("Modality", "")),
            orthanc_id=orthanc_id,
            series_date=str(tags.get("SeriesDate", "")),
            instances=len(series.get("Instances", [])),
        )
        return ref, [str(i) for i in series.get("Instances", [])]

    def _lookup(self, uid: str, level: str) -> list[str]:
        found = self.http.json("POST", "/tools/lookup", content=uid.encode("ascii"))
        return [str(f["ID"]) for f in found if isinstance(f, dict) and f.get("Type") == level]

    def series_files(self, study_uid: str, series_uid: str) -> Iterator[bytes]:
        """Every instance file of a series (none when the archive lacks it), in Orthanc's
        order, fetched ``FETCH_WORKERS`` at a time (at most twice that many held)."""
        for orthanc_id in self._lookup(series_uid, "Series"):
            found = self.series_by_id(orthanc_id)
            if found is None or (study_uid and found[0].study_uid != study_uid):
                continue
            yield from self.instance_files(found[1])

    def instance_files(self, instance_ids: list[str]) -> Iterator[bytes]:
        """The files of the given instances, in that order, fetched in parallel."""
        if len(instance_ids) < 2:
            yield from (self.instance_file(i) for i in instance_ids)
            return
        with ThreadPoolExecutor(FETCH_WORKERS, thread_name_prefix="segmap-orthanc") as pool:
            window: deque[Future[bytes]] = deque()
            try:
                for instance in instance_ids:
                    window.append(pool.submit(self.instance_file, instance))
                    if len(window) >= 2 * FETCH_WORKERS:
                        yield window.popleft().result()
                while window:
                    yield window.popleft().result()
            finally:
                for waiting in window:  # stopped early (an error, or the reader left)
                    waiting.cancel()

    def instance_file(self, instance_id: str) -> bytes:
        """One instance's Part-10 file."""
        answer = self.http.call(
            "GET", f"/instances/{quote(instance_id)}/file", headers=FILE_HEADERS
        )
        if answer.status_code != 200:
            raise ArchiveAnswerError(
                f"instance {instance_id} could not be read (HTTP {answer.status_code})"
            )
        return answer.content

    def find_series(self, series_uid: str) -> SeriesRef | None:
        """A series by its SeriesInstanceUID; None when the archive lacks it."""
        for orthanc_id in self._lookup(series_uid, "Series"):
            found = self.series_by_id(orthanc_id)
            if found is not None:
                return found[0]
        return None

    def study_series(self, study_uid: str) -> list[SeriesRef]:
        """The series of a study (none when the archive lacks it)."""
        out: list[SeriesRef] = []
        for study_id in self._lookup(study_uid, "Study"):
            study = self.http.json("GET", f"/studies/{quote(study_id)}")
            for series_id in study.get("Series", []):
                found = self.series_by_id(str(series_id))
                if found is not None:
                    out.append(found[0])
        return out

    def store(self, dicom: bytes) -> None:
        """Store one Part-10 file (``POST /instances``)."""
        answer = self.http.call(
            "POST", "/instances", content=dicom, headers={"Content-Type": "application/dicom"}
        )
        if answer.status_code != 200:
            raise ArchiveAnswerError(
                f"Orthanc did not store the file (HTTP {answer.status_code}: {answer.text[:200]})"
            )


class DicomwebClient:
    """A DICOMweb root at ``url`` (QIDO-RS, WADO-RS, STOW-RS)."""

    kind = "dicomweb"

    def __init__(
        self, url: str, username: str = "", password: str = "", timeout_s: float = TIMEOUT_S
    ) -> None:
        self.http = ArchiveHttp(url, username, password, timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def probe(self) -> None:
        """One QIDO study search; raises when the root does not answer as DICOMweb does."""
        answer = self.http.call("GET", "/studies?limit=1", headers={"Accept": DICOM_JSON})
        kind = answer.headers.get("content-type", "")
        if answer.status_code == 204:
            return
        ok = answer.status_code == 200 and ("json" in kind)
        if ok:
            try:
                ok = isinstance(answer.json(), list)
            except ValueError:
                ok = False
        if not ok:
            raise ArchiveAnswerError(
                f"{self.http.base} is not a DICOMweb root: QIDO GET /studies answered HTTP "
                f"{answer.status_code} {kind or 'without a content type'}, not a DICOM JSON "
                "list; give the root that holds /studies (for Orthanc: http://host:8042/dicom-web)"
            )

    def search_series(
        self, modality: str, since_date: str = "", offset: int = 0, limit: int = 500
    ) -> list[SeriesRef]:
        """QIDO series of ``modality``, with SeriesDate on or after ``since_date`` (YYYYMMDD)."""
        params: dict[str, str | list[str]] = {
            "Modality": modality,
            "offset": str(offset),
            "limit": str(limit),
            "includefield": [STUDY_UID_TAG, SERIES_DATE_TAG],
        }
        if since_date:
            params["SeriesDate"] = f"{since_date}-"
        found = self.http.json("GET", "/series", params=params, headers={"Accept": DICOM_JSON})
        return [_series_ref(r) for r in found if isinstance(r, dict)]

    def find_series(self, series_uid: str) -> SeriesRef | None:
        """A series by its SeriesInstanceUID; None when the archive lacks it."""
        found = self.http.json(
            "GET",
            "/series",
            headers={"Accept": DICOM_JSON},
            params={
                "SeriesInstanceUID": series_uid,
                "includefield": [STUDY_UID_TAG, SERIES_INSTANCES_TAG],
            },
        )
        refs = [_series_ref(r) for r in found if isinstance(r, dict)]
        return refs[0] if refs else None

    def study_series(self, study_uid: str) -> list[SeriesRef]:
        """The series of a study (none when the archive lacks it)."""
        answer = self.http.call(
            "GET", f"/studies/{quote(study_uid)}/series", headers={"Accept": DICOM_JSON}
        )
        if answer.status_code in (204, 404):
            return []
        return [_series_ref(r, study_uid) for r in answer.json() if isinstance(r, dict)]

    def series_files(self, study_uid: str, series_uid: str) -> Iterator[bytes]:
        """Every instance of a series, retrieved with WADO-RS as stored; each is yielded
        as soon as it has arrived, so it can be stored while the next ones come."""
        path = f"/studies/{quote(study_uid)}/series/{quote(series_uid)}"
        headers = {"Accept": MULTIPART_DICOM, **FILE_HEADERS}
        with self.http.stream("GET", path, headers=headers) as answer:
            if answer.status_code in (204, 404):
                return
            if answer.status_code != 200:
                raise ArchiveAnswerError(f"WADO-RS {path} answered HTTP {answer.status_code}")
            kind = answer.headers.get("content-type", "")
            yield from iter_multipart(kind, answer.iter_bytes())

    def store(self, dicom: bytes) -> None:
        """Store one Part-10 file with STOW-RS."""
        boundary = "segmap-stow-boundary-7d1c3e"
        body = (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + dicom
            + f"\r\n--{boundary}--\r\n".encode()
        )
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        answer = self.http.call(
            "POST",
            "/studies",
            content=body,
            headers={"Content-Type": content_type, "Accept": DICOM_JSON},
        )
        if answer.status_code not in (200, 202):
            raise ArchiveAnswerError(
                f"STOW-RS did not store the file (HTTP {answer.status_code}: {answer.text[:200]})"
            )


def _value(record: dict[str, Any], tag: str) -> str:
    values = record.get(tag, {}).get("Value") or [""]
    return str(values[0])


def _series_ref(record: dict[str, Any], study_uid: str = "") -> SeriesRef:
    instances = _value(record, SERIES_INSTANCES_TAG)
    return SeriesRef(
        study_uid=_value(record, STUDY_UID_TAG) or study_uid,
        series_uid=_value(record, "0020000E"),
        modality=_value(record, "00080060"),
        series_date=_value(record, SERIES_DATE_TAG),
        instances=int(instances) if instances.isdigit() else 0,
    )


ArchiveClient = OrthancClient | DicomwebClient


def client_for(
    kind: str, url: str, username: str, password: str, timeout_s: float = TIMEOUT_S
) -> ArchiveClient:
    """The client of an archive of ``kind`` (``orthanc`` or ``dicomweb``)."""
    if kind == "orthanc":
        return OrthancClient(url, username, password, timeout_s)
    return DicomwebClient(url, username, password, timeout_s)
