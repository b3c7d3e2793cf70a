"""Accept negotiation: the headers OHIF, dicomweb-client and Orthanc-minded clients send."""

from __future__ import annotations

import pytest
from dicomweb_client.api import DICOMwebClient

from segmap.server.dicomweb.accept import (
    UNCOMPRESSED,
    Choice,
    MediaRange,
    Resource,
    negotiate,
    parse_accept,
)
from segmap.server.dicomweb.errors import BadRequest, NotAcceptable

IMPLICIT = "1.2.840.10008.1.2"
BIG = "1.2.840.10008.1.2.2"
RLE = "1.2.840.10008.1.2.5"
JLS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"

OHIF_FRAMES = "multipart/related; type=application/octet-stream; transfer-syntax=*"
OHIF_FRAMES_QUOTED = 'multipart/related; type="application/octet-stream"; transfer-syntax="*"'
OHIF_INSTANCE = 'multipart/related; type="application/dicom"'


def _frames(accept: str | None, stored: str, *, can: bool = True) -> Choice:
    return negotiate(accept, Resource.FRAMES, stored_syntax=stored, can_transcode=can)


def test_parse_quoted_unquoted_and_q_values() -> None:
    ranges = parse_accept(
        'multipart/related; type="image/jls"; q=0.5, '
        'Multipart/Related; Type=application/octet-stream; transfer-syntax=*, '
        'application/json; q=0'
    )  # fmt: skip
    assert ranges == [
        MediaRange("multipart/related", {"type": "application/octet-stream",
                                         "transfer-syntax": "*"}),
        MediaRange("multipart/related", {"type": "image/jls"}, 0.5),
    ]  # fmt: skip
    assert parse_accept(None) == parse_accept("") == [MediaRange("*/*")]
    assert parse_accept('a/b; x="1,2\\"3"') == [MediaRange("a/b", {"x": '1,2"3'})]
    for bad in ("multipart", 'a/b; type="x', "a/b; q=2", "a/b; q=high", "a/b; novalue"):
        with pytest.raises(BadRequest, match="Accept"):
            parse_accept(bad)


@pytest.mark.parametrize("accept", [OHIF_FRAMES, OHIF_FRAMES_QUOTED])
def test_ohif_frames_get_the_stored_bytes(accept: str) -> None:
    assert _frames(accept, UNCOMPRESSED) == Choice("application/octet-stream", UNCOMPRESSED, True)
    assert _frames(accept, IMPLICIT) == Choice("application/octet-stream", UNCOMPRESSED, True)
    assert _frames(accept, RLE) == Choice("application/octet-stream", RLE, True)


def test_frames_without_a_transfer_syntax_are_uncompressed() -> None:
    for accept in (
        None,
        "*/*",
        "multipart/related",
        'multipart/related; type="application/octet-stream"',
    ):
        choice = _frames(accept, J2K)
        assert choice == Choice("application/octet-stream", UNCOMPRESSED, True, transcode=True)
    explicit = f"multipart/related; type=application/octet-stream; transfer-syntax={UNCOMPRESSED}"
    assert _frames(explicit, JLS).transcode
    assert not _frames(explicit, UNCOMPRESSED).transcode
    assert _frames(explicit, BIG).transcode  # byte-swapped
    single = _frames("application/octet-stream", UNCOMPRESSED)
    assert not single.multipart and single.content_type() == (
        f"application/octet-stream; transfer-syntax={UNCOMPRESSED}"
    )


def test_frames_in_their_compressed_media_types() -> None:
    assert _frames('multipart/related; type="image/jls"', JLS) == Choice("image/jls", JLS, True)
    near = "1.2.840.10008.1.2.4.81"
    assert (
        _frames(f"multipart/related; type=image/jls; transfer-syntax={near}", near).media_type
        == "image/jls"
    )
    with pytest.raises(NotAcceptable):  # image/jls without a syntax means lossless (.80)
        _frames('multipart/related; type="image/jls"', near)
    assert _frames("multipart/related; type=image/*", RLE) == Choice("image/dicom-rle", RLE, True)
    with pytest.raises(NotAcceptable, match=r"stored as JPEG 2000.*image/jp2.*decoded"):
        _frames('multipart/related; type="image/jls"', J2K)  # no compressed-to-compressed
    # preference order: the better q wins even when listed later
    octets = f"multipart/related; type=application/octet-stream; transfer-syntax={UNCOMPRESSED}"
    accept = f"multipart/related; type=image/jp2; q=0.4, {octets}"
    assert _frames(accept, J2K).transcode
    accept = (
        "multipart/related; type=image/jp2, multipart/related; type=application/octet-stream; q=0.4"
    )
    assert _frames(accept, J2K) == Choice("image/jp2", J2K, True)


