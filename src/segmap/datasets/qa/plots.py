"""One picture per region: the cases' volumes on a line, outliers in red, drawn with Pillow.

Each case is a dot at its volume (mL, on a linear axis from 0), spread vertically by a
jitter derived from its name (so the same data always give the same picture); a grey box
spans the quartiles, a dark line marks the median; outliers (robust z-score) are red and
named. Pillow rather than matplotlib: segmap already depends on Pillow for previews, and
a strip plot needs nothing more than lines, circles and text.
"""

from __future__ import annotations

import hashlib
import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from segmap.datasets.qa.report import RegionQA

WIDTH, HEIGHT = 720, 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 50, 690, 70, 170
_DOT = 4
_INK, _GRID, _BOX = (30, 30, 30), (225, 225, 225), (215, 222, 235)
_NORMAL, _OUTLIER = (40, 100, 190), (210, 30, 40)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # Pillow without FreeType: the bitmap font
        return ImageFont.load_default()


def nice_ticks(top: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``top`` (about ``count`` of them)."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def _jitter(case: str) -> float:
    """A fixed offset in [-1, 1] for ``case``."""
    return int(hashlib.sha256(case.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF * 2 - 1


def _label(value: float) -> str:
    return f"{value:g}" if value < 1e5 else f"{value:.3g}"


def render_region_plot(region: RegionQA) -> bytes:
    """The PNG bytes of ``region``'s volume picture."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    title, small = _font(15), _font(12)
    draw.text((_LEFT, 12), region.plot_title, fill=_INK, font=title)
    absent = region.cases_total - region.cases_with
    median = "-" if region.median_ml is None else f"{region.median_ml:g} mL"
    summary = (
        f"{region.cases_with} of {region.cases_total} case(s) have it; median {median}"
        + (f"; absent in {absent}" if absent else "")
        + (
            f"; {sum(v.outlier for v in region.volumes)} outlier(s)"
            if any(v.outlier for v in region.volumes)
            else ""
        )
    )
    draw.text((_LEFT, 36), summary, fill=_INK, font=small)
    volumes = [v.volume_ml for v in region.volumes]
    ticks = nice_ticks(max(volumes, default=0.0))
    scale = (_RIGHT - _LEFT) / ticks[-1]

    def x_of(ml: float) -> float:
        return _LEFT + ml * scale

    for t in ticks:
        x = x_of(t)
        draw.line([(x, _TOP - 6), (x, _BOTTOM + 4)], fill=_GRID)
        draw.text((x, _BOTTOM + 8), _label(t), fill=_INK, font=small, anchor="ma")
    draw.text(
        ((_LEFT + _RIGHT) / 2, _BOTTOM + 28), "volume (mL)", fill=_INK, font=small, anchor="ma"
    )
    middle, half = (_TOP + _BOTTOM) / 2, (_BOTTOM - _TOP) / 2 - _DOT - 2
    if volumes:
        q1, q2, q3 = (float(q) for q in np.percentile(volumes, [25, 50, 75]))
        draw.rectangle([x_of(q1), _TOP, max(x_of(q3), x_of(q1) + 1), _BOTTOM], fill=_BOX)
        draw.line([(x_of(q2), _TOP), (x_of(q2), _BOTTOM)], fill=_INK, width=2)
    for v in sorted(region.volumes, key=lambda v: v.outlier):  # outliers drawn on top
        x, y = x_of(v.volume_ml), middle + _jitter(v.case) * half
        colour = _OUTLIER if v.outlier else _NORMAL
        draw.ellipse([x - _DOT, y - _DOT, x + _DOT, y + _DOT], fill=colour)
        if v.outlier:
            anchor = "rs" if x > (_LEFT + _RIGHT) / 2 else "ls"
            draw.text(
                (x + (-6 if anchor == "rs" else 6), y - 5),
                v.case,
                fill=_OUTLIER,
                font=small,
                anchor=anchor,
            )
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()
