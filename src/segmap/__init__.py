"""segmap: OHIF annotations (RTSTRUCT, DICOM SEG) to training-ready label masks."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("segmap")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
