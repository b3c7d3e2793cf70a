"""What both synthetic writers share: the study identity and how values are written.

Every UID written is new (see :func:`make_uid`); pixel noise, shuffling and everything else
follow the seed. Decimal strings (DS) are rounded so that every value fits DICOM's 16
characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

COORD_DECIMALS = 6  # mm; keeps every DS value within its 16 characters
COSINE_DECIMALS = 10


@dataclass(frozen=True)
class StudyIdentity:
    """Patient and study identity shared by a series and the annotations on it."""

    patient_id: str
    patient_name: str
    study_instance_uid: str
    study_date: str = "20240102"
    study_time: str = "101500"
    study_id: str = "1"
    accession_number: str = ""

    @classmethod
    def generate(cls, seed: int | str = 0, patient_id: str = "SYNTH001") -> StudyIdentity:
        """A synthetic patient with a new StudyInstanceUID (see :func:`make_uid`)."""
        return cls(
            patient_id=patient_id,
            patient_name=f"Synthetic^{patient_id}",
            study_instance_uid=make_uid(seed, "study", patient_id),
        )


def set_patient_study(ds: Dataset, identity: StudyIdentity) -> None:
    """Write the Patient and General Study modules of ``identity`` into ``ds``."""
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.StudyInstanceUID = identity.study_instance_uid
    ds.StudyDate = identity.study_date
    ds.StudyTime = identity.study_time
    ds.StudyID = identity.study_id
    ds.AccessionNumber = identity.accession_number
    ds.ReferringPhysicianName = ""


def make_uid(seed: int | str, *parts: object) -> str:
    """A new, unique UID in the 2.25 (UUID) form.

    ``seed`` and ``parts`` do not make it repeatable: pydicom's ``generate_uid`` ignores
    ``entropy_srcs`` when there is no prefix, so every call gives a fresh UID and two
    series written with the same seed and identity still differ. Kept as it was.
    """
    return str(generate_uid(prefix=None, entropy_srcs=[str(seed), *map(str, parts)]))


def ds_number(x: float, decimals: int = COORD_DECIMALS) -> pydicom.valuerep.DSfloat:
    """A DS value rounded to ``decimals`` and formatted within DICOM's 16 characters."""
    r = round(float(x), decimals)
    if r == 0:
        r = 0.0  # no "-0.0"
    return pydicom.valuerep.DSfloat(r, auto_format=True)
