"""Whether a STOW-RS request came from the OHIF viewer segmap serves, or another client.

The rule: a STOW-RS request whose ``Referer`` is a page of this site under ``/ohif/`` is
the bundled viewer's; any other STOW-RS request is a DICOMweb client's.

Why the ``Referer``: OHIF 3.13 saves through its DICOMweb data source
(``store.dicom`` in ``@ohif/extension-default``), which hands the file to
dicomweb-client's ``storeInstances``: an ``XMLHttpRequest`` POST from the viewer's page.
Browsers add the page's address as ``Referer`` to such a request, and segmap's
``Referrer-Policy: same-origin`` (``web.headers``; OHIF's ``index.html`` sets no policy
of its own) keeps the full address for same-origin requests. Page scripts cannot set the
header themselves. It works for every encoding OHIF writes (LABELMAP or BINARY SEG,
RTSTRUCT), where the file's own header (Manufacturer, SoftwareVersions) differs by writer
and version. A client that forges the header is still recorded as the user it logged in
as: the route is a description, not a permission.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import HTTPConnection

from segmap.server.db.imaging import StoredVia
from segmap.server.viewer.dist import BASE_PATH


def stow_route(conn: HTTPConnection) -> StoredVia:
    """``StoredVia.OHIF`` for a STOW-RS request sent from a page of this site's viewer
    (see the module), else ``StoredVia.DICOMWEB``."""
    referer = conn.headers.get("referer")
    if not referer:
        return StoredVia.DICOMWEB
    try:
        sent_from = urlsplit(referer)
    except ValueError:
        return StoredVia.DICOMWEB
    # This site as the request names it (the Host header), as dicomweb.auth.check_origin
    # compares an Origin.
    same_site = (
        sent_from.scheme == conn.url.scheme and sent_from.netloc.lower() == conn.url.netloc.lower()
    )
    if same_site and sent_from.path.startswith(BASE_PATH):
        return StoredVia.OHIF
    return StoredVia.DICOMWEB
