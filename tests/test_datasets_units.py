"""The parts of a dataset on their own: folds, case names, outliers, agreement, labels,
filters, the manifest's JSON and the streamed zip.

Truths are computed here independently: Dice of two boxes by counting, HD95 by MONAI's
own ``compute_hausdorff_distance``, robust z-scores by the textbook formula.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from segmap.datasets.entries import Entry, bytes_entry
from segmap.datasets.errors import DatasetError
from segmap.datasets.folds import grouped_folds
from segmap.datasets.labels import LabelTable
from segmap.datasets.naming import case_name, check_dataset_name
from segmap.datasets.qa.agreement import dice, hd95
from segmap.datasets.qa.casestats import count_values
from segmap.datasets.qa.robust import is_outlier, robust_z
from segmap.datasets.zipstream import iter_zip
from segmap.labelmap import RegionMap

# --- folds ---------------------------------------------------------------------------


def _subjects(n_subjects: int, seed: int = 1) -> list[str]:
    rng = np.random.default_rng(seed)
    return [f"P{int(i):03d}" for i in rng.integers(0, n_subjects, size=4 * n_subjects)]


@pytest.mark.parametrize("k", [2, 3, 5])
def test_no_subject_is_in_two_folds(k):
    subjects = _subjects(23)
    folds = grouped_folds(subjects, k, seed=7)
    fold_of: dict[str, set[int]] = {}
    for s, f in zip(subjects, folds, strict=True):
        fold_of.setdefault(s, set()).add(f)
    assert all(len(fs) == 1 for fs in fold_of.values())
    assert set(folds) == set(range(k))
    sizes = np.bincount(folds)
    biggest_subject = max(subjects.count(s) for s in set(subjects))
    assert sizes.max() - sizes.min() <= biggest_subject  # greedy dealing stays balanced


def test_folds_are_seeded_and_recorded_by_seed():
    subjects = _subjects(30)
    assert grouped_folds(subjects, 5, seed=3) == grouped_folds(subjects, 5, seed=3)
    assert grouped_folds(subjects, 5, seed=3) != grouped_folds(subjects, 5, seed=4)
    # The order cases are listed in does not move a subject to another fold.
    order = np.random.default_rng(0).permutation(len(subjects))
    shuffled = [subjects[i] for i in order]
    a = dict(zip(subjects, grouped_folds(subjects, 5, seed=3), strict=True))
    b = dict(zip(shuffled, grouped_folds(shuffled, 5, seed=3), strict=True))
    assert a == b


def test_too_many_folds_for_the_subjects_is_refused():
    with pytest.raises(DatasetError, match="3 subject.*at most 3 folds"):
        grouped_folds(["a", "a", "b", "c"], 4)
    with pytest.raises(DatasetError, match="at least 2"):
        grouped_folds(["a", "b"], 1)


# --- names ---------------------------------------------------------------------------


def test_case_names_are_stable_safe_and_carry_no_patient_data():
    series, sop = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
    name = case_name(series, sop)
    assert name == case_name(series, sop)
    assert name != case_name(series, sop + "1")
    assert name.startswith("case_") and len(name) == 15
    assert all(ch in "abcdef0123456789" for ch in name[5:])
    expected = hashlib.sha256(f"{series}\n{sop}".encode()).hexdigest()[:10]
    assert name == "case_" + expected
    longer = case_name(series, sop, taken={name})
    assert longer.startswith(name) and longer != name


@pytest.mark.parametrize("bad", ["", "a b", "Müller", "../x", "_x", "x" * 65])
def test_dataset_names_that_would_break_a_folder_name_are_refused(bad):
    with pytest.raises(DatasetError, match="not usable"):
        check_dataset_name(bad)


# --- robust z ------------------------------------------------------------------------


def test_robust_z_is_the_modified_z_score():
    values = [10.0, 11.0, 9.5, 10.5, 12.0, 100.0]
    median = np.median(values)
    mad = np.median(np.abs(np.array(values) - median))
    expected = [0.6745 * (v - median) / mad for v in values]
    assert robust_z(values) == pytest.approx(expected)
    flagged = [v for v, z in zip(values, robust_z(values), strict=True) if is_outlier(z)]
    assert flagged == [100.0]


def test_robust_z_when_most_values_are_equal_still_flags_the_odd_one():
    values = [5.0, 5.0, 5.0, 5.0, 5.0, 50.0]
    z = robust_z(values)
    assert [is_outlier(v) for v in z] == [False] * 5 + [True]
    assert robust_z([3.0, 3.0, 3.0]) == [0.0, 0.0, 0.0]
    assert robust_z([1.0, 100.0]) == [0.0, 0.0]  # too few to tell


# --- agreement -----------------------------------------------------------------------


def _box(shape, lo, hi):
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))] = True
    return m


def test_dice_of_two_boxes_is_their_overlap_counted():
    a = _box((30, 30, 20), (5, 5, 5), (15, 15, 10))  # 10 x 10 x 5 = 500
    b = _box((30, 30, 20), (8, 5, 5), (18, 15, 10))  # shifted 3 along i: overlap 7x10x5
    assert dice(a, b) == pytest.approx(2 * 350 / 1000)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) is None


def _sphere(shape, centre, radius_mm, spacing):
    grids = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )
    d2 = sum((g - c) ** 2 for g, c in zip(grids, centre, strict=True))
    return d2 <= radius_mm**2


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")  # MONAI's own
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.2, 2.5)])
def test_hd95_matches_monai(spacing):
    import torch
    from monai.metrics import compute_hausdorff_distance

    shape = (48, 40, 24)
    a = _sphere(shape, (18.0, 20.0, 28.0), 9.0, spacing)
    b = _sphere(shape, (22.0, 19.0, 30.0), 7.5, spacing) | _box(shape, (30, 30, 3), (34, 36, 6))
    ours = hd95(a, b, spacing)

    def onehot(m):
        return torch.from_numpy(np.stack([~m, m])[None].astype(np.float32))

    theirs = compute_hausdorff_distance(onehot(a), onehot(b), percentile=95, spacing=list(spacing))
    assert ours == pytest.approx(float(theirs[0, 0]), rel=1e-6)
    assert ours > 0
    assert hd95(a, a, spacing) == 0.0
    assert hd95(a, np.zeros_like(a), spacing) is None


def test_hd95_of_a_shifted_box_face_is_the_shift():
    # Two 1-voxel-thin plates, 4 voxels apart at 2.5 mm: every surface voxel is 10 mm away.
    a = _box((20, 20, 20), (2, 2, 5), (18, 18, 6))
    b = _box((20, 20, 20), (2, 2, 9), (18, 18, 10))
    assert hd95(a, b, (1.0, 1.0, 2.5)) == pytest.approx(10.0)


# --- labels and counts ---------------------------------------------------------------


def test_labels_are_renumbered_by_increasing_map_value_and_shared_values_merge():
    rmap = RegionMap.from_pairs(
        [("Liver", 10), ("Spleen", 3), ("Left Kidney", 30), ("Right Kidney", 30)]
    )
    table = LabelTable(rmap)
    assert table.to_label == {3: 1, 10: 2, 30: 3}
    assert [(c.value, c.map_labels) for c in table.classes] == [
        (1, ("Spleen",)),
        (2, ("Liver",)),
        (3, ("Left Kidney", "Right Kidney")),
    ]
    mask = np.array([[0, 3, 10], [30, 30, 0]], dtype=np.uint8)
    assert table.remap(mask).tolist() == [[0, 1, 2], [3, 3, 0]]
    assert table.unexpected([0, 3, 7, 10, 31]) == [7, 31]
    assert not table.is_identity
    assert LabelTable(RegionMap.from_pairs([("a", 1), ("b", 2)])).is_identity


def test_counting_values_in_chunks_counts_every_voxel():
    rng = np.random.default_rng(2)
    data = rng.integers(-2, 5, size=(300, 200, 90)).astype(np.int16)  # > one chunk
    expected = {int(v): int((data == v).sum()) for v in np.unique(data) if v != 0}
    assert count_values(np.asfortranarray(data)) == expected


# --- the streamed zip ----------------------------------------------------------------


class _Unseekable(io.RawIOBase):
    """A pipe's write end, as a response body is: no tell, no seek."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[override]
        return os.write(self.fd, b)


