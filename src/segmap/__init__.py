"""segmap: OHIF annotations (RTSTRUCT, DICOM SEG) to training-ready label masks."""

# The single source of the version: pyproject reads it from here. A literal, not
# importlib.metadata, so that every `segmap` command starts without scanning site-packages.
__version__ = "0.1.0"

__all__ = ["__version__"]
