""" "Test connection": one call to the archive, and what is wrong in words.

Three problems are told apart, each with its own sentence: ``unreachable`` (nothing
answers at the URL, or not in time), ``credentials`` (the archive refused the username
and password) and ``not_dicomweb`` (something answered, but not as an Orthanc REST API
or a DICOMweb root does: usually the wrong URL or the wrong kind).
"""

from __future__ import annotations

from dataclasses import dataclass

from segmap.server.archive.clients import (
    ArchiveAnswerError,
    ArchiveRefused,
    ArchiveUnavailable,
    DicomwebClient,
    OrthancClient,
    client_for,
)

PROBLEM_UNREACHABLE = "unreachable"
PROBLEM_CREDENTIALS = "credentials"
PROBLEM_NOT_DICOMWEB = "not_dicomweb"
TEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Diagnosis:
    """``ok``; else ``problem`` (one of the three above) and ``message`` saying what to do."""

    ok: bool
    problem: str | None
    message: str


def test_connection(kind: str, url: str, username: str, password: str) -> Diagnosis:
    """Call the archive once as the follower would and say whether it works."""
    client = client_for(kind, url, username, password, TEST_TIMEOUT_S)
    try:
        if isinstance(client, OrthancClient):
            found = client.system()
            what = f"Orthanc {found.get('Version', '')} ({found.get('Name', 'unnamed')})"
        else:
            assert isinstance(client, DicomwebClient)
            client.probe()
            what = "a DICOMweb root (QIDO-RS answered)"
    except ArchiveUnavailable as exc:
        return Diagnosis(False, PROBLEM_UNREACHABLE, f"Unreachable: {exc}")
    except ArchiveRefused as exc:
        return Diagnosis(False, PROBLEM_CREDENTIALS, f"Credentials refused: {exc}")
    except ArchiveAnswerError as exc:
        what = "Not Orthanc's REST API" if kind == "orthanc" else "Not DICOMweb"
        return Diagnosis(False, PROBLEM_NOT_DICOMWEB, f"{what}: {exc}")
    finally:
        client.close()
    return Diagnosis(True, None, f"Connected: {url} is {what}")
