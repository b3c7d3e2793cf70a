"""The project page's tabs and the breadcrumb trails of the registry's pages.

The tabs are one list for every feature's pages; each tab names its page's route. Every
page inside a project shows them (``_project_tabs.html``) with its own tab marked: the
Machine Learning dashboard and a model's pages mark ``MODELS_TAB``.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from segmap.server.registry.presenters import ModelView, ProjectView
from segmap.server.web.pages import HOME_ROUTE, Crumb
from segmap.server.web.urls import path_for

# (key, label, route name); a page marks its own tab by key.
PROJECT_TABS = (
    ("overview", "Overview", "project_page"),
    ("sessions", "Sessions", "sessions_page"),
    ("jobs", "Jobs", "jobs_page"),
    ("machine-learning", "Machine Learning", "machine_learning_tab"),
    ("viewer", "Viewer", "viewer_tab"),
)
# The Viewer tab (``viewer.pages``): OHIF's study list on the project, or a note.
VIEWER_TAB = "viewer"
# The tab of the Machine Learning tab, the dashboard and every model's pages.
MODELS_TAB = "machine-learning"
# A model's own tabs (``dataset_tabs.html``): View Model and its training datasets.
MODEL_TABS = (
    ("model", "Model", "model_page"),
    ("datasets", "Datasets", "datasets_page"),
)


@dataclass(frozen=True)
class NavItem:
    """An entry of the project page's tabs."""

    key: str
    label: str
    url: str


def project_tabs(conn: HTTPConnection, project_id: str) -> list[NavItem]:
    """The project page's tabs, in order."""
    return [
        NavItem(key, label, path_for(conn, route, project=project_id))
        for key, label, route in PROJECT_TABS
    ]


def model_tabs(conn: HTTPConnection, project_id: str, model_label: str) -> list[NavItem]:
    """A model page's tabs, in order."""
    return [
        NavItem(key, label, path_for(conn, route, project=project_id, model=model_label))
        for key, label, route in MODEL_TABS
    ]


def project_crumbs(conn: HTTPConnection, project: ProjectView, *more: Crumb) -> list[Crumb]:
    """Breadcrumbs Projects › the project › ``more``."""
    return [Crumb("Projects", path_for(conn, HOME_ROUTE)), Crumb(project.name, project.url), *more]


def model_crumbs(
    conn: HTTPConnection, project: ProjectView, model: ModelView, *more: Crumb
) -> list[Crumb]:
    """Breadcrumbs down to a model's page, then ``more``."""
    return project_crumbs(
        conn,
        project,
        Crumb("Machine Learning", path_for(conn, "machine_learning_tab", project=project.id)),
        Crumb("Machine Learning dashboard", path_for(conn, "dashboard_page", project=project.id)),
        Crumb(model.label, model.url),
        *more,
    )