def test_without_a_decoder_only_the_stored_form_is_offered() -> None:
    with pytest.raises(NotAcceptable, match=r"sent as stored \(image/dicom-rle\)$"):
        _frames('multipart/related; type="application/octet-stream"', RLE, can=False)
    assert _frames(OHIF_FRAMES, RLE, can=False).transfer_syntax == RLE


def test_dicomweb_client_accept_headers() -> None:
    supported = {UNCOMPRESSED: "application/octet-stream", JLS: "image/jls", RLE: "image/dicom-rle"}
    build = DICOMwebClient._build_multipart_accept_header_field_value
    header = build((("application/octet-stream", "*"),), supported)
    assert _frames(header, RLE).transfer_syntax == RLE
    header = build((("image/jls", JLS), ("application/octet-stream", UNCOMPRESSED)), supported)
    assert _frames(header, JLS) == Choice("image/jls", JLS, True)
    assert _frames(header, RLE).transcode  # falls back to the second range
    instance_header = build(("application/dicom",), {"1.2.840.10008.1.2.1": "application/dicom"})
    choice = negotiate(instance_header, Resource.INSTANCES, stored_syntax=RLE)
    assert choice == Choice("application/dicom", RLE, True)


def test_instances_are_sent_as_stored_unless_little_endian_is_named() -> None:
    assert negotiate(OHIF_INSTANCE, Resource.INSTANCES, stored_syntax=RLE) == Choice(
        "application/dicom", RLE, True
    )
    assert (
        negotiate("application/dicom", Resource.INSTANCES, stored_syntax=IMPLICIT).multipart
        is False
    )
    named = f'multipart/related; type="application/dicom"; transfer-syntax={UNCOMPRESSED}'
    assert negotiate(named, Resource.INSTANCES, stored_syntax=RLE).transcode
    with pytest.raises(NotAcceptable, match=r"as stored, RLE Lossless \(1.2.840.10008.1.2.5\)$"):
        negotiate(named, Resource.INSTANCES, stored_syntax=RLE, can_transcode=False)
    with pytest.raises(NotAcceptable, match="instances"):
        negotiate(f"{OHIF_INSTANCE}; transfer-syntax={J2K}", Resource.INSTANCES, stored_syntax=RLE)
    with pytest.raises(NotAcceptable):
        negotiate("multipart/related; type=application/octet-stream", Resource.INSTANCES,
                  stored_syntax=RLE)  # fmt: skip
    choice = negotiate(OHIF_INSTANCE, Resource.INSTANCES, stored_syntax=RLE)
    assert choice.content_type("b0") == (
        f'multipart/related; type="application/dicom"; transfer-syntax={RLE}; boundary=b0'
    )
    assert choice.part_content_type == f"application/dicom; transfer-syntax={RLE}"


def test_metadata_rendered_and_bulk_data() -> None:
    for accept in (None, "application/dicom+json", "application/json", "*/*"):
        assert negotiate(accept, Resource.METADATA) == Choice("application/dicom+json", None, False)
    with pytest.raises(NotAcceptable, match="application/dicom\\+json"):
        negotiate('multipart/related; type="application/dicom+xml"', Resource.METADATA)
    assert negotiate(None, Resource.RENDERED).media_type == "image/png"
    assert negotiate("image/jpeg, image/png;q=0.2", Resource.RENDERED).media_type == "image/jpeg"
    with pytest.raises(NotAcceptable, match="image/png"):
        negotiate("image/gif", Resource.RENDERED)
    assert negotiate("application/octet-stream", Resource.BULKDATA) == Choice(
        "application/octet-stream", None, False
    )
    assert negotiate(None, Resource.BULKDATA).multipart
