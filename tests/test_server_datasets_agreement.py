"""The QA's agreement between the collections of one scan, through the real server (both
backends): two readers' RTSTRUCTs of one CT are uploaded, the model's automation converts
both, a dataset is frozen by the service's worker, and its QA (JSON and page) must give
the figures worked out by hand below for the two drawn boxes.

Reader A draws the Liver as a box of 10 x 10 columns/rows on slices 2..5 and a small
Spleen box; reader B draws the same Liver box two columns further along i, and no Spleen.
The CT's voxels are 1.5 x 1.5 x 3.0 mm. Every contour edge lies half-way between voxel
centres, so each box is exactly its voxels (checked: the case's Liver volume).
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs_helpers import small_case
from segmap import testing as syn
from server_fixtures import World
from test_jobs_api import put_map, wait_for_jobs
from test_server_datasets import VALUES, put_collection, upload

SPACING_MM = (1.5, 1.5, 3.0)  # small_case's grid: i, j (columns, rows), k (slices)
VOXEL_ML = SPACING_MM[0] * SPACING_MM[1] * SPACING_MM[2] / 1000
SHIFT = 2  # columns (along i) between the readers' Liver boxes

LIVER_A = ((10, 19), (10, 19), (2, 5))  # inclusive voxel index ranges along i, j, k
LIVER_B = ((10 + SHIFT, 19 + SHIFT), (10, 19), (2, 5))
SPLEEN_A = ((30, 35), (25, 30), (3, 4))

# Dice of the Liver, by hand: each box is 10 x 10 x 4 = 400 voxels; they overlap in
# 8 x 10 x 4 = 320; Dice = 2 * 320 / (400 + 400) = 0.8.
LIVER_DICE = 2 * (8 * 10 * 4) / (400 + 400)
# HD95 of the Liver, by hand. A box's surface is its voxels with a 6-neighbour outside it:
# 400 - 8 * 8 * 2 = 272 voxels. No surface voxel of A is farther than two columns (3.0 mm)
# from B's surface: A's faces along j and k lie in B's faces where the boxes overlap,
# A's column i = 11 is one column from B's face i = 12, and A's face i = 10 (40 voxels)
# is exactly two columns from it. Those 40 of 272 (15 %, more than the top 5 %) make the
# 95th percentile of A's distances 2 x 1.5 = 3.0 mm; B mirrors A (its face i = 21 is two
# columns from A's face i = 19). HD95 is the larger of the two: 3.0 mm.
LIVER_HD95_MM = SHIFT * SPACING_MM[0]
# The Spleen only reader A drew: Dice 2 * 0 / (72 + 0) = 0; HD95 undefined (B has none).
SPLEEN_VOXELS = 6 * 6 * 2


def box_roi(
    series: Any, name: str, box: tuple[tuple[int, int], ...], colour: tuple[int, int, int]
) -> syn.SyntheticROI:
    """A box of whole voxels: one square contour per slice, its edges half-way between
    voxel centres (so no centre lies on an edge)."""
    (i0, i1), (j0, j1), (k0, k1) = box
    contours = []
    for k in range(k0, k1 + 1):
        corners = [
            (i0 - 0.5, j0 - 0.5, k),
            (i1 + 0.5, j0 - 0.5, k),
            (i1 + 0.5, j1 + 0.5, k),
            (i0 - 0.5, j1 + 0.5, k),
        ]
        points = series.grid.voxel_centres_lps(np.array(corners, dtype=float))
        contours.append(syn.SyntheticContour(points, k))
    return syn.SyntheticROI(name, colour, tuple(contours))


@dataclass
class TwoReaders:
    """Scan 1 (SUBJ1) with readers A and B; scan 2 (SUBJ2) with one phantom collection."""

    world: World
    session: dict[str, Any]
    series: Any  # the CT series of scan 1 (segmap.testing's WrittenSeries)

    @property
    def series_uid(self) -> str:
        return str(self.series.series_instance_uid)

    @property
    def datasets_url(self) -> str:
        return f"{self.world.project_url}/models/liver-ct/datasets"


@pytest.fixture()
def two_readers(world: World, tmp_path: Path) -> TwoReaders:
    r = world.client.patch(world.model_url, json={"automation": True}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    put_map(world, "liver-ct", VALUES)
    case = small_case(tmp_path / "c1", 61, patient="SUBJ1")
    assert case.series.grid.spacing == pytest.approx(SPACING_MM)
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = world.client.post(f"{world.project_url}/sessions", files=files, headers=world.h("owner"))
    assert r.status_code == 201, r.text
    session = r.json()["sessions"][0]
    readers = {
        "readerA": (
            box_roi(case.series, "Liver", LIVER_A, (200, 120, 60)),
            box_roi(case.series, "Spleen", SPLEEN_A, (120, 60, 200)),
        ),
        "readerB": (box_roi(case.series, "Liver", LIVER_B, (200, 120, 60)),),
    }
    for n, (label, rois) in enumerate(readers.items()):
        path = tmp_path / f"{label}.dcm"
        syn.write_rtstruct(path, case.series, rois, label=label, seed=70 + n)
        put_collection(world, session["id"], path.read_bytes(), "owner", label)
    upload(world, small_case(tmp_path / "c2", 62, patient="SUBJ2"))
    jobs = wait_for_jobs(world, 3)
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    return TwoReaders(world, session, case.series)


def wait_ready(t: TwoReaders, url: str, timeout_s: float = 180.0) -> dict[str, Any]:
    """Poll a dataset until it is ready or failed."""
    deadline = time.monotonic() + timeout_s
    data: dict[str, Any] = {}
    while time.monotonic() < deadline:
        data = t.world.client.get(url, headers=t.world.h("member")).json()
        if data["state"] in ("ready", "failed"):
            return data
        time.sleep(0.2)
    raise AssertionError(f"the dataset did not finish in {timeout_s} s: {data}")


def freeze(t: TwoReaders, **body: Any) -> dict[str, Any]:
    r = t.world.client.post(t.datasets_url, json=body, headers=t.world.h("owner"))
    assert r.status_code == 202, r.text
    data = wait_ready(t, r.json()["url"])
    assert data["state"] == "ready", data["error"]
    return data


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def test_the_qa_gives_the_agreement_of_two_readers_of_one_scan(two_readers: TwoReaders) -> None:
    t = two_readers
    data = freeze(t, name="Readers", folds=2)
    manifest, qa = data["manifest"], data["qa"]
    assert data["case_count"] == 2  # one case per scan: the scan's latest conversion
    case = next(m for m in manifest["cases"] if m["session"] == t.session["label"])
    assert case["collection"] in ("readerA", "readerB")
    # The boxes became exactly their voxels (what the hand figures assume).
    liver = next(r for r in qa["regions"] if r["name"] == "Liver")
    volume = next(v["volume_ml"] for v in liver["volumes"] if v["case"] == case["name"])
    assert volume == pytest.approx(400 * VOXEL_ML, abs=1e-4)

    [pair] = qa["multiple_collections"]
    assert pair["series_instance_uid"] == t.series_uid
    named = dict(zip(pair["collections"], pair["cases"], strict=True))
    assert set(named) == {"readerA", "readerB"}
    # The dataset's case is the scan's collection it took; the other is no case of it.
    assert named[case["collection"]] == case["name"]
    assert pair["collections"][0] == case["collection"] and pair["cases"][1] == ""
    regions = {r["region"]: r for r in pair["regions"]}
    assert set(regions) == {"Liver", "Spleen"}  # the regions either reader drew
    assert regions["Liver"]["dice"] == pytest.approx(LIVER_DICE, abs=1e-4)
    assert regions["Liver"]["hd95_mm"] == pytest.approx(LIVER_HD95_MM, abs=1e-4)
    assert regions["Spleen"]["dice"] == 0.0 and regions["Spleen"]["hd95_mm"] is None
    if case["collection"] == "readerA":
        spleen = next(r for r in qa["regions"] if r["name"] == "Spleen")
        assert spleen["volumes"][0]["volume_ml"] == pytest.approx(SPLEEN_VOXELS * VOXEL_ML)

    # The page shows the same figures, to its decimals.
    page = t.world.client.get(
        "/projects/P/machine-learning/models/liver-ct/datasets/Readers",
        headers=t.world.h("collab"),
    )
    assert page.status_code == 200, page.text
    tables = re.findall(
        r'<table class="data" data-testid="qa-agreement"(.*?)</table>', page.text, re.S
    )
    assert len(tables) == 1
    shown = _text(tables[0])
    other = next(c for c in named if c != case["collection"])
    assert f"collection {case['collection']} (case {case['name']})" in shown
    assert f"collection {other} (not a case of this dataset)" in shown
    assert "Liver 0.800 3.00" in shown and "Spleen 0.000 —" in shown
    assert "1 scan pair with several collections" in _text(page.text)


def test_resampled_datasets_compare_the_collections_on_the_scans_own_grid(
    two_readers: TwoReaders,
) -> None:
    data = freeze(two_readers, name="Resampled", folds=2, resampled=True)
    assert data["manifest"]["spacing_mm"] == [1.0, 1.0, 2.5]  # the model's, not the scan's
    [pair] = data["qa"]["multiple_collections"]
    liver = next(r for r in pair["regions"] if r["region"] == "Liver")
    assert liver["dice"] == pytest.approx(LIVER_DICE, abs=1e-4)
    assert liver["hd95_mm"] == pytest.approx(LIVER_HD95_MM, abs=1e-4)


def test_a_collection_changed_since_its_conversion_is_compared_once_converted_again(
    two_readers: TwoReaders, tmp_path: Path
) -> None:
    """A collection replaced while automation is off is not compared with the mask of its
    old file; once converted again, the figures are the new file's."""
    t, world = two_readers, two_readers.world
    r = world.client.patch(world.model_url, json={"automation": False}, headers=world.h("owner"))
    assert r.status_code == 200, r.text
    # Reader B's Liver now lies four columns from reader A's, not two.
    far = ((10 + 2 * SHIFT, 19 + 2 * SHIFT), (10, 19), (2, 5))
    path = tmp_path / "readerB-again.dcm"
    rois = (box_roi(t.series, "Liver", far, (200, 120, 60)),)
    syn.write_rtstruct(path, t.series, rois, label="readerB", seed=90)
    put_collection(world, t.session["id"], path.read_bytes(), "owner", "readerB", overwrite=True)
    stale = freeze(t, name="Stale", folds=2)
    case = next(m for m in stale["manifest"]["cases"] if m["session"] == t.session["label"])
    if case["collection"] == "readerA":
        assert stale["qa"]["multiple_collections"] == []  # B's kept mask is of its old file
    else:  # the case itself is B's old conversion (the scan's folder); A is compared with it
        [pair] = stale["qa"]["multiple_collections"]
        assert pair["collections"][1] == "readerA" and pair["cases"][0] == case["name"]
    r = world.client.post(
        f"{world.model_url}/convert",
        json={"collection": f"{t.session['id']}/readerB"},
        headers=world.h("owner"),
    )
    assert r.status_code == 202, r.text
    jobs = wait_for_jobs(world, 4)
    assert all(j["state"] == "succeeded" for j in jobs), jobs
    again = freeze(t, name="Again", folds=2)
    [pair] = again["qa"]["multiple_collections"]
    assert set(pair["collections"]) == {"readerA", "readerB"}
    liver = next(r for r in pair["regions"] if r["region"] == "Liver")
    # By hand, as above with a shift of four columns: overlap 6 x 10 x 4 of 400 each, so
    # Dice 2 * 240 / 800 = 0.6; the far faces are four columns (6.0 mm) apart.
    assert liver["dice"] == pytest.approx(2 * (6 * 10 * 4) / 800, abs=1e-4)
    assert liver["hd95_mm"] == pytest.approx(2 * SHIFT * SPACING_MM[0], abs=1e-4)
