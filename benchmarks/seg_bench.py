"""Benchmark: writing the derived DICOM SEG of a conversion, and reading it back.

Generates (with :mod:`segmap.testing`) a CT series, 512x512x300 by default,
with an RTSTRUCT of the seven phantom regions, converts it once to get the composite
mask, then measures, each in a fresh child process (wall time, and peak memory as the
largest resident set from ``os.wait4``):

* ``segmap convert --mask-only`` with and without ``--seg``: what the option costs;
* building and saving the SEG alone (BINARY, the default; LABELMAP; and BINARY with
  highdicom's ``omit_empty_frames=False`` for comparison): the child loads the series
  headers and the mask first and reports its stage times and the peak memory beyond
  what it held before the SEG was built;
* reading the SEG back: ``segmap convert --mask-only`` with the SEG as the ROI input,
  and highdicom's ``segread`` + ``get_pixels_by_source_instance``.

Usage: ``python benchmarks/seg_bench.py [--size 512,512,300] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from segmap import testing as syn

_CHILD_FLAG = "--child"


def _run(cmd: list[str], log: Path) -> tuple[float, float, str]:
    """Run ``cmd``; wall seconds, peak RSS in MB, its standard output."""
    with open(log, "ab") as err:
        err.write(("$ " + " ".join(cmd) + "\n").encode())
        err.flush()
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)} (see {log})")
    return wall, usage.ru_maxrss / 1024.0, out


def _convert_cmd(case: syn.SyntheticCase, rois: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "segmap.cli",
        "convert",
        "--map",
        str(case.region_map_path),
        "--image",
        str(case.series.folder),
        "--rois",
        str(rois),
        "--out",
        str(out),
        "--mask-only",
        *extra,
    ]


# --- child processes ---------------------------------------------------------------------


def _child_write(
    image: Path, mask: Path, map_path: Path, out: Path, kind: str, omit_empty: str
) -> None:
    import highdicom as hd
    import nibabel as nib

    from segmap.imaging.series import load_series
    from segmap.labelmap import read_region_map
    from segmap.pipeline.derived_seg import SegKind, build_derived_seg

    series = load_series(image)
    labels = np.ascontiguousarray(np.asarray(nib.load(str(mask)).dataobj).transpose(2, 1, 0))
    rmap = read_region_map(map_path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    if omit_empty == "no":  # highdicom's own option, for comparison only
        original = hd.seg.Segmentation.__init__

        def without_omitting(self, *a, **kw):  # type: ignore[no-untyped-def]
            kw["omit_empty_frames"] = False
            original(self, *a, **kw)

        hd.seg.Segmentation.__init__ = without_omitting  # type: ignore[method-assign]
    t = time.perf_counter()
    derived = build_derived_seg(labels, series, rmap, kind=SegKind(kind))
    derived.save(out)
    total = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(
        json.dumps(
            {
                **derived.timings_s,
                "total": total,
                "frames": derived.frames,
                "bytes": out.stat().st_size,
                "held_mb": before,
                "extra_peak_mb": after - before,
            }
        )
    )


def _child_highdicom_read(seg: Path, image: Path) -> None:
    import highdicom as hd

    from segmap.imaging.series import load_series

    uids = list(load_series(image).sop_instance_uids)
    t = time.perf_counter()
    s = hd.seg.segread(seg)
    pixels = s.get_pixels_by_source_instance(
        uids, combine_segments=True, assert_missing_frames_are_empty=True
    )
    print(json.dumps({"total": time.perf_counter() - t, "nonzero": int(np.count_nonzero(pixels))}))


# --- the parent ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == _CHILD_FLAG:
        what, *rest = argv[1:]
        if what == "write":
            image, mask, map_path, out, kind, omit = rest
            _child_write(Path(image), Path(mask), Path(map_path), Path(out), kind, omit)
        else:
            _child_highdicom_read(Path(rest[0]), Path(rest[1]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="512,512,300", help="columns,rows,slices")
    ap.add_argument("--spacing", default="0.8,0.8,1.25", help="column,row,slice spacing (mm)")
    ap.add_argument("--keep", type=Path, help="keep the generated data and outputs here")
    args = ap.parse_args(argv)
    size = tuple(int(x) for x in args.size.split(","))
    spacing = tuple(float(x) for x in args.spacing.split(","))
    work = args.keep or Path(tempfile.mkdtemp(prefix="segmap-seg-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        _bench(work, size, spacing)  # type: ignore[arg-type]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _bench(work: Path, size: tuple[int, int, int], spacing: tuple[float, float, float]) -> None:
    log = work / "commands.log"
    case = syn.make_case(work / "input", syn.axial_grid(size, spacing), seed=1)
    print(
        f"input: CT {size[0]}x{size[1]}x{size[2]} at {spacing} mm, RTSTRUCT of "
        f"{len(case.rois)} regions"
    )
    rows: list[tuple[str, float, float, str]] = []
    wall, peak, _ = _run(_convert_cmd(case, case.rtstruct_path, work / "plain"), log)
    rows.append(("convert --mask-only", wall, peak, ""))
    wall, peak, _ = _run(_convert_cmd(case, case.rtstruct_path, work / "seg", "--seg"), log)
    report = json.loads((work / "seg" / "report.json").read_text())
    seg_path = work / "seg" / "seg.dcm"
    rows.append(
        (
            "convert --mask-only --seg",
            wall,
            peak,
            f"write_seg stage {report['timings_s']['write_seg']:.2f} s, "
            f"{seg_path.stat().st_size / 2**20:.1f} MB",
        )
    )
    mask = work / "plain" / "mask.nii.gz"
    me = [sys.executable, str(Path(__file__).resolve()), _CHILD_FLAG]
    for kind, omit in (("BINARY", "yes"), ("LABELMAP", "yes"), ("BINARY", "no")):
        out = work / f"seg_{kind}_{omit}.dcm"
        wall, peak, text = _run(
            [
                *me,
                "write",
                str(case.series.folder),
                str(mask),
                str(case.region_map_path),
                str(out),
                kind,
                omit,
            ],
            log,
        )
        r = json.loads(text)
        label = f"SEG {kind}" + (" (omit_empty_frames=False)" if omit == "no" else "")
        rows.append(
            (
                label,
                r["total"],
                peak,
                f"mask {r['prepare_frames']:.2f} + headers {r['read_headers']:.2f} + "
                f"highdicom {r['highdicom']:.2f} + save "
                f"{r['save']:.2f} s; {r['frames']} frames, {r['bytes'] / 2**20:.1f} MB; "
                f"+{r['extra_peak_mb']:.0f} MB over the {r['held_mb']:.0f} MB held",
            )
        )
    wall, peak, _ = _run(_convert_cmd(case, seg_path, work / "back"), log)
    rows.append(("read back: convert --rois seg.dcm", wall, peak, ""))
    wall, peak, text = _run([*me, "read", str(seg_path), str(case.series.folder)], log)
    rows.append(
        (
            "read back: highdicom segread+pixels",
            json.loads(text)["total"],
            peak,
            "time excludes process start and imports",
        )
    )
    print(f"\n{'measurement':<40} {'time s':>8} {'peak MB':>8}  notes")
    for label, seconds, mb, note in rows:
        print(f"{label:<40} {seconds:>8.2f} {mb:>8.0f}  {note}")


if __name__ == "__main__":
    sys.exit(main())
