"""Benchmark: ``segmap convert`` against ``plastimatch convert`` on the same generated input.

Generates (with :mod:`segmap.testing`) a CT series, 512x512x300 by default,
and an RTSTRUCT of seven regions and about a thousand contours (the aorta has a hole),
then runs each tool as a child process and measures wall time and peak memory (the
largest resident set of the child's process tree, from ``os.wait4``):

(a) the composite mask alone: ``segmap convert --mask-only`` against
    ``plastimatch convert --output-labelmap`` (with ``--xor-contours`` so inner contours
    are holes); plastimatch's ``--output-ss-img`` is timed as well;
(b) image + mask, both resampled to 1.0 mm: ``segmap convert --spacing 1,1,1`` (native
    mask, resampled image, resampled mask) against the plastimatch steps that give the
    same files: ``convert --output-labelmap`` (native mask), ``convert --input CT
    --output-img --spacing`` (resampled image) and ``resample --interpolation nn``
    (resampled mask).

It then compares the two tools' masks region by region (Dice) and voxel by voxel, mapping
plastimatch's labelmap values through its structure list to the region map's values.

Nothing is installed: plastimatch must be on PATH (Debian: ``apt-get install
plastimatch``); without it only segmap's figures are printed.

Usage: ``python benchmarks/convert_bench.py [--size 512,512,300] [--spacing 0.8,0.8,1.25]
[--repeat 1] [--keep DIR] [--profile]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from segmap import testing as syn
from segmap.imaging.resample import grid_for_spacing

TARGET_MASK_SPEEDUP = 5.0
TARGET_FULL_SPEEDUP = 2.0
MEMORY_SLACK_MB = 300.0


@dataclass
class Run:
    """One measured child process (or chain of them)."""

    label: str
    tool: str
    wall_s: float
    peak_mb: float
    ok: bool
    note: str = ""


def _run(cmd: list[str], log: Path) -> tuple[float, float, bool]:
    """Run ``cmd``; wall seconds, peak RSS in MB of its process tree, success."""
    with open(log, "ab") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024.0, proc.returncode == 0


def _chain(label: str, tool: str, cmds: list[list[str]], log: Path, repeat: int) -> Run:
    """Time a chain of commands; best wall time over ``repeat``, largest peak memory."""
    best, peak, ok = float("inf"), 0.0, True
    for _ in range(repeat):
        total = 0.0
        for cmd in cmds:
            wall, mb, good = _run(cmd, log)
            total += wall
            peak = max(peak, mb)
            ok &= good
        best = min(best, total)
    return Run(label, tool, best, peak, ok)


def _segmap_cmd(case: syn.SyntheticCase, out: Path, *extra: str) -> list[str]:
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
        str(case.rtstruct_path),
        "--out",
        str(out),
        *extra,
    ]


def _read_ss_list(path: Path) -> dict[int, str]:
    """plastimatch structure list: ``index|r g b|name`` -> {labelmap value: name}."""
    names = {}
    for line in path.read_text().splitlines():
        parts = line.split("|")
        if len(parts) >= 3:
            names[int(parts[0]) + 1] = parts[2].strip()
    return names


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int((a & b).sum()) / total


def _agreement(ours: Path, theirs: Path, ss_list: Path, values: dict[str, int]) -> list[str]:
    a_img, b_img = nib.load(str(ours)), nib.load(str(theirs))
    lines = []
    if a_img.shape[:3] != b_img.shape[:3] or not np.allclose(a_img.affine, b_img.affine, atol=1e-3):
        return [
            f"  grids differ: segmap {a_img.shape} vs plastimatch {b_img.shape}; "
            "no voxel comparison"
        ]
    a = np.asarray(a_img.dataobj)
    b = np.asarray(b_img.dataobj).reshape(a.shape)
    names = _read_ss_list(ss_list)
    mapped = np.zeros(a.shape, dtype=np.uint16)
    for pm_value, name in names.items():
        mapped[b == pm_value] = values.get(name, 0)
    lines.append(
        f"  voxels with the same label: {100.0 * float((a == mapped).mean()):.4f} %"
        f" ({int((a != mapped).sum())} of {a.size} differ)"
    )
    for name, v in values.items():
        x, y = a == v, mapped == v
        lines.append(
            f"  {name:<10} value {v:>3}: segmap {int(x.sum()):>9} plastimatch "
            f"{int(y.sum()):>9} voxels, Dice {_dice(x, y):.5f}"
        )
    return lines


def _ss_img_agreement(ours: Path, ss_img: Path, ss_list: Path, values: dict[str, int]) -> list[str]:
    """Compare with plastimatch's bit-plane structure image, painted in map order."""
    a = np.asarray(nib.load(str(ours)).dataobj)
    raw = np.asarray(nib.load(str(ss_img)).dataobj)
    raw = raw.reshape(a.shape + (-1,))
    bits = np.zeros(a.shape, dtype=np.uint64)
    for byte in range(raw.shape[-1]):
        bits |= raw[..., byte].astype(np.uint64) << np.uint64(8 * byte)
    names = _read_ss_list(ss_list)
    painted = np.zeros(a.shape, dtype=np.uint16)
    for pm_value, name in sorted(names.items()):
        painted[(bits >> np.uint64(pm_value - 1)) & np.uint64(1) == 1] = values.get(name, 0)
    out = [
        f"  voxels with the same label: {100.0 * float((a == painted).mean()):.4f} %"
        f" ({int((a != painted).sum())} of {a.size} differ)"
    ]
    for name, v in values.items():
        out.append(f"  {name:<10} value {v:>3}: Dice {_dice(a == v, painted == v):.5f}")
    return out


