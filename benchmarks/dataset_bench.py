"""How fast datasets are frozen and exported, and how much memory that takes.

Generates ``--cases`` phantom studies (a CT series and an RTSTRUCT of seven regions each,
:mod:`segmap.testing`), converts them with ``run_batch`` on the scans' own
grids, then -- each step in a fresh process, so that its peak memory is its own -- for
the first 10 and for all cases:

* freezes them (hash every file, count every mask's values, QA) into a store;
* exports the store as an nnU-Net v2 folder (images hard-linked, labels rewritten 1..7);
* streams the store as an nnU-Net v2 zip into a sink that only counts the bytes.

Prints one table: cases, step, seconds, cases per second, the process's resident memory
after imports and at its peak (MB), and their difference. The last column must not grow
with the number of cases.

    .venv/bin/python benchmarks/dataset_bench.py [--cases 50] [--size 128,128,40]
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

SPACING = (1.5, 1.5, 3.0)
STEPS = ("freeze", "folder", "zip")


def _rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(step: str, tree: Path, store: Path, out: Path, cases: int) -> dict[str, float]:
    """Run one step in this process; returns its figures."""
    import nibabel  # noqa: F401 - imported before the baseline, as every step needs it

    from segmap.datasets.batchtree import scan_batch_tree
    from segmap.datasets.export import export_folder, stream_zip
    from segmap.datasets.freeze import FreezeOptions, freeze
    from segmap.datasets.store import open_frozen, save_store

    baseline = _current_rss_mb()
    start = time.perf_counter()
    size = 0
    if step == "freeze":
        conversions = scan_batch_tree(tree).conversions[:cases]
        frozen = freeze(conversions, FreezeOptions(name="Bench", folds=5))
        size = save_store(frozen, store).bytes
    else:
        frozen, resolve = open_frozen(store)
        if step == "folder":
            size = export_folder(frozen, "nnunet", out, resolve=resolve).bytes
        else:
            _, pieces = stream_zip(frozen, "nnunet", resolve=resolve)
            for piece in pieces:
                size += len(piece)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "baseline_mb": baseline, "peak_mb": _rss_mb(), "bytes": size}


def _make_case(args: tuple[str, int, tuple[int, int, int]]) -> None:
    from segmap import testing as syn

    root, index, size = args
    grid = syn.axial_grid(size, SPACING)
    identity = syn.StudyIdentity.generate(index, f"BENCH{index % 40:03d}")
    syn.make_case(Path(root) / f"patient{index:03d}", grid, seed=index, identity=identity)


def generate(work: Path, cases: int, size: tuple[int, int, int]) -> Path:
    """Write and convert the studies; returns the batch output tree."""
    from concurrent.futures import ProcessPoolExecutor

    from segmap import testing as syn
    from segmap.pipeline.batch import discover, run_batch
    from segmap.pipeline.executors import LocalPoolExecutor

    inputs, out = work / "in", work / "out"
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_make_case, [(str(inputs), i, size) for i in range(cases)]))
    region_map = syn.write_region_map(work / "region2MaskValueMap.txt", syn.PHANTOM_REGION_VALUES)
    with LocalPoolExecutor(2) as executor:
        result = run_batch(discover(inputs), region_map, out, executor, {"preview": False})
    if result.failed:
        raise SystemExit(f"{len(result.failed)} case(s) failed to convert")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=50, help="cases to generate (>= 10)")
    parser.add_argument(
        "--size",
        default="128,128,40",
        help="voxels per scan as columns,rows,slices (default 128,128,40)",
    )
    parser.add_argument("--dir", type=Path, help="work folder (default: temporary, removed)")
    parser.add_argument(
        "--child", nargs=5, metavar=("STEP", "TREE", "STORE", "OUT", "N"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        step, tree, store, out, n = args.child
        print(json.dumps(child(step, Path(tree), Path(store), Path(out), int(n))))
        return 0
    parts = tuple(int(x) for x in args.size.split(","))
    if len(parts) != 3 or args.cases < 10:
        parser.error("--size needs three numbers and --cases at least 10")
    work = args.dir or Path(tempfile.mkdtemp(prefix="segmap-dataset-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t = time.perf_counter()
        tree = generate(work, args.cases, (parts[0], parts[1], parts[2]))
        print(
            f"generated and converted {args.cases} cases of {args.size} voxels in "
            f"{time.perf_counter() - t:.1f} s; load average {os.getloadavg()[0]:.2f}"
        )
        rows = []
        for n in sorted({10, args.cases}):
            store = work / f"store{n}"
            for step in STEPS:
                out = work / f"export{n}-{step}"
                done = subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--child",
                        step,
                        str(tree),
                        str(store),
                        str(out),
                        str(n),
                    ],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                rows.append((n, step, json.loads(done.stdout.strip().splitlines()[-1])))
                shutil.rmtree(out, ignore_errors=True)
        _print_table(rows)
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


_NAMES = {
    "freeze": "freeze into a store (hash, count, QA)",
    "folder": "export nnU-Net folder (links + labels)",
    "zip": "stream nnU-Net zip (to a byte counter)",
}


def _print_table(rows: list[tuple[int, str, dict[str, float]]]) -> None:
    head = (
        f"{'cases':>5}  {'step':<40} {'seconds':>8} {'cases/s':>8} {'MB out':>8} "
        f"{'RSS after imports':>17} {'peak RSS':>9} {'growth':>7}"
    )
    print(head)
    print("-" * len(head))
    for n, step, r in rows:
        print(
            f"{n:>5}  {_NAMES[step]:<40} {r['seconds']:>8.2f} {n / r['seconds']:>8.1f} "
            f"{r['bytes'] / 1e6:>8.1f} {r['baseline_mb']:>14.0f} MB {r['peak_mb']:>6.0f} MB "
            f"{r['peak_mb'] - r['baseline_mb']:>4.0f} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
