"""Resampling: target grids, linear fields reproduced, agreement with scipy, masks.

Independent truths: analytic linear fields evaluated at world positions; scipy.ndimage's
affine_transform (a different implementation of the same interpolation); and a
nearest-voxel lookup written here from the grid formula ``p = origin + D (spacing * ijk)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from dicom_factory import rotation
from segmap.imaging.grid import VoxelGrid
from segmap.imaging.resample import (
    grid_for_spacing,
    resample_image,
    resample_mask,
    resample_mask_to_grid,
)


def world(grid: VoxelGrid) -> np.ndarray:
    """LPS of every voxel centre as ``[k, j, i, 3]``, from the grid formula."""
    nk, nj, ni = grid.array_shape
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    ijk = np.stack([i, j, k], axis=-1) * np.asarray(grid.spacing)
    return np.asarray(grid.origin_lps) + ijk @ np.asarray(grid.direction).T


def source_index(source: VoxelGrid, points: np.ndarray) -> np.ndarray:
    """Continuous ``(i, j, k)`` on ``source`` of LPS ``points`` (``[..., 3]``)."""
    d = np.asarray(source.direction)
    return ((points - np.asarray(source.origin_lps)) @ d) / np.asarray(source.spacing)


SOURCE = VoxelGrid.from_arrays(
    (23, 19, 17), (1.3, 0.9, 2.2), (-30, 12, 55), rotation((1, 2, 2), 35)
)
COEF = np.array([0.7, -1.9, 0.45])


def linear_field(grid: VoxelGrid) -> np.ndarray:
    return world(grid) @ COEF + 12.5


# --- target grids ----------------------------------------------------------------------


def test_grid_for_spacing_keeps_origin_direction_and_extent() -> None:
    ct = VoxelGrid.from_arrays((512, 512, 300), (0.78, 0.78, 2.5), (-200, -180, -90), np.eye(3))
    target = grid_for_spacing(ct, (1.0, 1.0, 1.0))
    # 512 * 0.78 = 399.36 -> 399 voxels; 300 * 2.5 = 750 -> 750.
    assert target.size == (399, 399, 750)
    assert target.origin_lps == ct.origin_lps
    np.testing.assert_array_equal(target.direction_matrix, ct.direction_matrix)
    for old, new, s in zip(ct.extent_mm, target.extent_mm, target.spacing, strict=True):
        assert abs(old - new) <= s / 2


def test_grid_for_spacing_rounds_halves_up_and_keeps_one_voxel() -> None:
    g = VoxelGrid.from_arrays((5, 3, 1), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    assert grid_for_spacing(g, (2.0, 2.0, 10.0)).size == (3, 2, 1)  # 2.5 -> 3, 1.5 -> 2
    with pytest.raises(ValueError):
        grid_for_spacing(g, (1.0, 0.0, 1.0))


# --- images ----------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [(0.7, 1.1, 1.0), (2.0, 2.0, 3.1), (1.3, 0.9, 2.2)])
def test_linear_field_reproduced_by_linear_interpolation(spacing: tuple[float, ...]) -> None:
    target = grid_for_spacing(SOURCE, spacing)  # type: ignore[arg-type]
    out = resample_image(linear_field(SOURCE), SOURCE, target, order=1)
    idx = source_index(SOURCE, world(target))
    interior = np.all((idx >= 0) & (idx <= np.asarray(SOURCE.size) - 1), axis=-1)
    assert interior.sum() > 0.5 * interior.size
    np.testing.assert_allclose(out[interior], linear_field(target)[interior], atol=1e-9)


def test_linear_field_reproduced_by_cubic_bspline_away_from_edges() -> None:
    source = VoxelGrid.from_arrays(
        (40, 36, 34), (1.0, 1.2, 1.5), (0, 0, 0), rotation((0, 1, 1), 20)
    )
    target = grid_for_spacing(source, (0.8, 1.7, 1.1))
    out = resample_image(linear_field(source), source, target, order=3)
    idx = source_index(source, world(target))
    margin = 12  # the mirror boundary's influence decays as 0.268 ** distance
    interior = np.all((idx >= margin) & (idx <= np.asarray(source.size) - 1 - margin), axis=-1)
    assert interior.sum() > 100
    np.testing.assert_allclose(out[interior], linear_field(target)[interior], atol=1e-4)


def _scipy_reference(volume: np.ndarray, source: VoxelGrid, target: VoxelGrid, order: int):  # type: ignore[no-untyped-def]
    """scipy's affine_transform on [k, j, i] arrays with the diagonal map between grids."""
    d = np.asarray(source.direction)
    shift = d.T @ (np.asarray(target.origin_lps) - np.asarray(source.origin_lps))
    scale = np.asarray(target.spacing) / np.asarray(source.spacing)
    offset = shift / np.asarray(source.spacing)
    mode = "nearest" if order == 1 else "mirror"
    return ndimage.affine_transform(
        volume,
        scale[::-1],
        offset=offset[::-1],
        output_shape=target.array_shape,
        order=order,
        mode=mode,
        output=np.float64,
    )


