"""The ``segmap dataset`` commands: ``freeze`` a batch tree's conversions, ``export`` them.

``segmap dataset freeze --from TREE --out STORE`` keeps a frozen dataset (manifest, QA,
hard links to its files) that can be exported later, byte for byte, whatever happens to
the tree. ``segmap dataset export --from TREE|STORE --format nnunet|monai|msd --out DIR``
writes a training layout (``--out FILE.zip`` writes it as a zip); from a tree it freezes
first, in memory. Both print the QA summary.

Exit status: 0 done (QA flags are reported, not failures), 1 bad input (one line saying
what to do), 2 usage errors. Heavy modules are imported by the handlers, so that
``segmap --help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from segmap import __version__
from segmap.errors import SegmapError

PROG = "segmap dataset"
FORMATS = ("nnunet", "monai", "msd")  # the layouts' names (a test keeps them equal)
_FREEZE_OPTIONS = (
    "name",
    "dataset_id",
    "folds",
    "seed",
    "resampled",
    "map",
    "subject",
    "session",
    "collection",
    "annotator",
)
_EXAMPLES = (
    "examples:\n"
    "  segmap batch --map region2MaskValueMap.txt --in dicom/ --out masks/\n"
    "  segmap dataset export --from masks/ --format nnunet --out $nnUNet_raw "
    "--name Abdomen --id 501\n"
    "  segmap dataset freeze --from masks/ --out datasets/abdomen-v1 --name Abdomen\n"
    "  segmap dataset export --from datasets/abdomen-v1 --format monai --out abdomen.zip\n"
)


def _whole(low: int, high: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{what} must be a whole number from {low} to {high}, got {text!r}"
            )
        return value

    return parse


def _parser(subparsers: Any, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"segmap {__version__}",
        help="print the segmap version and exit",
    )
    return parser


def _add_freeze_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("freezing (when --from is a batch tree)")
    g.add_argument("--name", help="dataset name: letters, digits, _ and - (default: segmap)")
    g.add_argument(
        "--id",
        dest="dataset_id",
        type=_whole(1, 999, "--id"),
        metavar="NNN",
        help="nnU-Net dataset number, 1-999 (default: 500)",
    )
    g.add_argument(
        "--folds",
        type=_whole(2, 1000, "--folds"),
        metavar="K",
        help="cross-validation folds, grouped by subject (default: 5)",
    )
    g.add_argument(
        "--seed",
        type=_whole(0, 2**32 - 1, "--seed"),
        metavar="N",
        help="seed of the fold shuffle (default: 0)",
    )
    g.add_argument(
        "--resampled",
        action="store_true",
        default=None,
        help="use the pairs resampled by 'segmap batch --spacing' (one spacing)",
    )
    g.add_argument(
        "--map",
        type=Path,
        metavar="MAP",
        help="the model's region map; only cases converted with it are taken "
        "(default: the map every case was converted with)",
    )
    for field, what in (
        ("subject", "subject (PatientID)"),
        ("session", "session (StudyInstanceUID)"),
        ("collection", "collection (batch case name or annotation UID)"),
        ("annotator", "annotator"),
    ):
        g.add_argument(
            f"--{field}",
            action="append",
            metavar="PATTERN",
            help=f"keep only this {what}; repeatable, shell patterns allowed",
        )


def add_dataset_parser(subparsers: Any) -> None:
    """Add ``segmap dataset`` and its ``freeze`` and ``export`` sub-commands."""
    group = _parser(
        subparsers,
        "dataset",
        help="gather a batch's image/mask pairs into a training dataset (nnU-Net, MONAI, MSD)",
        description=(
            "Gather the image/mask pairs of a 'segmap batch' output tree into a "
            "frozen, checked training dataset: case names without patient data, "
            "labels renumbered 1..n, folds grouped by subject, a QA report.\n"
            "See docs/datasets.md."
        ),
        epilog=_EXAMPLES,
    )
    group.set_defaults(handler=lambda args: _usage(group))
    commands = group.add_subparsers(dest="dataset_command", metavar="DATASET_COMMAND")

    freeze = _parser(
        commands,
        "freeze",
        help="freeze a batch tree's conversions into a dataset folder",
        description=(
            "Select the conversions of a batch tree, check and measure them, and "
            "keep the frozen dataset in STORE: manifest.json, qa.json, qa/*.png "
            "and hard links to every file (copies across file systems), so that "
            "it can be exported again byte for byte after the tree changes."
        ),
        epilog=_EXAMPLES,
    )
    freeze.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="TREE",
        help="output tree of 'segmap batch'",
    )
    freeze.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="STORE",
        help="folder to keep the frozen dataset in (must not exist)",
    )
    freeze.add_argument("--force", action="store_true", help="replace STORE if it exists")
    freeze.add_argument("--json", action="store_true", help="print the QA report as JSON")
    _add_freeze_options(freeze)
    freeze.set_defaults(handler=run_freeze)

    export = _parser(
        commands,
        "export",
        help="write a dataset in a training layout, as a folder or zip",
        description=(
            "Write a dataset in nnU-Net v2, MONAI or Medical Segmentation "
            "Decathlon layout into DIR (DIR/Dataset500_Name, DIR/Name, "
            "DIR/Task500_Name), or as a zip when --out ends in .zip. --from is a "
            "batch tree (frozen first, with the freezing options) or a frozen "
            "dataset ('segmap dataset freeze', or the segmap/ folder of an export)."
        ),
        epilog=_EXAMPLES,
    )
    export.add_argument(
        "--from",
        dest="source",
        required=True,
        type=Path,
        metavar="TREE|STORE",
        help="batch tree or frozen dataset",
    )
    export.add_argument("--format", required=True, choices=FORMATS, help="the layout")
    export.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR|FILE.zip",
        help="folder to write the dataset folder into, or a .zip file",
    )
    export.add_argument(
        "--force", action="store_true", help="replace the dataset folder or zip if it exists"
    )
    _add_freeze_options(export)
    export.set_defaults(handler=run_export)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _say(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr, flush=True)


def _frozen_from_tree(args: argparse.Namespace) -> Any:
    from segmap.datasets.batchtree import scan_batch_tree
    from segmap.datasets.freeze import FreezeOptions, freeze
    from segmap.datasets.manifest import ExcludedCase
    from segmap.datasets.selection import CaseFilter
    from segmap.labelmap import read_region_map

    defaults = FreezeOptions()
    options = FreezeOptions(
        name=args.name or defaults.name,
        dataset_id=args.dataset_id or defaults.dataset_id,
        resampled=bool(args.resampled),
        folds=args.folds or defaults.folds,
        seed=args.seed if args.seed is not None else defaults.seed,
        case_filter=CaseFilter(
            *(
                tuple(getattr(args, f) or ())
                for f in ("subject", "session", "collection", "annotator")
            )
        ),
        region_map=read_region_map(args.map) if args.map else None,
    )
    _say(f"reading the conversions under {args.source} ...")
    scan = scan_batch_tree(args.source)
    _say(
        f"{len(scan.conversions)} conversion(s) found, {len(scan.skipped)} failed case(s) "
        "skipped; checking and measuring ..."
    )
    return freeze(
        scan.conversions, options, excluded=[ExcludedCase(s.key, s.reason) for s in scan.skipped]
    )


def _print_summary(frozen: Any) -> None:
    from segmap.datasets.qa.summary import summary_lines

    print("\n".join(summary_lines(frozen.manifest, frozen.qa)))


def run_freeze(args: argparse.Namespace) -> int:
    """Handle ``segmap dataset freeze``; returns the exit status."""
    from segmap.datasets.store import save_store

    try:
        frozen = _frozen_from_tree(args)
        result = save_store(frozen, args.out, force=args.force)
    except SegmapError as exc:
        _say(f"error: {exc}")
        return 1
    if args.json:
        print(frozen.qa.to_json(), end="")
    else:
        _print_summary(frozen)
    print(
        f"froze {len(frozen.manifest.cases)} case(s) into {result.path} ({result.linked} "
        f"file(s) hard-linked, {result.copied} copied)"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    """Handle ``segmap dataset export``; returns the exit status."""
    from segmap.datasets.export import export_folder, export_zip
    from segmap.datasets.store import is_frozen_folder, open_frozen, source_resolver

    given = [
        f"--{o.replace('dataset_id', 'id')}"
        for o in _FREEZE_OPTIONS
        if getattr(args, o) is not None
    ]
    try:
        if is_frozen_folder(args.source):
            if given:
                verb = "applies" if len(given) == 1 else "apply"
                _say(
                    f"error: {', '.join(given)} {verb} only when freezing; {args.source} is "
                    "already frozen: export it as it is, or freeze the batch tree again"
                )
                return 2
            frozen, resolve = open_frozen(args.source)
        else:
            frozen, resolve = _frozen_from_tree(args), source_resolver
        if args.out.suffix.lower() == ".zip":
            if args.out.exists() and not args.force:
                _say(f"error: {args.out} already exists; remove it or give --force")
                return 1
            zipped = export_zip(frozen, args.format, args.out, resolve=resolve)
            _print_summary(frozen)
            print(f"wrote the {args.format} dataset as {zipped.path} ({zipped.bytes} bytes)")
        else:
            done = export_folder(frozen, args.format, args.out, resolve=resolve, force=args.force)
            _print_summary(frozen)
            print(
                f"wrote the {args.format} dataset to {done.path} ({done.linked} file(s) "
                f"hard-linked, {done.copied} copied, {done.generated} generated; "
                f"{done.bytes} bytes)"
            )
    except SegmapError as exc:
        _say(f"error: {exc}")
        return 1
    return 0
