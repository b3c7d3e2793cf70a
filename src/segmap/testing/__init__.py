"""Synthetic DICOM data whose true masks are known: CT series, RTSTRUCTs and a phantom.

Tests, benchmarks and the server's demo need DICOM inputs with an exactly known answer.
This package writes them with pydicom:

* :func:`write_ct_series` (:mod:`.ct`) writes any :class:`~segmap.imaging.grid.VoxelGrid`
  (axial or oblique, square or non-square pixels, HFS or FFS; see :mod:`.grids`) and a
  Hounsfield volume as a CT series, optionally with shuffled file names and instance
  numbers.
* :func:`write_rtstruct` (:mod:`.rtstruct`) writes named, coloured ROIs of CLOSED_PLANAR
  contours that refer to the series the way planning systems do (referenced frame of
  reference, study, series and contour images).
* :func:`phantom_rois` (:mod:`.phantom`) builds an abdomen-like phantom of seven regions
  (a body that overhangs the image, organs, two disjoint kidneys in one ROI, a vessel wall
  with a lumen hole, a concave vertebra, a lesion inside the liver) as polygons on slice
  planes; :func:`render_phantom_ct` paints a matching CT so previews look like a scan.
* :func:`make_case` (:mod:`.case`) writes all of it, with a region map, for one conversion.

The truth of an ROI is its polygons: a voxel is inside when its centre is inside an odd
number of the ROI's contours on its slice. Every contour returned here holds exactly the
coordinates written to the file, so a test can recompute the truth with its own
point-in-polygon test without reading segmap's code.

Coordinates: patient LPS in mm.

Use it as ``from segmap import testing as syn``; the names below are the whole interface.
"""

from segmap.testing.case import SyntheticCase, make_case, write_region_map
from segmap.testing.ct import HU_INTERCEPT, WrittenSeries, write_ct_series
from segmap.testing.dicomfields import StudyIdentity
from segmap.testing.grids import axial_grid, oblique_grid
from segmap.testing.phantom import PHANTOM_REGION_VALUES, phantom_rois, render_phantom_ct
from segmap.testing.rtstruct import SyntheticContour, SyntheticROI, write_rtstruct

__all__ = [
    "HU_INTERCEPT",
    "PHANTOM_REGION_VALUES",
    "StudyIdentity",
    "SyntheticCase",
    "SyntheticContour",
    "SyntheticROI",
    "WrittenSeries",
    "axial_grid",
    "make_case",
    "oblique_grid",
    "phantom_rois",
    "render_phantom_ct",
    "write_ct_series",
    "write_rtstruct",
    "write_region_map",
]
