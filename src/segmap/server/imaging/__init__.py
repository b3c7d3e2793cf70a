"""Imaging: sessions (studies), scans (series), ROI collections and derived resources.

Services: ``lookup`` (find and list sessions and scans), ``upload`` with ``unzip`` and
``upload_rows`` (DICOM image upload), ``collections`` (reading ROI collections),
``collection_upload`` with ``references`` (RTSTRUCT/SEG upload, the scan it is drawn
on, the frame-of-reference rule), ``derived`` (folders jobs write onto a scan),
``events`` (telling other features a collection was stored). Routes: ``api_sessions``,
``api_collections``, ``pages`` (with ``matching`` and ``report_figures``);
``presenters`` and ``schemas`` show rows. DICOM itself is read by ``segmap.imaging`` and
``segmap.annotations``.
"""