def test_streamed_zip_through_a_pipe_is_a_valid_archive_and_reproducible(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(0).bytes(5 << 20))
    sha = hashlib.sha256(big.read_bytes()).hexdigest()
    entries = [
        bytes_entry("a.json", b'{"x": 1}\n', compress=True),
        Entry("imagesTr/big.nii.gz", source=big, sha256=sha, size_hint=5 << 20),
        Entry("empty/", is_dir=True),
    ]
    pieces = list(iter_zip(entries, "Root"))
    assert max(len(p) for p in pieces) <= (1 << 20) + 4096  # one chunk at a time
    read_fd, write_fd = os.pipe()
    received = bytearray()

    def reader() -> None:
        while chunk := os.read(read_fd, 1 << 16):
            received.extend(chunk)

    t = threading.Thread(target=reader)
    t.start()
    sink = _Unseekable(write_fd)
    for piece in iter_zip(entries, "Root"):
        sink.write(piece)
    os.close(write_fd)
    t.join()
    os.close(read_fd)
    assert bytes(received) == b"".join(pieces)
    with zipfile.ZipFile(io.BytesIO(bytes(received))) as z:
        assert z.testzip() is None
        assert z.namelist() == ["Root/a.json", "Root/imagesTr/big.nii.gz", "Root/empty/"]
        assert z.read("Root/imagesTr/big.nii.gz") == big.read_bytes()
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in z.infolist())


