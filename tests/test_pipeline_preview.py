"""The preview picture: slice choice, outlines in each region's colour, legend."""

from __future__ import annotations

import numpy as np
from PIL import Image

from segmap import testing as syn
from segmap.pipeline.preview import (
    PANEL_PX,
    LegendEntry,
    choose_slices,
    color_for_index,
    render_preview,
)


def test_choose_slices_shows_every_value_when_four_slices_allow():
    labels = np.zeros((40, 8, 8), np.uint8)
    labels[5, 2:6, 2:6] = 1  # value 1 only on slice 5
    labels[20:30, 1:7, 1:7] = 2  # value 2, biggest, on slices 20..29
    labels[33, 3:5, 3:5] = 3  # value 3 only on slice 33
    chosen = choose_slices(labels, [1, 2, 3], max_slices=4)
    assert 5 in chosen and 33 in chosen and any(20 <= k < 30 for k in chosen)
    assert chosen == sorted(chosen) and len(chosen) <= 4


def test_choose_slices_prefers_the_slice_showing_most_values():
    labels = np.zeros((10, 6, 6), np.uint8)
    labels[:, :, :] = 1
    labels[7, 0, 0] = 2
    assert choose_slices(labels, [1, 2], max_slices=1) == [7]


def test_choose_slices_on_an_empty_mask_gives_the_middle():
    assert choose_slices(np.zeros((9, 4, 4), np.uint8), [1]) == [4]


def test_palette_colours_are_distinct():
    colours = [color_for_index(n) for n in range(40)]
    assert len(set(colours)) == 40


def test_outline_pixels_carry_the_region_colour_at_the_region_edge(tmp_path):
    # 100 x 50 voxels of 1 mm x 2 mm: the panel keeps the physical aspect 100 mm x 100 mm.
    grid = syn.axial_grid((100, 50, 3), (1.0, 2.0, 3.0))
    image = np.full(grid.array_shape, -1000, np.int16)
    labels = np.zeros(grid.array_shape, np.uint8)
    labels[1, 10:40, 20:80] = 7  # rows 10..39 (20..80 mm), columns 20..79 (20..80 mm)
    red = (230, 25, 75)
    path = tmp_path / "p.png"
    shown = render_preview(
        path, image, labels, grid, [LegendEntry(7, ("Liver",), red, 1800)], title="t"
    )
    assert shown == [1] or 1 in shown
    png = np.asarray(Image.open(path).convert("RGB"))
    assert png.shape[1] > PANEL_PX and png.shape[0] >= PANEL_PX
    # Find the panel of slice 1 and look inside it at the region's left edge (20 mm in).
    n = shown.index(1)
    x0 = 10 + n * (PANEL_PX + 10)
    y0 = 30  # title height
    scale = PANEL_PX / 100.0
    row = y0 + int(50 * scale)  # middle of the region (50 mm down)
    edge_col = x0 + int(20 * scale) + 1
    centre_col = x0 + int(50 * scale)
    assert tuple(png[row, edge_col]) == red
    # Inside: the faint fill over black air (a quarter of the colour), not the outline.
    assert tuple(png[row, centre_col]) == tuple(int(0.25 * c) for c in red)
    # Outside the region: black air.
    assert tuple(png[row, x0 + int(10 * scale)]) == (0, 0, 0)
    # The legend swatch holds the colour too.
    assert (png[:, -PANEL_PX:] == red).all(axis=2).any()


def test_preview_of_the_phantom_is_written(tmp_path):
    grid = syn.axial_grid((96, 80, 24), (1.5, 1.5, 3.0))
    image = syn.render_phantom_ct(grid, seed=0)
    labels = np.zeros(grid.array_shape, np.uint8)
    labels[image > 600] = 50
    labels[(image > 20) & (image < 100)] = 10
    legend = [
        LegendEntry(10, ("Soft",), color_for_index(0), int((labels == 10).sum())),
        LegendEntry(50, ("Bone",), color_for_index(1), int((labels == 50).sum())),
    ]
    shown = render_preview(tmp_path / "p.png", image, labels, grid, legend)
    assert 1 <= len(shown) <= 4
    assert Image.open(tmp_path / "p.png").format == "PNG"


def test_choose_slices_with_sixteen_bit_values():
    labels = np.zeros((12, 5, 5), np.uint16)
    labels[2, 1, 1] = 300
    labels[9, 2, 2] = 65535
    labels[5, :, :] = 1000
    assert choose_slices(labels, [300, 1000, 65535], max_slices=3) == [2, 5, 9]
