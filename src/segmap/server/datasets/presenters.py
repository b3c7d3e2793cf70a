"""How a dataset is shown, by the API (``DatasetOut``) and by the pages alike.

:class:`DatasetView` is one dataset row with its links; :class:`FrozenView` is a ready
dataset's manifest and QA report (the library's frozen values) with the URL of each QA
picture, which the dataset page and the API's detail answer both read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from starlette.requests import HTTPConnection

from segmap.datasets.freeze import FrozenDataset
from segmap.datasets.layouts import FORMAT_NAMES
from segmap.datasets.manifest import Manifest
from segmap.datasets.qa.report import DatasetQA, RegionQA
from segmap.server.db.datasets import DATASET_FREEZING, DATASET_QUEUED, DATASET_READY, Dataset
from segmap.server.registry.presenters import username
from segmap.server.web.pages import format_time
from segmap.server.web.urls import path_for, with_query

FORMAT_TITLES = {
    "nnunet": "nnU-Net v2",
    "monai": "MONAI",
    "msd": "Medical Segmentation Decathlon",
}


@dataclass(frozen=True)
class DatasetView:
    """A dataset: its options, its state and progress (0..1), and where it is."""

    id: int
    name: str
    project: str
    model: str
    model_id: int
    state: str
    stage: str
    progress: float
    error: str | None
    attempts: int
    filter: dict[str, list[str]]
    resampled: bool
    folds: int
    seed: int
    dataset_id: int
    case_count: int | None
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str
    page_url: str
    download_urls: dict[str, str]

    @property
    def active(self) -> bool:
        """Still queued or freezing (the page refreshes itself)."""
        return self.state in (DATASET_QUEUED, DATASET_FREEZING)

    @property
    def ready(self) -> bool:
        """Frozen: it can be downloaded."""
        return self.state == DATASET_READY

    @property
    def progress_pct(self) -> int:
        """Progress in whole percent."""
        return int(round(100 * self.progress))

    @property
    def filter_text(self) -> str:
        """The filter in words ('all conversions' when empty)."""
        if not self.filter:
            return "all conversions"
        return "; ".join(f"{k} {', '.join(v)}" for k, v in self.filter.items())

    @property
    def pairs_text(self) -> str:
        """Which image/mask pairs it takes."""
        return "at the model's spacing" if self.resampled else "on each scan's own grid"

    @property
    def created_text(self) -> str:
        """When it was created, in UTC."""
        return format_time(self.created_at)

    @property
    def finished_text(self) -> str:
        """When freezing finished ('' before)."""
        return format_time(self.finished_at) if self.finished_at else ""

    @property
    def downloads(self) -> list[tuple[str, str, str]]:
        """(format, title, URL) of each download."""
        return [(f, FORMAT_TITLES.get(f, f), u) for f, u in self.download_urls.items()]


def present_dataset(conn: HTTPConnection, row: Dataset) -> DatasetView:
    """The dataset row with its links (the model must be loaded)."""
    params = {"project": row.project_id, "model": row.model.label, "name": row.name}
    download = path_for(conn, "api_download_dataset", **params)
    return DatasetView(
        id=row.id,
        name=row.name,
        project=row.project_id,
        model=row.model.label,
        model_id=row.model_id,
        state=row.state,
        stage=row.stage or "",
        progress=round(float(row.progress or 0.0), 4),
        error=row.error,
        attempts=row.attempts,
        filter={str(k): [str(x) for x in v] for k, v in (row.filter or {}).items()},
        resampled=row.resampled,
        folds=row.folds,
        seed=row.seed,
        dataset_id=row.nnunet_id,
        case_count=row.case_count,
        created_by=username(row.created_by),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        url=path_for(conn, "api_get_dataset", **params),
        page_url=path_for(conn, "dataset_page", **params),
        download_urls=(
            {f: with_query(download, {"format": f}) for f in FORMAT_NAMES}
            if row.state == DATASET_READY
            else {}
        ),
    )


@dataclass(frozen=True)
class RegionPlot:
    """A region of the QA report and the URL of its picture."""

    region: RegionQA
    url: str

    @property
    def outliers(self) -> int:
        """How many of its volumes are flagged."""
        return sum(v.outlier for v in self.region.volumes)


@dataclass(frozen=True)
class FrozenView:
    """A ready dataset's manifest and QA report, with a picture URL per region."""

    manifest: Manifest
    qa: DatasetQA
    regions: tuple[RegionPlot, ...]

    @property
    def subjects(self) -> int:
        """How many subjects (patients) its cases come from."""
        return len({c.subject for c in self.manifest.cases})

    @property
    def spacing_text(self) -> str:
        """The pairs' spacing ('each scan's own' for native pairs)."""
        s = self.manifest.spacing_mm
        return " × ".join(f"{x:g}" for x in s) + " mm" if s else "each scan's own"

    def to_dict(self) -> dict[str, Any]:
        """``manifest``, ``qa`` (their JSON forms) and ``qa_plots`` (label value -> URL)."""
        return {
            "manifest": self.manifest.to_dict(),
            "qa": self.qa.to_dict(),
            "qa_plots": {str(r.region.value): r.url for r in self.regions},
        }


def present_frozen(conn: HTTPConnection, view: DatasetView, frozen: FrozenDataset) -> FrozenView:
    """The frozen dataset of ``view`` with the URLs of its QA pictures."""
    regions = tuple(
        RegionPlot(
            r,
            path_for(
                conn,
                "api_dataset_plot",
                project=view.project,
                model=view.model,
                name=view.name,
                picture=r.plot.rsplit("/", 1)[-1],
            ),
        )
        for r in frozen.qa.regions
    )
    return FrozenView(frozen.manifest, frozen.qa, regions)
