"""The generated /ohif/app-config.js: data sources per visible project, presets from the
region map, and the preset code run in Node with stand-ins for OHIF's services
(tests/viewer_harness.js). The browser journey is in test_viewer_browser.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server_fixtures import World

HARNESS = Path(__file__).with_name("viewer_harness.js")
MAP = (
    "Liver=10\n"
    "Spleen=20\n"
    "Left Kidney=30\n"
    "# segmap colour: 10 200 40 30 255\n"
    "# segmap colour: 20 10 120 250 255\n"
)


def run_config(text: str, search: str = "") -> dict[str, Any]:
    """Run ``app-config.js`` in Node as index.html would, with the launch URL's query."""
    done = subprocess.run(
        ["node", str(HARNESS), search],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def put_map(world: World, project: str, model: str, text: str, who: str = "owner") -> None:
    r = world.client.put(
        f"/api/v1/projects/{project}/models/{model}/resources/maps/files/region2MaskValueMap.txt",
        content=text.encode(),
        headers=world.h(who),
    )
    assert r.status_code in (200, 201), r.text


@pytest.fixture()
def two_projects(world: World) -> World:
    """P (the world's, with a map on liver-ct) and Q, owned by ``outsider`` alone."""
    put_map(world, "P", "liver-ct", MAP)
    c, h = world.client, world.h("outsider")
    assert (
        c.post("/api/v1/projects", json={"id": "Q", "name": "Other"}, headers=h).status_code == 201
    )
    r = c.post(
        "/api/v1/projects/Q/models",
        json={"label": "secret-model", "voxel_spacing": [1.0, 1.0, 1.0]},
        headers=h,
    )
    assert r.status_code == 201, r.text
    put_map(world, "Q", "secret-model", "Tumour=1\n", who="outsider")
    return world


def config_text(world: World, who: str) -> str:
    r = world.client.get("/ohif/app-config.js", headers=world.h(who))
    assert r.status_code == 200
    assert r.headers["cache-control"] == "private, no-cache"
    assert r.headers["content-type"].startswith("text/javascript")
    return r.text


def test_one_data_source_per_visible_project_on_the_same_origin(two_projects: World) -> None:
    member = run_config(config_text(two_projects, "member"))["config"]
    assert member["routerBasename"] == "/ohif"
    assert [s["sourceName"] for s in member["dataSources"]] == ["P"]
    source = member["dataSources"][0]
    assert source["namespace"] == "@ohif/extension-default.dataSourcesModule.dicomweb"
    conf = source["configuration"]
    assert conf["qidoRoot"] == conf["wadoRoot"] == "/dicomweb/projects/P"
    assert conf["imageRendering"] == conf["thumbnailRendering"] == "wadors"
    assert conf["enableStudyLazyLoad"] is True
    assert member["defaultDataSourceName"] == "P"
    assert member["allowMultiSelectExport"] is False  # OHIF stores to the source it opened

    outsider = run_config(config_text(two_projects, "outsider"))["config"]
    assert [s["sourceName"] for s in outsider["dataSources"]] == ["Q"]
    # A site admin sees every project.
    admin = run_config(config_text(two_projects, "admin"))["config"]
    assert [s["sourceName"] for s in admin["dataSources"]] == ["P", "Q"]


def test_nothing_of_another_project_is_in_the_config(two_projects: World) -> None:
    text = config_text(two_projects, "member")
    for secret in ("Q", "secret-model", "Tumour", "Other"):
        assert f'"{secret}"' not in text
    assert run_config(text)["presets"] == [
        {
            "project": "P",
            "model": "liver-ct",
            "segments": [
                {"segmentIndex": 1, "label": "Liver", "value": 10, "color": [200, 40, 30, 255]},
                {"segmentIndex": 2, "label": "Spleen", "value": 20, "color": [10, 120, 250, 255]},
                {
                    "segmentIndex": 3,
                    "label": "Left Kidney",
                    "value": 30,
                    # no colour comment: the labelmap palette's colour for 30
                    "color": [*palette_rgb(30), 255],
                },
            ],
        }
    ]


def palette_rgb(value: int) -> list[int]:
    from segmap.labelmap.palette import colour_for_value

    return list(colour_for_value(value)[:3])


def test_without_a_model_in_the_url_ohif_behaves_as_it_ships(two_projects: World) -> None:
    ran = run_config(config_text(two_projects, "member"), "?StudyInstanceUIDs=1.2.3")
    assert ran["active"] is None
    assert ran["onSegmentationAdd"] == "undefined"
    assert ran["config"]["customizationService"] == {}


def test_a_model_in_the_url_presets_its_segments_and_keeps_names_to_the_map(
    two_projects: World,
) -> None:
    search = "?StudyInstanceUIDs=1.2.3&segmapProject=P&segmapModel=liver-ct"
    ran = run_config(config_text(two_projects, "member"), search)
    assert ran["active"]["model"] == "liver-ct"
    assert ran["onSegmentationAdd"] == "function"
    assert ran["showAddSegment"] == {"$set": False}  # no free "Add segment"
    command = next(e for e in ran["events"] if e[0] == "command")
    assert command[1] == "createLabelmapForViewport" and command[2] == "viewport-1"
    labels = {int(k): v["label"] for k, v in ran["afterAdd"].items()}
    assert labels == {1: "Liver", 2: "Spleen", 3: "Left Kidney"}  # map order, 1..N
    assert ran["afterAdd"]["1"]["color"] == [200, 40, 30, 255]
    # A hand-typed name outside the map is put back; a foreign segment is removed.
    after = {int(k): v["label"] for k, v in ran["afterEdits"].items()}
    assert after == {1: "Liver", 2: "Spleen", 3: "Left Kidney"}
    assert any('"Kidney" is not in the region map' in n for n in ran["notices"])
    assert any('"Segment 9" is not in the region map and was removed' in n for n in ran["notices"])
    assert ["removeSegment", 9] in ran["events"]


def test_a_model_of_a_project_the_user_cannot_see_gives_no_preset(two_projects: World) -> None:
    search = "?StudyInstanceUIDs=1.2.3&segmapProject=Q&segmapModel=secret-model"
    ran = run_config(config_text(two_projects, "member"), search)
    assert ran["active"] is None and ran["onSegmentationAdd"] == "undefined"


def test_anonymous_config_sends_the_browser_to_log_in(world: World) -> None:
    r = world.client.get("/ohif/app-config.js")
    assert r.status_code == 200
    ran = run_config(r.text)
    assert ran["config"]["dataSources"] == []
    assert ["redirect", "/login?next=%2Fohif%2Fsegmentation%2FP"] in ran["events"]


def test_labels_cannot_break_out_of_the_generated_script(world: World) -> None:
    hostile = 'Li"ver</script><script>alert(1)</script>'
    put_map(world, "P", "liver-ct", f"{hostile}=5\n")
    text = config_text(world, "member")
    assert "</script>" not in text
    segments = run_config(text)["presets"][0]["segments"]
    assert segments[0]["label"] == hostile
