"""Annotating in the real OHIF 3.13 dist served by a real ``segmap serve``, in Chromium.

One journey per test, each on a study of its own (a small synthetic CT, 64x64x12): log in;
open the study from the session page's "Open in OHIF with abdomen's labels"; the image is
drawn (the canvas is read back); the segment list is the region map's, in map order, in
the map's colours; paint Liver on three slices and Spleen on two with the brush, by mouse;
store it with OHIF's own Export menu; the automation job finishes; the NIfTI mask holds 10
and 20 exactly where the brush went (worked out from the mouse positions by
``ohif_painting``, not by segmap) and 0 everywhere else; the derived SEG is a series of
the study in OHIF and loads with the map's names.

The three journeys store what OHIF 3.13 can store: its default Label Map SEG with RLE
(``DICOM SEG``), the BINARY SEG (the same item after ``segmentation.store.defaultMode`` is
set to ``bitmap`` in the config, OHIF's documented customization) and an RTSTRUCT
(``DICOM RTSS``).

The server and the browser are shared by the module. With ``SEGMAP_OHIF_REGENERATE=1``
the journeys also write what OHIF stored, the CT and the strokes into
``tests/fixtures/ohif/`` (see its README), and the screenshots into ``docs/img/``.
"""

from __future__ import annotations

import gzip
import io
import os
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest

from browser_fixtures import CHROMIUM, CHROMIUM_ARGS
from jobs_helpers import Service, create_user, free_port, small_case
from ohif_driver import OHIF_CHROMIUM_FLAGS, Viewer
from ohif_painting import Stroke, assert_painted, save_strokes
from segmap import testing as syn

pytestmark = pytest.mark.browser

PASSWORD = "annotator-password-1"
PROJECT = "ANNOT"
MODEL = "abdomen"
# Colours for every label, so the expected colours come from this file, not the palette.
REGION_MAP = (
    "Liver=10\n"
    "Spleen=20\n"
    "Left Kidney=30\n"
    "# segmap colour: 10 200 40 30 255\n"
    "# segmap colour: 20 10 120 250 255\n"
    "# segmap colour: 30 240 200 20 255\n"
)
MAP_SEGMENTS = [
    ("Liver", "rgb(200, 40, 30)"),
    ("Spleen", "rgb(10, 120, 250)"),
    ("Left Kidney", "rgb(240, 200, 20)"),
]
BRUSH_MM = 3.0
# label, value, on how many of the slices showing that organ, half the zig-zag's size (mm)
PLAN = [("Liver", 10, 3, 5.0), ("Spleen", 20, 2, 2.5)]
FIXTURES = Path(__file__).with_name("fixtures") / "ohif"
DOC_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "img"
REGENERATE = os.environ.get("SEGMAP_OHIF_REGENERATE") == "1"

SEG_LABELMAP = "1.2.840.10008.5.1.4.1.1.66.7"
SEG_BINARY = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT = "1.2.840.10008.5.1.4.1.1.481.3"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

# OHIF's documented way to store SEG as BINARY: a customization in the app config,
# as a deployer would add it (appended to what segmap generated).
BITMAP_STORE = (
    "\nwindow.config.customizationService = window.config.customizationService || {};\n"
    "window.config.customizationService.global ="
    " window.config.customizationService.global || {};\n"
    "window.config.customizationService.global['segmentation.store.defaultMode'] ="
    " {$set: 'bitmap'};\n"
)


@dataclass(frozen=True)
class Export:
    """One way of storing: the menu item, the SOP class OHIF writes, and how far a
    conversion's voxels may be from the brush edge and still not be judged (mm)."""

    name: str
    menu_item: str
    sop_class: str
    tolerance_mm: float
    bitmap: bool = False


# SEG stores the painted voxels themselves: the only slack is floating point in the
# viewer's and the test's transforms (whole-pixel mouse positions map exactly).
# RTSTRUCT stores contours that OHIF traces through the centres of the outermost painted
# voxels; segmap fills them again by voxel centre, so those edge voxels can go either
# way: voxels within one voxel pitch (1.5 mm) of the brush edge are not judged.
EXPORTS = {
    "labelmap": Export("labelmap", "DICOM SEG", SEG_LABELMAP, 0.05),
    "binary": Export("binary", "DICOM SEG", SEG_BINARY, 0.05, bitmap=True),
    "rtstruct": Export("rtstruct", "DICOM RTSS", RTSTRUCT, 1.5),
}


@dataclass
class Annotation:
    """A running service with the project, the model (automation on) and its map."""

    service: Service
    api: httpx.Client

    @property
    def url(self) -> str:
        """The service's base URL."""
        return self.service.url


