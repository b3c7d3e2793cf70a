"""segmap as a DICOMweb archive: QIDO-RS, WADO-RS and STOW-RS per project.

Building blocks that the routes wire together, one idea per module:

- :mod:`.levels` — query levels and the attributes matched and returned per level;
- :mod:`.query` — QIDO query parameters parsed into a typed :class:`.query.Query`;
- :mod:`.matching` — a :class:`.query.Query` as SQLAlchemy conditions over given columns;
- :mod:`.dicomjson` — DICOM JSON (PS3.18 Annex F) of instances and of index records;
- :mod:`.raw_json` — one element's DICOM JSON read from its raw bytes (pydicom's rules);
- :mod:`.bulkdata` — Bulk Data URIs: building, parsing, finding the value they name;
- :mod:`.accept` — WADO-RS Accept headers negotiated into what to send, or a 406;
- :mod:`.multipart` — ``multipart/related`` read (STOW) and written (WADO);
- :mod:`.errors` — the 4xx errors these raise, each with its HTTP status.

Conformance: ``docs/dicomweb.md``.
"""
