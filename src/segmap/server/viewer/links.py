"""Where "Open in OHIF" goes: a study of a project, optionally with a model's labels.

Pure URL building, so any page may link to the viewer without depending on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from segmap.server.viewer.dist import BASE_PATH

MODE = "segmentation"  # OHIF's segmentation mode (route name in @ohif/mode-segmentation)


def viewer_study_url(project_id: str, study_instance_uid: str, model: str | None = None) -> str:
    """``/ohif/segmentation/{project}?StudyInstanceUIDs=…[&segmapProject=…&segmapModel=…]``.

    The path names the project's data source; ``segmapModel`` picks the preset that
    ``segmap_presets.js`` reads at start-up (no model: OHIF as it ships).
    """
    query = {"StudyInstanceUIDs": study_instance_uid}
    if model is not None:
        query |= {"segmapProject": project_id, "segmapModel": model}
    return f"{BASE_PATH}{MODE}/{quote(project_id, safe='')}?{urlencode(query)}"


def viewer_study_list_url(project_id: str) -> str:
    """``/ohif/?dataSources={project}``: OHIF's study list on the project's data source.

    ``dataSources`` takes a data source's ``sourceName`` (OHIF's URL documentation), which
    ``app_config.data_source`` sets to the project id.
    """
    return f"{BASE_PATH}?{urlencode({'dataSources': project_id})}"


@dataclass(frozen=True)
class ViewerLink:
    """One "Open in OHIF" entry: its words, where it goes, the model whose labels it
    presets (None: OHIF as it ships)."""

    text: str
    url: str
    model: str | None = None


def study_links(project_id: str, study_instance_uid: str, models: list[str]) -> list[ViewerLink]:
    """ "Open in OHIF" without a model (OHIF as it ships), then one per model with a map."""
    links = [ViewerLink("Open in OHIF", viewer_study_url(project_id, study_instance_uid))]
    links += [
        ViewerLink(
            f"Open in OHIF with {m}'s labels",
            viewer_study_url(project_id, study_instance_uid, m),
            m,
        )
        for m in models
    ]
    return links