@pytest.fixture(scope="module")
def annotation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Annotation]:
    """``segmap serve`` (the installed OHIF dist) with project ANNOT and model abdomen."""
    data = tmp_path_factory.mktemp("viewer-journey") / "data"
    create_user(data, "olivia", PASSWORD)
    service = Service(data, free_port(), {})
    try:
        token = httpx.post(
            f"{service.url}/api/v1/auth/token", json={"username": "olivia", "password": PASSWORD}
        ).json()["token"]
        api = httpx.Client(
            base_url=f"{service.url}/api/v1",
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert api.post("/projects", json={"id": PROJECT, "name": "Annotation"}).status_code == 201
        r = api.post(
            f"/projects/{PROJECT}/models",
            json={"label": MODEL, "voxel_spacing": [1.5, 1.5, 3.0], "automation": True},
        )
        assert r.status_code == 201, r.text
        r = api.put(
            f"/projects/{PROJECT}/models/{MODEL}/resources/maps/files/region2MaskValueMap.txt",
            content=REGION_MAP.encode(),
        )
        assert r.status_code == 201, r.text
        yield Annotation(service, api)
        api.close()
    finally:
        service.stop()


@pytest.fixture(scope="module")
def ohif_browser(chromium_browser: Any) -> Iterator[Any]:
    """A Chromium of the session's Playwright, with WebGL through SwiftShader."""
    browser = chromium_browser.browser_type.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, *OHIF_CHROMIUM_FLAGS]
    )
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture()
def tab(ohif_browser: Any) -> Iterator[Any]:
    """A tab in a fresh profile, sized like a laptop screen; page errors fail the test."""
    context = ohif_browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors in the viewer: {errors}"


def log_in(page: Any, url: str) -> None:
    page.goto(f"{url}/login")
    page.fill("#username", "olivia")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/projects")


def upload_study(annotation: Annotation, root: Path, seed: int) -> tuple[syn.SyntheticCase, int]:
    case = small_case(root, seed, size=(64, 64, 12), patient=f"OHIF{seed}")
    files = [("files", (p.name, p.read_bytes(), "application/dicom")) for p in case.series.files]
    r = annotation.api.post(f"/projects/{PROJECT}/sessions", files=files)
    assert r.status_code == 201, r.text
    return case, int(r.json()["sessions"][0]["id"])