@pytest.mark.parametrize("order", [1, 3])
@pytest.mark.parametrize("spacing", [(0.6, 1.4, 1.0), (2.5, 0.5, 4.0)])
def test_agrees_with_scipy_affine_transform(order: int, spacing: tuple[float, ...]) -> None:
    volume = np.random.default_rng(order).normal(size=SOURCE.array_shape)
    target = grid_for_spacing(SOURCE, spacing)  # type: ignore[arg-type]
    out = resample_image(volume, SOURCE, target, order=order)
    expected = _scipy_reference(volume, SOURCE, target, order)
    idx = source_index(SOURCE, world(target))
    inside = np.all((idx >= 0) & (idx <= np.asarray(SOURCE.size) - 1), axis=-1)
    np.testing.assert_allclose(out[inside], expected[inside], atol=1e-9)


def test_integer_image_keeps_its_type_and_rounds() -> None:
    volume = np.random.default_rng(0).integers(-1024, 3000, SOURCE.array_shape).astype(np.int16)
    target = grid_for_spacing(SOURCE, (1.0, 1.0, 1.0))
    out = resample_image(volume, SOURCE, target)
    as_float = resample_image(volume.astype(np.float64), SOURCE, target)
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, np.rint(as_float).astype(np.int16))


def test_upsampled_grid_is_covered_without_fill() -> None:
    # 5 mm slices to 1 mm: the last target planes lie past the last slice's centre.
    source = VoxelGrid.from_arrays((4, 4, 6), (1.0, 1.0, 5.0), (0, 0, 0), np.eye(3))
    volume = np.arange(96, dtype=np.float32).reshape(6, 4, 4) + 100
    target = grid_for_spacing(source, (1.0, 1.0, 1.0))
    assert target.size[2] == 30
    out = resample_image(volume, source, target, fill=-999.0)
    assert out.min() > -999
    np.testing.assert_array_equal(out[-3:], np.broadcast_to(volume[-1], (3, 4, 4)))


def test_outside_the_source_gets_the_fill() -> None:
    source = VoxelGrid.from_arrays((6, 6, 6), (1.0, 1.0, 1.0), (0, 0, 0), np.eye(3))
    volume = np.full(source.array_shape, 50.0)
    volume[0, 0, 0] = 7.0
    # Shifted 4.2 mm along i: target columns 2..5 (source i = 6.2 .. 9.2) lie more than
    # half a voxel beyond the box, which ends at 5.5.
    target = VoxelGrid.from_arrays((6, 6, 6), (1.0, 1.0, 1.0), (4.2, 0, 0), np.eye(3))
    out = resample_image(volume, source, target)
    assert np.all(out[:, :, 2:] == 7.0)  # the default fill: the volume's minimum
    assert np.all(out[:, :, :2] == 50.0)
    assert np.all(resample_image(volume, source, target, fill=-1.0)[:, :, 2:] == -1.0)


def test_different_directions_are_rejected() -> None:
    other = VoxelGrid.from_arrays(SOURCE.size, SOURCE.spacing, SOURCE.origin_lps, np.eye(3))
    with pytest.raises(ValueError, match="different directions"):
        resample_image(np.zeros(SOURCE.array_shape), SOURCE, other)


def test_large_realistic_shape() -> None:
    # A realistic CT shape (halved in-plane) to 1 mm: shape and type of the result.
    ct = VoxelGrid.from_arrays((256, 256, 60), (0.78, 0.78, 2.5), (0, 0, 0), np.eye(3))
    volume = np.random.default_rng(0).integers(-1024, 2000, ct.array_shape).astype(np.int16)
    out = resample_image(volume, ct, grid_for_spacing(ct, (1.0, 1.0, 1.0)))
    assert out.shape == (150, 200, 200)


# --- masks ------------------------------------------------------------------------------