def test_a_changed_source_stops_the_stream(tmp_path):
    f = tmp_path / "x.nii.gz"
    f.write_bytes(b"frozen")
    entry = Entry("imagesTr/x.nii.gz", source=Path(f), sha256="0" * 64, size_hint=6)
    with pytest.raises(DatasetError, match="changed since the dataset was frozen"):
        list(iter_zip([entry], "Root"))


# --- filters and names shared with the command line ------------------------------------


def _conversion(**fields):
    from segmap.datasets.sources import Conversion

    base = dict(
        key="p1/rtstruct",
        report_path=Path("r.json"),
        outputs={},
        subject="PAT001",
        session="1.2.3",
        collection="p1/rtstruct",
        annotator="Dr Who",
        study_instance_uid="1.2.3",
        series_instance_uid="1.2.4",
        annotation_sop_instance_uid="1.2.5",
        annotation_series_instance_uid="1.2.6",
        annotation_modality="RTSTRUCT",
        modality="CT",
        map_regions=(("a", 1),),
        map_sha256="x",
        segmap_version="0",
    )
    return Conversion(**{**base, **fields})


def test_a_filter_keeps_what_every_field_matches():
    from segmap.datasets.selection import CaseFilter

    c = _conversion()
    assert CaseFilter().keeps(c)
    assert CaseFilter(subject=("PAT00*",)).keeps(c)
    assert not CaseFilter(subject=("PAT002",)).keeps(c)
    assert CaseFilter(collection=("1.2.5",)).keeps(c)  # the annotation's SOPInstanceUID
    assert CaseFilter(collection=("p1/*",), annotator=("Dr*",)).keeps(c)
    assert not CaseFilter(collection=("p1/*",), annotator=("Nurse",)).keeps(c)
    assert CaseFilter.from_dict({"subject": "PAT001"}) == CaseFilter(subject=("PAT001",))
    with pytest.raises(DatasetError, match="unknown field.*colour"):
        CaseFilter.from_dict({"colour": ["red"]})
    with pytest.raises(DatasetError, match="subject must be a string or a list of strings"):
        CaseFilter.from_dict({"subject": [1]})


def test_the_command_line_offers_exactly_the_layouts():
    from segmap.cli.dataset import FORMATS
    from segmap.datasets.layouts import FORMAT_NAMES

    assert FORMATS == FORMAT_NAMES
