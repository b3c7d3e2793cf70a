"""Names that end up in file names: the dataset's and each case's.

Case names are derived from the case's identity (the scan's SeriesInstanceUID and the ROI
collection's SOPInstanceUID) by SHA-256, so they are the same in every dataset that takes
the case, never depend on the order cases were found in, carry nothing of the patient
(no name, no ID, no date) and are safe on any file system: ``case_`` and 10 lower-case
hexadecimal digits (longer only in the unlikely event two cases share the first 10).
"""

from __future__ import annotations

import hashlib
import re

from segmap.datasets.errors import DatasetError

CASE_PREFIX = "case_"
_DIGITS = 10
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_ID = 999


def case_name(
    series_instance_uid: str,
    annotation_sop_instance_uid: str,
    taken: set[str] | frozenset[str] = frozenset(),
) -> str:
    """The case name of one (scan, ROI collection) pair, avoiding names in ``taken``."""
    digest = hashlib.sha256(
        f"{series_instance_uid}\n{annotation_sop_instance_uid}".encode()
    ).hexdigest()
    for n in range(_DIGITS, len(digest) + 1, 2):
        name = CASE_PREFIX + digest[:n]
        if name not in taken:
            return name
    raise DatasetError(
        f"the same case ({series_instance_uid}, {annotation_sop_instance_uid}) "
        "is in the dataset twice"
    )


def check_dataset_name(name: str) -> str:
    """``name`` if usable in every layout's folder name.

    Raises:
        DatasetError: empty, too long, or with characters other than letters, digits,
            ``_`` and ``-`` (it must start with a letter or digit).
    """
    if not _NAME.fullmatch(name):
        raise DatasetError(
            f"dataset name {name!r} is not usable: use 1 to 64 letters, digits, "
            "'_' or '-', starting with a letter or digit (e.g. Abdomen)"
        )
    return name


def check_dataset_id(dataset_id: int) -> int:
    """``dataset_id`` if nnU-Net can use it (1 to 999; 1 to 10 are the Decathlon's tasks)."""
    if not 1 <= dataset_id <= MAX_ID:
        raise DatasetError(
            f"dataset id {dataset_id} is out of range: nnU-Net dataset ids run "
            f"from 1 to {MAX_ID} (1-10 are taken by the Decathlon by convention)"
        )
    return dataset_id
