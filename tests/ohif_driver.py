"""Driving the real OHIF 3.13 dist in Playwright as an annotator would, for the journeys.

Everything a person does goes through the page: clicks on OHIF's own buttons and menus
(found by their ``data-cy`` attributes and visible names), the mouse wheel to change
slice, mouse down/move/up on the viewport to paint. JavaScript is read only to *observe*
(is the image drawn, which slice is on screen, where a canvas pixel is in the patient),
through the globals OHIF 3.13 sets for this (``window.cornerstone``,
``window.services``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ohif_painting import Stroke

# WebGL through SwiftShader: Debian's headless Chromium has no GPU here, and Chromium
# no longer falls back to SwiftShader for WebGL by itself unless told it may.
OHIF_CHROMIUM_FLAGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader"]

VIEWPORT = "window.cornerstone.getRenderingEngines()[0].getViewports()[0]"
_HAS_IMAGE = (
    "() => { const e = window.cornerstone && window.cornerstone.getRenderingEngines()[0];"
    f" return !!(e && e.getViewports().length && {VIEWPORT}.getImageData()); }}"
)
# Canvas read-back: share of pixels brighter than near-black, and how many grey levels.
_CANVAS_STATS = f"""() => {{
  const canvas = {VIEWPORT}.canvas;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let lit = 0; const levels = new Set();
  for (let i = 0; i < data.length; i += 4) {{
    if (data[i] > 8) lit++;
    levels.add(data[i]);
  }}
  return {{lit: lit / (data.length / 4), levels: levels.size}};
}}"""
# Page point -> LPS, the way cornerstone maps a mouse event: relative to the viewport
# element's box, then the viewport's own canvasToWorld.
_PAGE_TO_LPS = f"""points => {{
  const vp = {VIEWPORT};
  const box = vp.element.getBoundingClientRect();
  return points.map(([x, y]) => Array.from(vp.canvasToWorld([x - box.left, y - box.top])));
}}"""
# The camera is on the current image's plane (the new slice has been set up).
_PLANE_SHOWN = f"""() => {{
  const vp = {VIEWPORT};
  const ipp = window.cornerstone.metaData.get('imagePlaneModule', vp.getCurrentImageId())
    .imagePositionPatient;
  const w = vp.canvasToWorld([vp.canvas.clientWidth / 2, vp.canvas.clientHeight / 2]);
  const n = vp.getCamera().viewPlaneNormal;
  return Math.abs((w[0] - ipp[0]) * n[0] + (w[1] - ipp[1]) * n[1] + (w[2] - ipp[2]) * n[2]) < 0.01;
}}"""
_LPS_TO_PAGE = f"""points => {{
  const vp = {VIEWPORT};
  const box = vp.element.getBoundingClientRect();
  return points.map(p => {{
    const c = vp.worldToCanvas(p);
    return [c[0] + box.left, c[1] + box.top];
  }});
}}"""


@dataclass(frozen=True)
class CanvasStats:
    """What the viewport canvas shows: the lit share of pixels (0..1), grey levels."""

    lit: float
    levels: int


class Viewer:
    """One OHIF tab (a Playwright page already on an ``/ohif/`` route)."""

    def __init__(self, page: Any, screenshots: Path | None = None) -> None:
        self.page = page
        self.screenshots = screenshots

    # ------------------------------------------------------------------ observing

    def wait_for_image(self, timeout_ms: int = 90_000) -> CanvasStats:
        """Wait until the viewport has an image and its canvas shows it (read back)."""
        self.page.wait_for_function(_HAS_IMAGE, timeout=timeout_ms)
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            stats = CanvasStats(**self.page.evaluate(_CANVAS_STATS))
            if stats.lit > 0.05 or time.monotonic() > deadline:
                return stats
            self.page.wait_for_timeout(100)  # the next frame; WebGL draws asynchronously

    def slice_index(self) -> int:
        """The stack index (0-based) of the image on screen."""
        return int(self.page.evaluate(f"() => {VIEWPORT}.getCurrentImageIdIndex()"))

    def slice_count(self) -> int:
        """How many images the viewport's stack has."""
        return int(self.page.evaluate(f"() => {VIEWPORT}.getImageIds().length"))

    def segment_rows(self) -> list[tuple[str, str]]:
        """The segmentation panel's segments as shown: (label, CSS colour), top to bottom."""
        rows = self.page.locator("[data-cy=data-row]")
        return [
            (
                rows.nth(i).locator("[data-cy=data-row-title]").inner_text().strip(),
                rows.nth(i)
                .locator("[data-cy=data-row-colorhex]")
                .evaluate("e => e.style.backgroundColor"),
            )
            for i in range(rows.count())
        ]

    def settled_segment_rows(
        self, expected: list[tuple[str, str]], timeout_s: float = 15
    ) -> list[tuple[str, str]]:
        """:meth:`segment_rows` once they equal ``expected`` or ``timeout_s`` passed (the
        panel draws a segment first and colours it on the next render)."""
        deadline = time.monotonic() + timeout_s
        rows = self.segment_rows()
        while rows != expected and time.monotonic() < deadline:
            self.page.wait_for_timeout(100)
            rows = self.segment_rows()
        return rows

    def page_to_lps(self, points: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
        """Page positions (CSS px) -> LPS (mm) on the image plane on screen."""
        mapped = self.page.evaluate(_PAGE_TO_LPS, [list(p) for p in points])
        return [(float(a), float(b), float(c)) for a, b, c in mapped]

    def lps_to_page(self, points: list[tuple[float, float, float]]) -> list[tuple[float, float]]:
        """LPS (mm) -> page positions (CSS px) on the image plane on screen."""
        mapped = self.page.evaluate(_LPS_TO_PAGE, [list(p) for p in points])
        return [(float(x), float(y)) for x, y in mapped]

    def shot(self, name: str) -> None:
        """Screenshot the whole tab into ``screenshots/name`` (when a folder was given)."""
        if self.screenshots is not None:
            self.page.screenshot(path=str(self.screenshots / name))

    # ------------------------------------------------------------------ acting

    def dismiss_notice(self) -> None:
        """Close OHIF's "investigational use" banner when it is shown."""
        button = self.page.get_by_role("button", name="Confirm and hide")
        if button.count():
            button.click()

    def add_segmentation(self) -> None:
        """Click the segmentation panel's "Add segmentation"."""
        self.page.get_by_text("Add segmentation").click()
        self.page.locator("[data-cy=data-row]").first.wait_for()

    def pick_segment(self, label: str) -> None:
        """Click the segment named ``label`` in the panel (it becomes the one painted)."""
        row = self.page.locator("[data-cy=data-row]").filter(
            has=self.page.locator("[data-cy=data-row-title]", has_text=label)
        )
        row.first.click()

    def rename_segment(self, label: str, new_label: str) -> None:
        """Rename a segment through its "..." menu and OHIF's rename dialog."""
        row = self.page.locator("[data-cy=data-row]").filter(
            has=self.page.locator("[data-cy=data-row-title]", has_text=label)
        )
        row.first.hover()
        row.first.locator("[data-cy=actionsMenuTrigger]").click()
        self.page.get_by_role("menuitem", name="Rename").click()
        field = self.page.get_by_role("dialog").locator("input").first
        field.fill(new_label)
        self.page.get_by_role("dialog").get_by_role("button", name="Save").click()

    def choose_brush(self, radius_mm: float) -> float:
        """Pick the Brush tool and type its radius; returns the radius the tool now has."""
        self.page.click("[data-cy=Brush-btn]")
        field = self.page.locator("[data-cy=brush-radius] input")
        field.fill(f"{radius_mm:g}")
        field.press("Enter")
        size = (
            "() => window.cornerstoneTools.utilities.segmentation.getBrushSizeForToolGroup("
            f"window.services.toolGroupService.getToolGroupForViewport({VIEWPORT}.id).id)"
        )
        self.page.wait_for_function(f"r => ({size})() === r", arg=radius_mm)
        return float(self.page.evaluate(size))

    def go_to_slice(self, index: int) -> None:
        """Scroll with the mouse wheel over the image until slice ``index`` is on screen."""
        box = self.page.locator(".cornerstone-canvas").bounding_box()
        self.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.95)
        current = self.slice_index()
        while current != index:
            self.page.mouse.wheel(0, 100 if index > current else -100)
            self.page.wait_for_function(
                f"c => {VIEWPORT}.getCurrentImageIdIndex() !== c", arg=current
            )
            current = self.slice_index()
        self.page.wait_for_function(_PLANE_SHOWN)

    def paint(
        self, label: str, value: int, radius_mm: float, page_points: list[tuple[int, int]]
    ) -> Stroke:
        """Drag the brush through ``page_points`` (whole CSS px) on the slice on screen;
        returns the stroke with its positions in LPS as the viewport maps them."""
        first, *rest = page_points
        # Move onto the start as a hand does (the brush tool takes the slice it paints
        # from the pointer's hover), and let the slice just scrolled to be drawn.
        self.page.mouse.move(*first, steps=4)
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        self.page.mouse.down()
        for point in rest:
            self.page.mouse.move(*point, steps=6)
        self.page.mouse.up()
        # Intermediate mouse events lie on the straight segments between these points, so
        # the polyline through them is the stroke's centre line.
        return Stroke(
            label=label,
            value=value,
            slice_index=self.slice_index(),
            radius_mm=radius_mm,
            points_lps=tuple(self.page_to_lps([(float(x), float(y)) for x, y in page_points])),
        )

    def open_export_menu(self) -> None:
        """Open the segmentation's "..." menu and its Export submenu."""
        self.page.click("[data-cy=segmentation-collapsed-more-btn-Labelmap]")
        self.page.get_by_role("menuitem", name="Export").hover()

    def store(self, item: str, series_description: str, shot: str | None = None) -> Any:
        """Export ▸ ``item`` ("DICOM SEG" or "DICOM RTSS") ▸ name the series ▸ Save;
        returns the STOW-RS response OHIF got from the data source. ``shot`` names a
        screenshot of the filled-in dialog."""
        self.page.get_by_role("menuitem", name=item).click()
        self.page.get_by_placeholder("Report name").fill(series_description)
        if shot:
            self.shot(shot)
        with self.page.expect_response(
            lambda r: r.request.method == "POST" and "/dicomweb/" in r.url, timeout=60_000
        ) as answer:
            self.page.get_by_role("dialog").get_by_role("button", name="Save").click()
        return answer.value
