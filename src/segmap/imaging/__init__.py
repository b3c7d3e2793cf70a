"""Voxel grids and their geometry, DICOM series loading, pixel data, NIfTI, resampling.

Modules: :mod:`~segmap.imaging.grid` (``VoxelGrid``), :mod:`~segmap.imaging.series`
(``find_series``, ``load_series``, ``DicomSeries``), :mod:`~segmap.imaging.pixels`
(``read_pixels``), :mod:`~segmap.imaging.nifti` (``write_nifti``, ``read_nifti_grid``),
:mod:`~segmap.imaging.resample` (``grid_for_spacing``, ``resample_image``,
``resample_mask``, ``resample_mask_to_grid``). Conventions: ``docs/geometry.md``.
"""