def wait_for_job(annotation: Annotation, collection: str, timeout_s: float = 240) -> dict[str, Any]:
    """Poll the project's jobs until the one of ``collection`` has finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        jobs = annotation.api.get(f"/projects/{PROJECT}/jobs").json()
        mine = [j for j in jobs if j["collection"] == collection]
        if mine and mine[0]["state"] in ("succeeded", "failed"):
            return dict(mine[0])
        time.sleep(0.3)
    raise AssertionError(f"the job of {collection!r} did not finish in {timeout_s} s")


def plan_strokes(viewer: Viewer, case: syn.SyntheticCase) -> list[tuple[str, int, int, list]]:
    """Where a person would paint: around the middle of each organ's outline on the
    planned slices (the phantom's own contours), as whole page pixels."""
    iop = np.asarray(pydicom.dcmread(case.series.files[0]).ImageOrientationPatient, float)
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    by_name = {r.name: r for r in case.rois}
    image_positions = viewer.page.evaluate(
        "() => window.cornerstone.getRenderingEngines()[0].getViewports()[0].getImageIds()"
        ".map(id => window.cornerstone.metaData.get('imagePlaneModule', id)"
        ".imagePositionPatient)"
    )
    plan = []
    for label, value, count, half_mm in PLAN:
        outlines: dict[int, np.ndarray] = {}
        for index, position in enumerate(image_positions):
            for contour in by_name[label].contours:
                if abs(float((contour.points_lps[0] - np.asarray(position)) @ normal)) < 0.01:
                    outlines.setdefault(index, contour.points_lps)
        assert len(outlines) >= count, f"{label} shows on {len(outlines)} slices only"
        for index in sorted(outlines)[:count]:
            centre = outlines[index].mean(axis=0)
            zigzag = [(-1, -1), (1, -1), (-1, 1), (1, 1)]
            corners = [tuple(centre + half_mm * (a * row + b * col)) for a, b in zigzag]
            page_points = viewer.lps_to_page(corners)
            plan.append((label, value, index, [(round(x), round(y)) for x, y in page_points]))
    return plan


def keep(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def ct_zip(case: syn.SyntheticCase) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in case.series.files:
            archive.write(path, f"ct/{path.name}")
    return buffer.getvalue()


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_annotate_in_ohif_and_get_the_mask(
    kind: str, annotation: Annotation, tab: Any, tmp_path: Path
) -> None:
    export = EXPORTS[kind]
    url = annotation.url
    docs = kind == "labelmap" and REGENERATE
    shots = DOC_IMAGES if docs else tmp_path
    viewer = Viewer(tab, shots)
    case, session = upload_study(annotation, tmp_path / "case", seed=70 + list(EXPORTS).index(kind))
    if export.bitmap:

        def bitmap_config(route: Any) -> None:
            answer = route.fetch()
            route.fulfill(response=answer, body=answer.text() + BITMAP_STORE)

        tab.route("**/ohif/app-config.js", bitmap_config)

    # Log in and open the study from the session page, with the model's labels.
    log_in(tab, url)
    tab.goto(f"{url}/projects/{PROJECT}/sessions/{session}")
    link = tab.locator("[data-testid=open-in-ohif]", has_text=f"{MODEL}'s labels")
    if docs:
        viewer.shot("viewer-1-session.png")
    link.click()
    tab.wait_for_url("**/ohif/segmentation/**")

    # The image is drawn: the canvas read back shows the body, not a blank.
    stats = viewer.wait_for_image()
    assert stats.lit > 0.2 and stats.levels > 3, stats
    viewer.dismiss_notice()
    viewer.shot("viewer-2-open.png")

    # Add segmentation: the map's labels, in map order, in the map's colours.
    viewer.add_segmentation()
    assert viewer.settled_segment_rows(MAP_SEGMENTS) == MAP_SEGMENTS
    viewer.shot("viewer-3-labels.png")

    if kind == "labelmap":
        # A name outside the map does not stick: the map's name comes back, with a notice.
        viewer.rename_segment("Left Kidney", "Kidney")
        tab.get_by_text('"Kidney" is not in the region map').first.wait_for()
        viewer.shot("viewer-3b-not-in-map.png")
        assert viewer.settled_segment_rows(MAP_SEGMENTS) == MAP_SEGMENTS

    # Paint Liver and Spleen with the brush, slice by slice.
    assert viewer.choose_brush(BRUSH_MM) == BRUSH_MM
    strokes: list[Stroke] = []
    for label, value, index, points in plan_strokes(viewer, case):
        viewer.pick_segment(label)
        viewer.go_to_slice(index)
        strokes.append(viewer.paint(label, value, BRUSH_MM, points))
    viewer.shot("viewer-4-painted.png")

    # Store it with OHIF's Export menu, into the project the study came from.
    description = f"Annotator {kind}"
    viewer.open_export_menu()
    viewer.shot("viewer-5-export.png")
    answer = viewer.store(export.menu_item, description, shot="viewer-6-save.png")
    assert answer.status == 200, answer.text()
    stored = answer.json()["00081199"]["Value"]
    assert [s["00081150"]["Value"][0] for s in stored] == [export.sop_class]

    # What OHIF stored (kept as a generated fixture when regenerating).
    wait_for_job(annotation, description)  # the collection is stored by then
    collection = annotation.api.get(f"/projects/{PROJECT}/sessions/{session}").json()
    (stored_collection,) = [c for c in collection["collections"] if c["label"] == description]
    ohif_file = annotation.api.get(stored_collection["download"].removeprefix("/api/v1")).content
    ds = pydicom.dcmread(io.BytesIO(ohif_file))
    assert ds.SOPClassUID == export.sop_class
    if export.sop_class != RTSTRUCT:
        assert ds.file_meta.TransferSyntaxUID == RLE_LOSSLESS  # OHIF's default encoding
    if REGENERATE:
        folder = FIXTURES / kind
        keep(folder, "ohif.dcm", ohif_file)
        keep(folder, "ct.zip", ct_zip(case))
        save_strokes(folder / "strokes.json", strokes, REGION_MAP)

    # The automation converts it.
    job = wait_for_job(annotation, description)
    assert job["state"] == "succeeded", job["error"]
    files = job["resources_url"].removeprefix("/api/v1")
    r = annotation.api.get(f"{files}/{MODEL}/files/mask.nii.gz")
    assert r.status_code == 200, r.text
    counts = assert_painted(
        gzip.decompress(r.content), case.series.folder, strokes, export.tolerance_mm
    )
    assert counts[10] > 0 and counts[20] > 0

    # The derived SEG is a series of the study when it is opened again.
    tab.goto(f"{url}/projects/{PROJECT}/sessions/{session}")
    link.click()
    viewer.wait_for_image()
    viewer.dismiss_notice()
    descriptions = tab.locator("[data-cy=series-description-label]")
    derived = descriptions.filter(has_text="segmap mask")
    derived.first.wait_for()
    assert derived.count() == 1
    assert descriptions.filter(has_text=description).count() == 1  # the annotator's own
    viewer.shot("viewer-7-derived.png")
