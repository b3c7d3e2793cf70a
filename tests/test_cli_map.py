"""The ``segmap`` command line and its ``map`` commands, run in-process and as a real
program."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from segmap.cli import main
from segmap.labelmap import parse_region_map, read_region_map
from segmap.labelmap.formats import import_text

MAP_TEXT = "# organs\nLiver=10\nLeft Kidney=30\nRight Kidney=30\n\nTumour=5\n"
SEGMAP = Path(sys.executable).parent / "segmap"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "map.txt").write_text(MAP_TEXT, encoding="utf-8")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- help, version, usage -----------------------------------------------------------------

COMMANDS = [[], ["map"], ["map", "check"], ["map", "show"], ["map", "export"], ["map", "import"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "segmap")
def test_help_on_every_command(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert out.startswith("usage: segmap" + "".join(f" {c}" for c in command))


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "segmap")
def test_version_on_every_command(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--version")
    assert code == 0
    assert out.strip() == f"segmap {version('segmap')}"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["map"],
        ["frobnicate"],
        ["map", "check"],
        ["map", "check", "a", "b"],
        ["map", "show", "--yaml", "x"],
        ["map", "export", "x"],
        ["map", "export", "x", "--to", "csv"],
        ["map", "import", "x"],
        ["map", "import", "x", "--from", "excel"],
    ],
)
def test_wrong_usage_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert "usage: segmap" in err
    assert "Traceback" not in out + err


# --- map check ----------------------------------------------------------------------------


def test_check_valid(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    code, out, err = run(capsys, "map", "check", "map.txt")
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("map.txt: valid region map, 4 regions")
    assert "30 = Left Kidney + Right Kidney" in lines[0]
    assert "uint8" in lines[0]
    assert err == ""


def test_check_lists_every_problem_with_file_and_line(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    (workdir / "bad.txt").write_text("Liver=10\nSpleen=0\n# fine\nliver=3\nKidney\n")
    code, out, err = run(capsys, "map", "check", "bad.txt")
    assert code == 1
    assert out.splitlines() == [
        'bad.txt:2: "Spleen=0": 0 is the background value and cannot be assigned to a region',
        'bad.txt:4: "liver=3": the label "liver" is already used on line 1 (as "Liver"); '
        "labels must be unique, ignoring case and spacing",
        'bad.txt:5: "Kidney": there is no "="; a region line is Label=Value, e.g. Liver=10; '
        'start a comment line with "#"',
    ]
    assert "3 problems" in err


def test_check_comment_only_file(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "c.txt").write_text("# nothing yet\n")
    code, out, _ = run(capsys, "map", "check", "c.txt")
    assert code == 1
    assert out.startswith("c.txt: the file has no region lines")


def _bad_files(root: Path) -> dict[str, tuple[Path, str]]:
    (root / "empty.txt").write_bytes(b"")
    (root / "blank.txt").write_bytes(b"\xef\xbb\xbf\r\n  \r\n")
    (root / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00")
    (root / "latin1.txt").write_bytes("Leber=1\nMilz=2\nNiere ä=3\n".encode("latin-1"))
    (root / "utf16.txt").write_bytes("Liver=1\n".encode("utf-16"))
    (root / "folder").mkdir()
    return {
        "missing": (root / "missing.txt", "does not exist"),
        "folder": (root / "folder", "is a folder"),
        "empty": (root / "empty.txt", "is empty"),
        "blank": (root / "blank.txt", "is empty"),
        "binary": (root / "picture.png", "is a binary file"),
        "not utf-8": (root / "latin1.txt", "is not UTF-8 text"),
        "utf-16": (root / "utf16.txt", "UTF-16"),
    }


@pytest.mark.parametrize(
    "kind", ["missing", "folder", "empty", "blank", "binary", "not utf-8", "utf-16"]
)
@pytest.mark.parametrize(
    "command", [["map", "check"], ["map", "show"], ["map", "export", "--to", "monai"]]
)
def test_unreadable_files_give_one_clear_line(
    capsys: pytest.CaptureFixture[str], workdir: Path, kind: str, command: list[str]
) -> None:
    path, words = _bad_files(workdir)[kind]
    code, out, err = run(capsys, *command, str(path))
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith(str(path))
    assert words in err
    assert "Traceback" not in err


def test_import_of_unreadable_files(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    for path, words in _bad_files(workdir).values():
        code, _, err = run(capsys, "map", "import", str(path), "--from", "slicer")
        assert (code, err.count("\n")) == (1, 1)
        assert words in err
    assert not (workdir / "region2MaskValueMap.txt").exists()


# --- map show -----------------------------------------------------------------------------


def test_show_table(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    code, out, _ = run(capsys, "map", "show", "map.txt")
    assert code == 0
    table = [line.split() for line in out.splitlines()[:5]]
    assert table == [
        ["Label", "Value", "Line"],
        ["Liver", "10", "2"],
        ["Left", "Kidney", "30", "3"],
        ["Right", "Kidney", "30", "4"],
        ["Tumour", "5", "6"],
    ]
    assert "4 regions" in out


def test_show_table_aligns_wide_characters(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    (workdir / "jp.txt").write_text("肝臓=5\nLiver=10\n", encoding="utf-8")
    _, out, _ = run(capsys, "map", "show", "jp.txt")
    rows = out.splitlines()[1:3]
    # Each of the two wide characters of "肝臓" takes one terminal column more than its
    # one string index, so "5" ends in the same column as "10".
    assert rows[0].index("5") + 2 == rows[1].index("10") + 1


def test_show_json(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    code, out, _ = run(capsys, "map", "show", "map.txt", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["regions"][0] == {"label": "Liver", "value": 10, "line": 2}
    assert [r["label"] for r in data["regions"]] == [
        "Liver",
        "Left Kidney",
        "Right Kidney",
        "Tumour",
    ]
    assert data["dtype"] == "uint8"
    assert data["shared_values"] == {"30": ["Left Kidney", "Right Kidney"]}
    assert data["sha256"] == parse_region_map(MAP_TEXT).sha256


def test_show_invalid_map(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "bad.txt").write_text("A=1\nB=-1\n")
    code, out, err = run(capsys, "map", "show", "bad.txt")
    assert code == 1
    assert err.startswith('bad.txt:2: "B=-1": -1 is negative')


# --- map export / import ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["monai", "nnunet", "msd", "slicer", "itksnap"])
def test_export_to_stdout_then_import_gives_the_map_back(
    capsys: pytest.CaptureFixture[str], workdir: Path, fmt: str
) -> None:
    code, out, _ = run(capsys, "map", "export", "map.txt", "--to", fmt)
    assert code == 0
    (workdir / "exported").write_text(out, encoding="utf-8")
    code, _, err = run(capsys, "map", "import", "exported", "--from", fmt)
    assert code == 0
    assert "wrote region2MaskValueMap.txt" in err
    assert read_region_map(workdir / "region2MaskValueMap.txt") == parse_region_map(MAP_TEXT)


def test_export_to_file_never_overwrites_without_force(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    out_file = workdir / "dataset.json"
    assert run(capsys, "map", "export", "map.txt", "--to", "nnunet", "-o", "dataset.json")[0] == 0
    labels = json.loads(out_file.read_text())["labels"]
    assert labels == {"background": 0, "Tumour": 1, "Liver": 2, "Left Kidney + Right Kidney": 3}
    out_file.write_text("precious")
    code, _, err = run(capsys, "map", "export", "map.txt", "--to", "nnunet", "-o", "dataset.json")
    assert code == 1
    assert "already exists" in err and "--force" in err
    assert out_file.read_text() == "precious"
    code, _, _ = run(
        capsys, "map", "export", "map.txt", "--to", "nnunet", "-o", "dataset.json", "--force"
    )
    assert code == 0
    assert "labels" in json.loads(out_file.read_text())
    assert sorted(p.name for p in workdir.iterdir() if p.name.startswith(".")) == []


def test_import_never_overwrites_without_force(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    (workdir / "labels.json").write_text('{"liver": 1, "spleen": 2}')
    target = workdir / "region2MaskValueMap.txt"
    target.write_text("Old=1\n")
    code, _, err = run(capsys, "map", "import", "labels.json", "--from", "monai")
    assert code == 1
    assert "region2MaskValueMap.txt already exists" in err
    assert target.read_text() == "Old=1\n"
    code, _, _ = run(capsys, "map", "import", "labels.json", "--from", "monai", "--force")
    assert code == 0
    assert target.read_text() == "liver=1\nspleen=2\n"
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".")] == []


def test_import_output_options(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "labels.json").write_text('{"liver": 1}')
    code, out, _ = run(capsys, "map", "import", "labels.json", "--from", "monai", "-o", "-")
    assert (code, out) == (0, "liver=1\n")
    (workdir / "model").mkdir()
    code, _, _ = run(capsys, "map", "import", "labels.json", "--from", "monai", "-o", "model/r.txt")
    assert code == 0
    assert (workdir / "model" / "r.txt").read_text() == "liver=1\n"
    code, _, err = run(
        capsys, "map", "import", "labels.json", "--from", "monai", "-o", "nowhere/r.txt"
    )
    assert code == 1
    assert "folder nowhere does not exist" in err
    code, _, err = run(capsys, "map", "import", "labels.json", "--from", "monai", "-o", "model")
    assert code == 1
    assert "is a folder" in err


def test_colours_survive_import_and_export(
    capsys: pytest.CaptureFixture[str], workdir: Path
) -> None:
    (workdir / "organs.ctbl").write_text(
        "# Color table file organs.ctbl\n0 Background 0 0 0 0\n"
        "1 liver 221 130 101 255\n2 left_kidney 185 102 83 128\n"
    )
    assert run(capsys, "map", "import", "organs.ctbl", "--from", "slicer")[0] == 0
    code, out, _ = run(capsys, "map", "export", "region2MaskValueMap.txt", "--to", "itksnap")
    assert code == 0
    assert import_text(out, "itksnap", source="x").colours == {
        1: (221, 130, 101, 255),
        2: (185, 102, 83, 128),
    }


def test_import_plain_writes_no_comments(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "organs.ctbl").write_text("1 liver 221 130 101 255\n")
    code, out, _ = run(
        capsys, "map", "import", "organs.ctbl", "--from", "slicer", "--plain", "-o", "-"
    )
    assert (code, out) == (0, "liver=1\n")


def test_import_problems_are_listed(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "organs.ctbl").write_text("1 liver 1 2 3 255\n2 Liver 1 2 3 255\n0x3 a 1 2 3 4\n")
    code, out, err = run(capsys, "map", "import", "organs.ctbl", "--from", "slicer")
    assert code == 1
    assert err.splitlines()[0].startswith('organs.ctbl:2: "2 Liver 1 2 3 255": the label "Liver"')
    assert err.splitlines()[1].startswith("organs.ctbl:3: ")
    assert not (workdir / "region2MaskValueMap.txt").exists()


def test_import_region_based_nnunet(capsys: pytest.CaptureFixture[str], workdir: Path) -> None:
    (workdir / "dataset.json").write_text(
        '{"labels": {"background": 0, "whole tumor": [1, 2, 3], "enhancing tumor": 3},'
        ' "regions_class_order": [1, 2, 3]}'
    )
    code, _, err = run(capsys, "map", "import", "dataset.json", "--from", "nnunet")
    assert code == 1
    assert err.count("\n") == 1
    assert "region-based" in err


# --- failures that are bugs -----------------------------------------------------------


def test_unexpected_errors_are_one_line_unless_debugging(
    capsys: pytest.CaptureFixture[str], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import segmap.labelmap

    def broken(path: object) -> None:
        raise ZeroDivisionError("simulated fault")

    monkeypatch.setattr(segmap.labelmap, "read_region_map", broken)
    monkeypatch.delenv("SEGMAP_DEBUG", raising=False)
    code, _, err = run(capsys, "map", "show", "map.txt")
    assert code == 1
    assert err.count("\n") == 1
    assert "bug" in err and "SEGMAP_DEBUG=1" in err and "simulated fault" in err
    assert "Traceback" not in err
    monkeypatch.setenv("SEGMAP_DEBUG", "1")
    code, _, err = run(capsys, "map", "show", "map.txt")
    assert code == 1
    assert "Traceback" in err and "ZeroDivisionError" in err


# --- the installed program -------------------------------------------------------------


def test_installed_program(tmp_path: Path) -> None:
    assert SEGMAP.exists(), f"{SEGMAP} is not installed"
    (tmp_path / "bad.txt").write_text("Liver=10\nSpleen=0\n")
    env = {k: v for k, v in os.environ.items() if k != "SEGMAP_DEBUG"}

    def program(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SEGMAP), *argv],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    done = program("map", "check", "bad.txt")
    assert done.returncode == 1
    assert done.stdout == (
        'bad.txt:2: "Spleen=0": 0 is the background value and cannot be assigned to a region\n'
    )
    done = program("map", "check", "missing.txt")
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "missing.txt does not exist\n")
    done = program("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"segmap {version('segmap')}")
    done = program("map", "export")
    assert done.returncode == 2
    (tmp_path / "ok.txt").write_text("Liver=10\n")
    done = program("map", "show", "ok.txt", "--json")
    assert json.loads(done.stdout)["regions"] == [{"label": "Liver", "value": 10, "line": 1}]


def test_command_line_offers_exactly_the_library_formats() -> None:
    # segmap/cli/map.py lists the names itself so that `segmap --help` need not import numpy.
    from segmap.cli.map import FORMAT_NAMES
    from segmap.labelmap.formats import FORMATS

    assert tuple(FORMATS) == FORMAT_NAMES
