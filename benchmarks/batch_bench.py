"""How fast ``segmap batch`` converts generated studies with 1 and with 2 worker processes.

Generates ``--studies`` phantom CT studies (a CT series and an RTSTRUCT of seven
regions each, :mod:`segmap.testing`) into a folder tree, then runs the batch
conversion over the whole tree once per worker count, each into its own output tree,
with the model-style resampling ``--spacing`` on. Workers are started and warmed up
(imports done) before the clock starts, so the figures are conversion throughput.

Prints studies per minute for each worker count and the scaling ratio (throughput with
N workers over throughput with 1). Exits 1 if any study failed to convert.

    .venv/bin/python benchmarks/batch_bench.py [--studies 24] [--size 160,160,40]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from segmap import testing as syn
from segmap.pipeline.batch import discover, run_batch
from segmap.pipeline.executors import LocalPoolExecutor

SPACING_IN = (1.5, 1.5, 3.0)
SPACING_OUT = (2.0, 2.0, 4.0)


def _make_study(args: tuple[str, int, tuple[int, int, int]]) -> str:
    root, index, size = args
    grid = syn.axial_grid(size, SPACING_IN)
    identity = syn.StudyIdentity.generate(index, f"BENCH{index:03d}")
    case = syn.make_case(Path(root) / f"patient{index:03d}", grid, seed=index, identity=identity)
    return str(case.rtstruct_path)


def _warm_up() -> float:
    import segmap.pipeline.convert  # noqa: F401 - the import is the warm-up

    time.sleep(0.5)  # hold this worker so the next warm-up task lands on another one
    return time.perf_counter()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def generate(root: Path, studies: int, size: tuple[int, int, int], workers: int) -> float:
    """Write the studies (in parallel); returns seconds taken."""
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_make_study, [(str(root), i, size) for i in range(studies)]))
    syn.write_region_map(root / "region2MaskValueMap.txt", syn.PHANTOM_REGION_VALUES)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", type=int, default=24, help="studies to generate (>= 20)")
    parser.add_argument(
        "--size",
        default="160,160,40",
        help="voxels per study as columns,rows,slices (default 160,160,40)",
    )
    parser.add_argument("--workers", default="1,2", help="worker counts to compare")
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="work folder (default: a temporary folder, removed after)",
    )
    args = parser.parse_args()
    size_parts = tuple(int(x) for x in args.size.split(","))
    if len(size_parts) != 3:
        parser.error("--size needs three numbers")
    size = (size_parts[0], size_parts[1], size_parts[2])
    counts = [int(x) for x in args.workers.split(",")]
    work = args.dir or Path(tempfile.mkdtemp(prefix="segmap-batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    tree = work / "in"
    tree.mkdir(exist_ok=True)
    try:
        print(
            f"machine: {platform.processor() or platform.machine()}, "
            f"{os.cpu_count()} CPU cores, Python {platform.python_version()}, "
            f"load average {_load()} before"
        )
        gen_s = generate(tree, args.studies, size, max(counts))
        found = discover(tree)
        slices = size[2]
        print(
            f"generated {args.studies} studies of {size[0]}x{size[1]}x{slices} voxels "
            f"({slices} CT files + 1 RTSTRUCT each) in {gen_s:.1f} s; {found.describe()}"
        )
        rates: dict[int, float] = {}
        failed = 0
        for n in counts:
            out = work / f"out-{n}"
            shutil.rmtree(out, ignore_errors=True)
            with LocalPoolExecutor(n) as executor:
                for h in [executor.submit(_warm_up) for _ in range(n)]:
                    h.result()
                result = run_batch(
                    found, tree / "region2MaskValueMap.txt", out, executor, {"spacing": SPACING_OUT}
                )
            failed += len(result.failed)
            rates[n] = result.cases_per_minute
            mean = sum(o.seconds for o in result.outcomes) / max(len(result.outcomes), 1)
            print(
                f"{n} worker(s): {len(result.succeeded)}/{len(result.outcomes)} converted in "
                f"{result.seconds:.1f} s = {rates[n]:.1f} studies/min "
                f"(mean {mean:.2f} s per study inside a worker)"
            )
            for o in result.failed:
                print(f"  FAILED {o.name}: {o.error}")
        print(
            f"load average {_load()} after (other programs share the cores: "
            "compare the scaling with the load)"
        )
        base = rates.get(1)
        if base:
            for n in counts:
                if n != 1:
                    print(
                        f"scaling {n} workers / 1 worker: {rates[n] / base:.2f}x (ideal {n:.2f}x)"
                    )
        return 1 if failed else 0
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
