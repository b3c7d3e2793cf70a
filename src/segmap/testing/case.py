"""A complete synthetic conversion case on disk: CT series, RTSTRUCT, region map, truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import ExplicitVRLittleEndian

from segmap.imaging.grid import VoxelGrid
from segmap.testing.ct import WrittenSeries, write_ct_series
from segmap.testing.dicomfields import StudyIdentity
from segmap.testing.phantom import PHANTOM_REGION_VALUES, phantom_rois, render_phantom_ct
from segmap.testing.rtstruct import SyntheticROI, write_rtstruct


@dataclass(frozen=True, eq=False)
class SyntheticCase:
    """Everything one conversion needs: series, RTSTRUCT, region map, and the truth."""

    series: WrittenSeries
    rtstruct_path: Path
    region_map_path: Path
    rois: tuple[SyntheticROI, ...]
    region_values: dict[str, int] = field(default_factory=dict)


def write_region_map(path: str | Path, values: dict[str, int]) -> Path:
    """Write a ``region2MaskValueMap.txt`` (``Label=Value`` per line, in dict order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8"
    )
    return path


def make_case(
    root: str | Path,
    grid: VoxelGrid,
    *,
    patient_position: str = "HFS",
    shuffle: bool = True,
    seed: int = 0,
    vertices: int = 96,
    body_overhang: float = 1.06,
    identity: StudyIdentity | None = None,
    noise_hu: float = 8.0,
    transfer_syntax: str = ExplicitVRLittleEndian,
) -> SyntheticCase:
    """Write a complete phantom case under ``root``: ``ct/``, ``rtstruct.dcm``, ``map.txt``.

    Returns the series, the paths and the ROIs (the truth) with the phantom region map.
    """
    root = Path(root)
    volume = render_phantom_ct(grid, body_overhang=body_overhang, noise_hu=noise_hu, seed=seed)
    series = write_ct_series(
        root / "ct",
        grid,
        volume,
        identity=identity,
        patient_position=patient_position,
        shuffle=shuffle,
        seed=seed,
        transfer_syntax=transfer_syntax,
    )
    rois = phantom_rois(grid, vertices=vertices, body_overhang=body_overhang)
    rt_path = root / "rtstruct.dcm"
    write_rtstruct(rt_path, series, rois, seed=seed)
    map_path = write_region_map(root / "map.txt", PHANTOM_REGION_VALUES)
    return SyntheticCase(series, rt_path, map_path, rois, dict(PHANTOM_REGION_VALUES))
