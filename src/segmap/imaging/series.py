"""DICOM image series: discovery, slice sorting along the normal, geometry checks, pixels.

(Interface fixed here; implementation owned by the imaging work.)
"""