def _profile(case: syn.SyntheticCase, work: Path, spacing: bool) -> None:
    import cProfile
    import pstats

    from segmap.pipeline.convert import ConvertOptions, convert

    opts = (
        ConvertOptions(spacing=(1.0, 1.0, 1.0), preview=False)
        if spacing
        else ConvertOptions(mask_only=True)
    )
    prof = cProfile.Profile()
    prof.enable()
    res = convert(
        case.region_map_path,
        case.series.folder,
        case.rtstruct_path,
        work / f"profile_{int(spacing)}",
        opts,
    )
    prof.disable()
    print(f"\nprofile of segmap ({'b' if spacing else 'a'}): stage timings (s):")
    for stage, s in res.report.timings_s.items():
        print(f"  {stage:<22} {s:8.3f}")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(18)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="512,512,300", help="columns,rows,slices")
    ap.add_argument("--spacing", default="0.8,0.8,1.25", help="column,row,slice spacing (mm)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement (best time)")
    ap.add_argument("--keep", type=Path, help="keep the generated data and outputs here")
    ap.add_argument("--profile", action="store_true", help="also profile segmap in-process")
    args = ap.parse_args(argv)
    size = tuple(int(x) for x in args.size.split(","))
    spacing = tuple(float(x) for x in args.spacing.split(","))
    work = args.keep or Path(tempfile.mkdtemp(prefix="segmap-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    try:
        return _bench(work, log, size, spacing, args.repeat, args.profile)  # type: ignore[arg-type]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def _bench(
    work: Path,
    log: Path,
    size: tuple[int, int, int],
    spacing: tuple[float, float, float],
    repeat: int,
    profile: bool,
) -> int:
    t = time.perf_counter()
    grid = syn.axial_grid(size, spacing)
    case = syn.make_case(work / "input", grid, seed=1)
    n_contours = sum(len(r.contours) for r in case.rois)
    holes = sum(len(r.contours) // 2 for r in case.rois if r.name == "Aorta")
    image_mb = float(np.prod(size)) * 2 / 2**20
    print(
        f"input: CT {size[0]}x{size[1]}x{size[2]} at {spacing} mm ({image_mb:.0f} MB as "
        f"int16), RTSTRUCT with {len(case.rois)} regions, {n_contours} contours "
        f"({holes} holes); generated in {time.perf_counter() - t:.1f} s in {work}"
    )

    pm = shutil.which("plastimatch")
    runs: list[Run] = []
    out = work / "out"
    ct, rt = str(case.series.folder), str(case.rtstruct_path)
    runs.append(
        _chain(
            "(a) mask only", "segmap", [_segmap_cmd(case, out / "sm_a", "--mask-only")], log, repeat
        )
    )
    if pm:
        pa = out / "pm_a"
        pa.mkdir(parents=True, exist_ok=True)
        runs.append(
            _chain(
                "(a) mask only",
                "plastimatch",
                [
                    [
                        pm,
                        "convert",
                        "--input",
                        rt,
                        "--referenced-ct",
                        ct,
                        "--xor-contours",
                        "--output-labelmap",
                        str(pa / "labelmap.nii.gz"),
                        "--output-ss-list",
                        str(pa / "ss_list.txt"),
                    ]
                ],
                log,
                repeat,
            )
        )
        runs.append(
            _chain(
                "(a') ss-img",
                "plastimatch",
                [
                    [
                        pm,
                        "convert",
                        "--input",
                        rt,
                        "--referenced-ct",
                        ct,
                        "--xor-contours",
                        "--output-ss-img",
                        str(pa / "ss_img.nii.gz"),
                    ]
                ],
                log,
                repeat,
            )
        )
    runs.append(
        _chain(
            "(b) image+mask @1mm",
            "segmap",
            [_segmap_cmd(case, out / "sm_b", "--spacing", "1,1,1", "--no-preview")],
            log,
            repeat,
        )
    )
    if pm:
        pb = out / "pm_b"
        pb.mkdir(parents=True, exist_ok=True)
        # Same target grid as segmap's (origin and direction kept, the extent rounded to
        # whole 1 mm voxels); plastimatch keeps the voxel count unless told --dim.
        dim = " ".join(str(n) for n in grid_for_spacing(grid, (1.0, 1.0, 1.0)).size)
        runs.append(
            _chain(
                "(b) image+mask @1mm",
                "plastimatch",
                [
                    [
                        pm,
                        "convert",
                        "--input",
                        rt,
                        "--referenced-ct",
                        ct,
                        "--xor-contours",
                        "--output-labelmap",
                        str(pb / "mask.nii.gz"),
                        "--output-ss-list",
                        str(pb / "ss_list.txt"),
                    ],
                    [
                        pm,
                        "convert",
                        "--input",
                        ct,
                        "--output-img",
                        str(pb / "image_resampled.nii.gz"),
                        "--spacing",
                        "1 1 1",
                        "--dim",
                        dim,
                    ],
                    [
                        pm,
                        "resample",
                        "--input",
                        str(pb / "mask.nii.gz"),
                        "--output",
                        str(pb / "mask_resampled.nii.gz"),
                        "--spacing",
                        "1 1 1",
                        "--dim",
                        dim,
                        "--interpolation",
                        "nn",
                    ],
                ],
                log,
                repeat,
            )
        )

    _table(runs, image_mb)
    if pm:
        print("\nagreement (a): segmap mask.nii.gz vs plastimatch --output-labelmap")
        for line in _agreement(
            out / "sm_a" / "mask.nii.gz",
            out / "pm_a" / "labelmap.nii.gz",
            out / "pm_a" / "ss_list.txt",
            case.region_values,
        ):
            print(line)
        print(
            "agreement (a'): segmap mask.nii.gz vs plastimatch --output-ss-img "
            "(bit planes painted in map order)"
        )
        for line in _ss_img_agreement(
            out / "sm_a" / "mask.nii.gz",
            out / "pm_a" / "ss_img.nii.gz",
            out / "pm_a" / "ss_list.txt",
            case.region_values,
        ):
            print(line)
        print("agreement (b): segmap mask_resampled.nii.gz vs plastimatch resample nn")
        for line in _agreement(
            out / "sm_b" / "mask_resampled.nii.gz",
            out / "pm_b" / "mask_resampled.nii.gz",
            out / "pm_b" / "ss_list.txt",
            case.region_values,
        ):
            print(line)
    else:
        print(
            "\nplastimatch not found on PATH (Debian: apt-get install plastimatch): "
            "only segmap measured"
        )
    if profile:
        _profile(case, work, spacing=False)
        _profile(case, work, spacing=True)
    return 0 if all(r.ok for r in runs) else 1


def _table(runs: list[Run], image_mb: float) -> None:
    limit = 3 * image_mb + MEMORY_SLACK_MB
    print(f"\n{'case':<22}{'tool':<13}{'wall s':>9}{'peak MB':>10}{'speed-up':>10}  status")
    by = {(r.label, r.tool): r for r in runs}
    for r in runs:
        speed = ""
        if r.tool == "segmap":
            other = by.get((r.label, "plastimatch"))
            if other:
                speed = f"{other.wall_s / r.wall_s:.1f}x"
        print(
            f"{r.label:<22}{r.tool:<13}{r.wall_s:>9.2f}{r.peak_mb:>10.0f}{speed:>10}  "
            f"{'ok' if r.ok else 'FAILED (see commands.log)'}"
        )
    print()
    for label, target in (
        ("(a) mask only", TARGET_MASK_SPEEDUP),
        ("(b) image+mask @1mm", TARGET_FULL_SPEEDUP),
    ):
        s, p = by.get((label, "segmap")), by.get((label, "plastimatch"))
        if s and p:
            ratio = p.wall_s / s.wall_s
            verdict = "MET" if ratio >= target else "NOT MET"
            print(
                f"target {label}: >= {target:.0f}x faster than plastimatch: {ratio:.1f}x {verdict}"
            )
    for r in runs:
        if r.tool == "segmap":
            verdict = "MET" if r.peak_mb < limit else "NOT MET"
            print(
                f"target memory {r.label}: peak {r.peak_mb:.0f} MB < 3 x {image_mb:.0f} MB "
                f"+ {MEMORY_SLACK_MB:.0f} MB = {limit:.0f} MB: {verdict}"
            )


if __name__ == "__main__":
    sys.exit(main())