def labels(grid: VoxelGrid, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(np.array([0, 3, 7], dtype=np.uint16), size=grid.array_shape)


def nearest_truth(mask: np.ndarray, source: VoxelGrid, target: VoxelGrid, margin: float):  # type: ignore[no-untyped-def]
    """Value of the source voxel nearest each target centre, 0 beyond ``margin`` voxels."""
    idx = source_index(source, world(target))
    n = np.asarray(source.size)
    inside = np.all((idx >= -0.5 - margin) & (idx < n - 0.5 + margin), axis=-1)
    r = np.clip(np.floor(idx + 0.5).astype(int), 0, n - 1)
    values = mask[r[..., 2], r[..., 1], r[..., 0]]
    tie = np.any(np.abs(idx - np.floor(idx) - 0.5) < 1e-6, axis=-1)
    return np.where(inside, values, 0), ~tie


@pytest.mark.parametrize("spacing", [(0.5, 0.7, 1.0), (2.0, 3.0, 5.0)])
def test_mask_nearest_neighbour_adds_no_values(spacing: tuple[float, ...]) -> None:
    mask = labels(SOURCE)
    target = grid_for_spacing(SOURCE, spacing)  # type: ignore[arg-type]
    out = resample_mask(mask, SOURCE, target)
    assert out.dtype == np.uint16
    assert set(np.unique(out)) <= {0, 3, 7}
    truth, clear = nearest_truth(mask, SOURCE, target, margin=0.5)
    np.testing.assert_array_equal(out[clear], truth[clear])


def test_mask_to_grid_with_other_direction() -> None:
    mask = labels(SOURCE, seed=2)
    size, spacing, d = (30, 25, 20), np.array([1.1, 0.8, 1.9]), rotation((3, -1, 2), 70)
    # Centre the rotated target on the source so that both overlap and stick out.
    centre = world(SOURCE)[8, 9, 11]
    origin = centre - d @ (spacing * (np.asarray(size) - 1) / 2)
    target = VoxelGrid.from_arrays(size, spacing, origin, d)
    out = resample_mask_to_grid(mask, SOURCE, target)
    truth, clear = nearest_truth(mask, SOURCE, target, margin=0.0)
    assert (truth != 0).sum() > 1000 and (truth == 0).sum() > 1000
    np.testing.assert_array_equal(out[clear], truth[clear])


def test_mask_to_grid_with_same_direction_uses_the_strict_box() -> None:
    mask = np.ones(SOURCE.array_shape, dtype=bool)
    # Same direction, shifted by 3.3 voxels along k and with a different spacing.
    d = np.asarray(SOURCE.direction)
    origin = np.asarray(SOURCE.origin_lps) + d[:, 2] * 3.3 * SOURCE.spacing[2]
    target = VoxelGrid.from_arrays((20, 20, 20), (1.0, 1.0, 1.0), origin, d)
    out = resample_mask_to_grid(mask, SOURCE, target)
    truth, clear = nearest_truth(mask, SOURCE, target, margin=0.0)
    assert out.dtype == np.bool_
    np.testing.assert_array_equal(out[clear], truth[clear])


def test_mask_to_identical_grid_is_unchanged() -> None:
    mask = labels(SOURCE, seed=4)
    np.testing.assert_array_equal(resample_mask_to_grid(mask, SOURCE, SOURCE), mask)
    np.testing.assert_array_equal(resample_mask(mask, SOURCE, SOURCE), mask)


def test_mask_to_grid_small_region_in_a_large_target() -> None:
    # Only a small block is set: the result must still equal the full lookup everywhere.
    mask = np.zeros(SOURCE.array_shape, dtype=np.uint8)
    mask[5:9, 4:11, 6:10] = 1
    mask[7, 6, 8] = 2
    d = rotation((1, -2, 1), 40)
    centre = world(SOURCE)[7, 7, 8]
    size, spacing = (40, 36, 30), np.array([0.7, 0.6, 0.9])
    origin = centre - d @ (spacing * (np.asarray(size) - 1) / 2)
    target = VoxelGrid.from_arrays(size, spacing, origin, d)
    out = resample_mask_to_grid(mask, SOURCE, target)
    truth, clear = nearest_truth(mask, SOURCE, target, margin=0.0)
    assert (truth == 1).sum() > 500 and (truth == 2).sum() >= 3
    np.testing.assert_array_equal(out[clear], truth[clear])
    assert not resample_mask_to_grid(np.zeros_like(mask), SOURCE, target).any()
