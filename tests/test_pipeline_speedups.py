"""``SEGMAP_NO_SPEEDUPS=1`` turns the conversion's helper threads off and changes nothing
else: the same mask and the same report, written by the converting thread."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from segmap import testing as syn
from segmap.pipeline import convert as convert_module
from segmap.pipeline.convert import ConvertOptions, convert
from segmap.pipeline.speedups import NO_SPEEDUPS_ENV, speedups_enabled


@pytest.mark.parametrize(
    ("value", "enabled"),
    [
        (None, True),
        ("", True),
        ("0", True),
        (" 0 ", True),
        ("1", False),
        ("yes", False),
    ],
)
def test_the_setting(monkeypatch: pytest.MonkeyPatch, value: str | None, enabled: bool) -> None:
    if value is None:
        monkeypatch.delenv(NO_SPEEDUPS_ENV, raising=False)
    else:
        monkeypatch.setenv(NO_SPEEDUPS_ENV, value)
    assert speedups_enabled() is enabled


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> syn.SyntheticCase:
    grid = syn.oblique_grid((30, 26, 8), (0.9, 1.1, 2.0))
    return syn.make_case(tmp_path_factory.mktemp("speedups") / "in", grid, seed=21)


def _convert_watching_threads(
    case: syn.SyntheticCase, out: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[object, dict[str, list]]:
    """Convert, noting which segmap threads run at each stage and who zeroes the canvas."""
    seen: dict[str, list] = {"canvas": [], "threads": []}
    real_zeroed = convert_module._zeroed

    def zeroed(shape, dtype):  # type: ignore[no-untyped-def]
        seen["canvas"].append(threading.current_thread().name)
        return real_zeroed(shape, dtype)

    def progress(stage: str, fraction: float) -> None:
        seen["threads"].extend(
            t.name for t in threading.enumerate() if t.name.startswith("segmap-")
        )

    monkeypatch.setattr(convert_module, "_zeroed", zeroed)
    result = convert(
        case.region_map_path,
        case.series.folder,
        case.rtstruct_path,
        out,
        ConvertOptions(spacing=(1.5, 1.5, 2.0), preview=False),
        progress=progress,
    )
    return result, seen


def test_no_speedups_gives_the_same_outputs_without_helper_threads(
    case: syn.SyntheticCase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(NO_SPEEDUPS_ENV, raising=False)
    fast, fast_seen = _convert_watching_threads(case, tmp_path / "fast", monkeypatch)
    assert fast_seen["canvas"] and fast_seen["canvas"][0].startswith("segmap-canvas")
    assert any(name.startswith("segmap-writer") for name in fast_seen["threads"])

    monkeypatch.setenv(NO_SPEEDUPS_ENV, "1")
    plain, plain_seen = _convert_watching_threads(case, tmp_path / "plain", monkeypatch)
    assert plain_seen == {"canvas": [], "threads": []}

    assert np.array_equal(fast.labels_kji, plain.labels_kji)
    assert sorted(fast.files) == sorted(plain.files)
    a, b = fast.report.to_dict(), plain.report.to_dict()
    for d in (a, b):
        d.pop("timings_s"), d.pop("created_utc")
    assert a["outputs"] == b["outputs"]  # the same bytes: sizes and SHA-256 of every file
    assert a == b
