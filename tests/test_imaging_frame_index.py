"""Frame index: every frame read by seeking equals what pydicom decodes or encapsulates.

The truths are pydicom's own: ``Dataset.pixel_array`` (re-packed with ``pack_bits`` for
1-bit frames, the layout the index promises), ``pydicom.encaps.generate_frames`` and
``get_frame`` for encapsulated data, and the arrays the files were written from.
"""

from __future__ import annotations

import io
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels import pack_bits
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from segmap.imaging.frame_index import (
    Conversion,
    FrameIndex,
    FrameIndexError,
    NoPixelData,
    index_frames,
)
from segmap.imaging.frame_read import (
    NoSuchFrame,
    frame_ranges,
    read_frame,
    read_frame_uncompressed,
)
from segmap.testing import axial_grid, write_ct_series


def _frames_of(ds: Dataset) -> np.ndarray:
    arr = ds.pixel_array
    return arr[None] if int(ds.get("NumberOfFrames") or 1) == 1 else arr


def _expected_native(ds: Dataset, frame: np.ndarray) -> bytes:
    if int(ds.BitsAllocated) == 1:
        return pack_bits(frame.ravel(), pad=False)
    return np.ascontiguousarray(frame).astype(frame.dtype.newbyteorder("<")).tobytes()


def _all_frames(path: Path, index: FrameIndex) -> list[bytes]:
    """Every frame by :func:`read_frame`, checked against :func:`frame_ranges` too."""
    data = path.read_bytes()
    frames = []
    with path.open("rb") as fp:
        for n in range(1, index.number_of_frames + 1):
            frame = read_frame(fp, index, n)
            ranges = frame_ranges(index, n)
            if ranges is not None:
                assert b"".join(data[o : o + size] for o, size in ranges) == frame
            frames.append(frame)
    return frames


