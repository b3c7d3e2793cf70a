"""A preview picture of a conversion: a few slices, each region outlined, with a legend.

The slices shown are chosen so that every painted region appears at least once when
four slices allow it, preferring slices with many region voxels. Each slice is drawn
at its physical aspect ratio (non-square pixels are stretched to square millimetres),
rows down and columns right as DICOM stores them, the image windowed (CT: level 40 HU,
width 400 HU), each region filled faintly and outlined in its colour.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from segmap.imaging.grid import VoxelGrid

PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),
    (60, 180, 75),
    (255, 225, 25),
    (0, 130, 200),
    (245, 130, 48),
    (145, 30, 180),
    (70, 240, 240),
    (240, 50, 230),
    (210, 245, 60),
    (250, 190, 212),
    (0, 128, 128),
    (220, 190, 255),
    (170, 110, 40),
    (255, 250, 200),
    (128, 0, 0),
    (170, 255, 195),
    (128, 128, 0),
    (255, 215, 180),
    (0, 0, 128),
    (128, 128, 128),
)
"""Distinguishable colours (Sasha Trubetskoy's list of 20), assigned by value order."""

CT_WINDOW_HU = (-160.0, 240.0)
"""Soft-tissue window, level 40 HU and width 400 HU, as (low, high)."""

PANEL_PX = 360
"""Longest side of one slice panel in pixels."""

LEGEND_PX = 320
"""Width of the legend column in pixels."""


@dataclass(frozen=True)
class LegendEntry:
    """One mask value in the legend: its labels, colour and how many voxels it holds."""

    value: int
    labels: tuple[str, ...]
    color_rgb: tuple[int, int, int]
    voxels: int = 0
    volume_mm3: float = 0.0


def color_for_index(n: int) -> tuple[int, int, int]:
    """The ``n``-th palette colour; beyond the palette, evenly spread hues."""
    if n < len(PALETTE):
        return PALETTE[n]
    h = (n * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return (int(r * 255), int(g * 255), int(b * 255))


def choose_slices(
    labels_kji: npt.NDArray[np.integer], values: Sequence[int], max_slices: int = 4
) -> list[int]:
    """Up to ``max_slices`` slice indices ``k`` that together show as many values as possible.

    Greedy: start from the slice showing the most values (ties: more labelled voxels),
    then add the slice showing the most values not yet shown. When all values are shown,
    fill up to three slices with the richest remaining ones, kept apart.
    """
    nk = labels_kji.shape[0]
    vals = np.asarray([int(v) for v in values], dtype=np.int64)
    counts = np.zeros((nk, len(vals)), dtype=np.int64)
    if len(vals):
        top = max(int(vals.max()), int(labels_kji.max(initial=0))) + 1
        for k in range(nk):
            # A direct bincount of the slice's values: no temporary index arrays.
            counts[k] = np.bincount(np.asarray(labels_kji[k]).ravel(), minlength=top)[vals]
    total = counts.sum(axis=1)
    if not total.any():
        return [nk // 2]
    distinct = (counts > 0).sum(axis=1)
    best_first = np.flatnonzero(distinct == distinct.max())
    chosen = [int(best_first[np.argmax(total[best_first])])]
    shown = counts[chosen[0]] > 0
    while len(chosen) < max_slices:
        gain = ((counts > 0) & ~shown).sum(axis=1)
        gain[chosen] = -1
        if gain.max() <= 0:
            break
        best = np.flatnonzero(gain == gain.max())
        k = int(best[np.argmax(total[best])])
        chosen.append(k)
        shown |= counts[k] > 0
    min_gap = max(1, nk // 8)
    for k in np.lexsort((-total, -distinct)):
        if len(chosen) >= min(3, max_slices) or total[k] == 0:
            break
        if all(abs(int(k) - c) >= min_gap for c in chosen):
            chosen.append(int(k))
    return sorted(chosen)


def render_preview(
    path: str | Path,
    image_kji: npt.NDArray[np.generic] | None,
    labels_kji: npt.NDArray[np.integer],
    grid: VoxelGrid,
    legend: Sequence[LegendEntry],
    *,
    title: str = "",
    window: tuple[float, float] | None = CT_WINDOW_HU,
    max_slices: int = 4,
) -> list[int]:
    """Write a PNG to ``path``; returns the slice indices ``k`` shown.

    ``image_kji`` is the image in its own units (HU for CT) on ``grid``, or None for a
    black background; ``window`` is the displayed (low, high) range, or None for the
    image's 1st to 99th percentile. ``labels_kji`` holds mask values on ``grid``.
    """
    colors = {e.value: e.color_rgb for e in legend}
    slices = choose_slices(labels_kji, [e.value for e in legend], max_slices)
    ni, nj, nk = grid.size
    width_mm, height_mm = ni * grid.spacing[0], nj * grid.spacing[1]
    scale = PANEL_PX / max(width_mm, height_mm)
    pw, ph = max(1, round(width_mm * scale)), max(1, round(height_mm * scale))
    lo, hi = _window(image_kji, slices, window)
    panels = [
        _panel(None if image_kji is None else image_kji[k], labels_kji[k], colors, (pw, ph), lo, hi)
        for k in slices
    ]
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    legend_w = LEGEND_PX
    pad, caption_h, title_h = 10, 22, 30 if title else 6
    legend_h = title_h + 30 + 24 * len(legend)
    width = pad + len(panels) * (pw + pad) + legend_w
    height = max(title_h + ph + caption_h + 2 * pad, legend_h + pad)
    canvas = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((pad, 6), title, fill=(235, 235, 235), font=font)
    for n, (k, panel) in enumerate(zip(slices, panels, strict=True)):
        x = pad + n * (pw + pad)
        canvas.paste(panel, (x, title_h))
        centre = grid.voxel_centres_lps([[(ni - 1) / 2, (nj - 1) / 2, k]])[0]
        draw.text(
            (x, title_h + ph + 4),
            f"slice k={k} of {nk}  (centre {_fmt_lps(centre)})",
            fill=(200, 200, 200),
            font=small,
        )
    _legend(draw, legend, (width - legend_w + pad, title_h), font, small)
    canvas.save(Path(path), format="PNG", compress_level=6)
    return slices


def _window(
    image_kji: npt.NDArray[np.generic] | None, slices: list[int], window: tuple[float, float] | None
) -> tuple[float, float]:
    if image_kji is None:
        return (0.0, 1.0)
    if window is not None:
        return (float(window[0]), float(window[1]))
    sample = np.asarray(image_kji[slices], dtype=float)
    lo, hi = np.percentile(sample, [1, 99])
    return (float(lo), float(hi) if hi > lo else float(lo) + 1.0)


def _panel(
    plane: npt.NDArray[np.generic] | None,
    labels: npt.NDArray[np.integer],
    colors: dict[int, tuple[int, int, int]],
    size: tuple[int, int],
    lo: float,
    hi: float,
) -> Image.Image:
    pw, ph = size
    if plane is None:
        grey = np.zeros((ph, pw), dtype=np.uint8)
    else:
        g = (np.asarray(plane, dtype=np.float32) - lo) / (hi - lo)
        g8 = (np.clip(g, 0.0, 1.0) * 255).astype(np.uint8)
        grey = np.asarray(Image.fromarray(g8).resize((pw, ph), Image.Resampling.BILINEAR))
    lab = _resize_labels(np.asarray(labels), (pw, ph))
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)
    lut = np.zeros((max(int(lab.max(initial=0)), max(colors, default=0)) + 1, 3), np.float32)
    known = np.zeros(lut.shape[0], dtype=bool)
    for value, color in colors.items():
        lut[value] = color
        known[value] = True
    shown = known[lab]
    rgb[shown] = 0.75 * rgb[shown] + 0.25 * lut[lab[shown]]
    edge = shown & _near_other_label(lab, reach=2)
    rgb[edge] = lut[lab[edge]]
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def _near_other_label(lab: npt.NDArray[np.int64], reach: int) -> npt.NDArray[np.bool_]:
    """Pixels with a different label within ``reach`` pixels along a row or column; the
    outline is then ``reach`` pixels wide on the inside of every region."""
    near = np.zeros(lab.shape, dtype=bool)
    for d in range(1, reach + 1):
        diff_rows = lab[d:, :] != lab[:-d, :]
        near[d:, :] |= diff_rows
        near[:-d, :] |= diff_rows
        diff_cols = lab[:, d:] != lab[:, :-d]
        near[:, d:] |= diff_cols
        near[:, :-d] |= diff_cols
    return near


def _resize_labels(labels: npt.NDArray[np.integer], size: tuple[int, int]) -> npt.NDArray[np.int64]:
    """Nearest-neighbour resize of a label plane ``[j, i]`` to ``size`` (width, height)."""
    pw, ph = size
    nj, ni = labels.shape
    rows = np.minimum(((np.arange(ph) + 0.5) * nj / ph).astype(np.int64), nj - 1)
    cols = np.minimum(((np.arange(pw) + 0.5) * ni / pw).astype(np.int64), ni - 1)
    return np.asarray(labels, dtype=np.int64)[rows[:, None], cols[None, :]]


def _legend(
    draw: ImageDraw.ImageDraw,
    legend: Sequence[LegendEntry],
    origin: tuple[int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
    small: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    x, y = origin
    draw.text((x, y), "value  label", fill=(235, 235, 235), font=font)
    y += 26
    for e in legend:
        draw.rectangle((x, y + 2, x + 16, y + 16), fill=e.color_rgb, outline=(255, 255, 255))
        name = ", ".join(e.labels)
        if len(name) > 20:
            name = name[:19] + "…"
        draw.text((x + 24, y), f"{e.value:>5}  {name}", fill=(235, 235, 235), font=font)
        if e.volume_mm3:
            text = f"{e.volume_mm3 / 1000:.1f} mL"
            right = x + LEGEND_PX - 2 * 10
            draw.text(
                (right - draw.textlength(text, font=small), y + 2),
                text,
                fill=(170, 170, 170),
                font=small,
            )
        y += 24


def _fmt_lps(p: npt.NDArray[np.float64]) -> str:
    return f"L{p[0]:.0f} P{p[1]:.0f} S{p[2]:.0f} mm"