def _multiframe(
    frames: int = 3,
    rows: int = 64,
    cols: int = 48,
    *,
    bits: int = 16,
    signed: bool = True,
    seed: int = 0,
) -> tuple[Dataset, np.ndarray]:
    """A multi-frame greyscale image (Secondary Capture) holding random stored values."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, cols, frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated = bits
    ds.BitsStored = 12 if bits == 16 else bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(signed)
    rng = np.random.default_rng(seed)
    if bits == 16:
        lo, dtype = (-1024, np.int16) if signed else (0, np.uint16)
        arr = rng.integers(lo, 2000, size=(frames, rows, cols)).astype(dtype)
    else:
        arr = rng.integers(0, 255, size=(frames, rows, cols)).astype(np.uint8)
    ds.PixelData = arr.tobytes()
    return ds, arr


def _save(ds: Dataset, path: Path, **kwargs: object) -> Path:
    ds.save_as(path, enforce_file_format=True, **kwargs)
    return path


# --- real files ---------------------------------------------------------------------------


def test_every_real_image_and_seg_frame_matches_pydicom(testdata: Path) -> None:
    files = [p for p in sorted(testdata.rglob("*.dcm")) if "rtstruct" not in p.parts]
    assert len(files) > 20
    for path in files:
        ds = pydicom.dcmread(path)
        index = index_frames(path)
        expected = [_expected_native(ds, f) for f in _frames_of(ds)]
        assert _all_frames(path, index) == expected, path
        assert index.conversion is Conversion.NONE
        assert FrameIndex.from_bytes(index.to_bytes()) == index


def test_bit_packed_frames_that_are_not_byte_aligned(testdata: Path) -> None:
    path = testdata / "dcmqi-tiny-nonsquare-seg/23x38x3/seg/label.seg.dcm"
    ds = pydicom.dcmread(path)
    index = index_frames(path)
    assert (index.pixel.rows * index.pixel.columns) % 8 != 0  # 874 bits per frame
    frames = _all_frames(path, index)
    # frame 2 starts at bit 874 = byte 109 bit 2: re-packed to start at bit 0
    raw = ds.PixelData
    assert frames[1] != raw[109:219]
    for got, truth in zip(frames, _frames_of(ds), strict=True):
        assert len(got) == (874 + 7) // 8
        bits = np.unpackbits(np.frombuffer(got, np.uint8), bitorder="little")
        assert bits[:874].tolist() == truth.ravel().tolist()
        assert not bits[874:].any()  # the padding bits are zero, not the next frame's
    assert frame_ranges(index, 1) is None  # re-packing needed: no plain byte range


def test_a_file_without_pixel_data_has_no_frames(testdata: Path) -> None:
    path = testdata / "rtutils-mim-rtstruct/rtstruct/dummy_rt_MIM.dcm"
    with pytest.raises(NoPixelData, match="no Pixel Data"):
        index_frames(path)


# --- native, generated --------------------------------------------------------------------


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_native_multiframe_frames_at_their_offsets(tmp_path: Path, syntax: str) -> None:
    ds, arr = _multiframe(frames=5, rows=7, cols=9)
    ds.file_meta.TransferSyntaxUID = syntax
    path = _save(ds, tmp_path / "mf.dcm", implicit_vr=syntax == ImplicitVRLittleEndian)
    index = index_frames(path)
    assert index.number_of_frames == 5 and not index.encapsulated
    assert _all_frames(path, index) == [f.tobytes() for f in arr]
    # the offset really points at the value in the file: frame 1's bytes are there
    data = path.read_bytes()
    assert data[index.value_offset : index.value_offset + 7 * 9 * 2] == arr[0].tobytes()


def test_synthetic_ct_series_frames(tmp_path: Path) -> None:
    grid = axial_grid((12, 10, 3), (1.0, 1.0, 2.0))
    volume = np.arange(np.prod(grid.array_shape), dtype=float).reshape(grid.array_shape) - 500
    written = write_ct_series(tmp_path / "ct", grid, volume, shuffle=False)
    for k, path in enumerate(written.files):
        index = index_frames(path)
        stored = (volume[k] + 1024).astype(np.uint16)  # write_ct_series: HU + 1024
        assert _all_frames(path, index) == [stored.tobytes()]


def test_big_endian_frames_are_byte_swapped_for_delivery(tmp_path: Path) -> None:
    ds, arr = _multiframe(frames=2, rows=5, cols=6)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    ds.PixelData = arr.astype(">i2").tobytes()
    path = _save(ds, tmp_path / "be.dcm", implicit_vr=False, little_endian=False)
    index = index_frames(path)
    assert index.conversion is Conversion.BYTE_SWAP
    decoded = pydicom.dcmread(path).pixel_array  # pydicom's own big-endian reading
    with path.open("rb") as fp:
        assert read_frame(fp, index, 2) == arr[1].astype(">i2").tobytes()  # as stored
        for n in (1, 2):
            assert read_frame_uncompressed(fp, index, n) == decoded[n - 1].astype("<i2").tobytes()


def test_big_endian_8_bit_and_deflated_are_refused(tmp_path: Path) -> None:
    ds, arr = _multiframe(frames=1, rows=4, cols=4, bits=8, signed=False)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    be = _save(ds, tmp_path / "be8.dcm", implicit_vr=False, little_endian=False)
    with pytest.raises(FrameIndexError, match="BitsAllocated 8"):
        index_frames(be)
    ds, _ = _multiframe(frames=1, rows=4, cols=4)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    deflated = _save(ds, tmp_path / "deflated.dcm")
    with pytest.raises(FrameIndexError, match="Deflated"):
        index_frames(deflated)


def test_truncated_pixel_data_is_refused(tmp_path: Path) -> None:
    ds, arr = _multiframe(frames=3, rows=4, cols=4)
    ds.PixelData = arr.tobytes()[:-32]  # the last frame is missing
    path = _save(ds, tmp_path / "short.dcm")
    with pytest.raises(FrameIndexError, match="holds 64 bytes; 3 frame"):
        index_frames(path)


def test_frame_numbers_outside_the_instance(tmp_path: Path) -> None:
    ds, _ = _multiframe(frames=2, rows=4, cols=4)
    path = _save(ds, tmp_path / "two.dcm")
    index = index_frames(path)
    with path.open("rb") as fp:
        for n in (0, 3):
            with pytest.raises(NoSuchFrame, match="has 2 frame"):
                read_frame(fp, index, n)


# --- encapsulated -------------------------------------------------------------------------


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_multiframe(tmp_path: Path, syntax: str) -> None:
    ds, arr = _multiframe(frames=4)
    ds.compress(syntax)
    path = _save(ds, tmp_path / "c.dcm")
    index = index_frames(path)
    assert index.encapsulated and index.conversion is Conversion.DECODE
    reread = pydicom.dcmread(path)
    truth = list(generate_frames(reread.PixelData, number_of_frames=4))
    assert _all_frames(path, index) == truth
    with path.open("rb") as fp:
        for n in range(1, 5):
            assert read_frame_uncompressed(fp, index, n) == arr[n - 1].tobytes()
    assert FrameIndex.from_bytes(index.to_bytes()) == index


def test_compressed_synthetic_ct(tmp_path: Path) -> None:
    grid = axial_grid((64, 64, 2), (1.0, 1.0, 2.0))
    volume = np.random.default_rng(3).integers(-1000, 1500, grid.array_shape).astype(float)
    written = write_ct_series(
        tmp_path / "j2k", grid, volume, shuffle=False, transfer_syntax=JPEG2000Lossless
    )
    for k, path in enumerate(written.files):
        index = index_frames(path)
        with path.open("rb") as fp:
            got = read_frame_uncompressed(fp, index, 1)
        assert got == (volume[k] + 1024).astype(np.uint16).tobytes()


def _encoded_frames(arr: np.ndarray, syntax: str) -> list[bytes]:
    ds, _ = _multiframe(frames=len(arr), rows=arr.shape[1], cols=arr.shape[2])
    ds.PixelData = arr.tobytes()
    ds.compress(syntax)
    return list(generate_frames(ds.PixelData, number_of_frames=len(arr)))


def _with_pixel_data(arr: np.ndarray, syntax: str, pixel_data: bytes, path: Path) -> Path:
    ds, _ = _multiframe(frames=len(arr), rows=arr.shape[1], cols=arr.shape[2])
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return _save(ds, path)


@pytest.mark.parametrize("has_bot", [True, False])
def test_several_fragments_per_frame(tmp_path: Path, has_bot: bool) -> None:
    _, arr = _multiframe(frames=3, seed=5)
    encoded = _encoded_frames(arr, JPEGLSLossless)  # JPEG-LS frames end in an EOI marker
    data = encapsulate(encoded, fragments_per_frame=3, has_bot=has_bot)
    path = _with_pixel_data(arr, JPEGLSLossless, data, tmp_path / "frag.dcm")
    index = index_frames(path)
    assert [len(f) for f in index.fragments] == [3, 3, 3]
    assert _all_frames(path, index) == encoded
    with path.open("rb") as fp:
        assert read_frame_uncompressed(fp, index, 3) == arr[2].tobytes()


def test_extended_offset_table(tmp_path: Path) -> None:
    _, arr = _multiframe(frames=3, seed=6)
    encoded = _encoded_frames(arr, RLELossless)
    data, offsets, lengths = encapsulate_extended(encoded)
    ds, _ = _multiframe(frames=3)
    ds.file_meta.TransferSyntaxUID = RLELossless
    ds.PixelData = data
    ds["PixelData"].VR, ds["PixelData"].is_undefined_length = "OB", True
    ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = offsets, lengths
    path = _save(ds, tmp_path / "eot.dcm")
    index = index_frames(path)
    assert _all_frames(path, index) == encoded


def test_one_fragment_per_frame_without_table_and_one_frame_in_many(tmp_path: Path) -> None:
    _, arr = _multiframe(frames=2, seed=7)
    encoded = _encoded_frames(arr, RLELossless)
    path = _with_pixel_data(
        arr, RLELossless, encapsulate(encoded, has_bot=False), tmp_path / "nobot.dcm"
    )
    assert _all_frames(path, index_frames(path)) == encoded
    _, one = _multiframe(frames=1, seed=8)
    single = _encoded_frames(one, RLELossless)
    pieces = encapsulate(single, fragments_per_frame=4, has_bot=False)
    path = _with_pixel_data(one, RLELossless, pieces, tmp_path / "split.dcm")
    index = index_frames(path)
    assert len(index.fragments[0]) == 4 and _all_frames(path, index) == single


def test_fragments_that_cannot_be_frames_are_refused(tmp_path: Path) -> None:
    _, arr = _multiframe(frames=3, seed=9)
    encoded = _encoded_frames(arr, RLELossless)  # RLE has no end marker to split on
    data = encapsulate(encoded[:2], fragments_per_frame=2, has_bot=False)
    path = _with_pixel_data(arr, RLELossless, data, tmp_path / "bad.dcm")
    with pytest.raises(FrameIndexError, match="NumberOfFrames 3"):
        index_frames(path)


# --- SEG written by highdicom --------------------------------------------------------------


def _seg(tmp_path: Path, kind: str, syntax: str, shape: tuple[int, int] = (35, 38)) -> Path:
    grid = axial_grid((shape[0], shape[1], 3), (1.0, 1.0, 2.0))
    ct = write_ct_series(tmp_path / "ct", grid, np.zeros(grid.array_shape), shuffle=False)
    sources = [pydicom.dcmread(f) for f in ct.files]
    mask = np.zeros((3, shape[1], shape[0]), dtype=np.uint8)
    mask[:, 3:30, 2:19] = 1
    mask[1, 10:12, 4:9] = 0
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues(kind),
        segment_descriptions=[
            hd.seg.SegmentDescription(
                segment_number=1,
                segment_label="Liver",
                segmented_property_category=hd.sr.CodedConcept("85756007", "SCT", "Tissue"),
                segmented_property_type=hd.sr.CodedConcept("10200004", "SCT", "Liver"),
                algorithm_type="MANUAL",
            )
        ],
        series_instance_uid=hd.UID(),
        series_number=5,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="segmap tests",
        manufacturer_model_name="t",
        software_versions="1",
        device_serial_number="1",
        transfer_syntax_uid=syntax,
    )
    path = tmp_path / f"seg-{kind}.dcm"
    seg.save_as(path)
    return path


@pytest.mark.parametrize(
    ("kind", "syntax"),
    [
        ("BINARY", ExplicitVRLittleEndian),
        ("BINARY", JPEG2000Lossless),
        ("LABELMAP", RLELossless),
        ("FRACTIONAL", JPEGLSLossless),
    ],
)
def test_highdicom_seg_frames(tmp_path: Path, kind: str, syntax: str) -> None:
    path = _seg(tmp_path, kind, syntax)
    ds = pydicom.dcmread(path)
    index = index_frames(path)
    assert index.number_of_frames == int(ds.NumberOfFrames) == 3
    expected = [_expected_native(ds, f) for f in _frames_of(ds)]
    with path.open("rb") as fp:
        got = [read_frame_uncompressed(fp, index, n) for n in (1, 2, 3)]
    assert got == expected
    if index.encapsulated:
        truth = list(generate_frames(ds.PixelData, number_of_frames=3))
        assert _all_frames(path, index) == truth


# --- serialisation ------------------------------------------------------------------------


def test_serialised_index_is_compact_and_exact(tmp_path: Path) -> None:
    ds, _ = _multiframe(frames=300, rows=16, cols=16)
    ds.compress(RLELossless)
    path = _save(ds, tmp_path / "many.dcm")
    index = index_frames(path)
    blob = index.to_bytes()
    assert FrameIndex.from_bytes(blob) == index
    assert len(blob) < 100 + 16 * 300  # offset (8) + length (4) + count (4) per frame
    corrupt = bytes([9]) + blob[1:]
    with pytest.raises(FrameIndexError, match="format 9"):
        FrameIndex.from_bytes(corrupt)


def test_index_reads_the_header_only(tmp_path: Path) -> None:
    """Indexing reads the header and the item tags, not the pixel values."""
    ds, arr = _multiframe(frames=40, rows=256, cols=256)
    ds.compress(RLELossless)
    path = _save(ds, tmp_path / "big.dcm")

    class CountingFile(io.FileIO):
        read_bytes = 0

        def read(self, size: int | None = -1) -> bytes:
            data = super().read(size)
            self.read_bytes += len(data)
            return data

    with CountingFile(path, "rb") as fp:
        index = index_frames(fp)
        assert fp.read_bytes < path.stat().st_size / 20
        assert read_frame_uncompressed(fp, index, 40) == arr[39].tobytes()
