"""Datasets from a real ``segmap batch`` tree, exported in all three layouts and read back
by the frameworks' own code (MONAI's datalist loader) and by independent truths.

The tree (``datasets_helpers.native_tree``) has two studies of one patient, a scan with
two collections, a case missing a region, a case ten times the others' volumes and a
mask edited to hold a value the map does not. Label images are mapped back through the
exported ``dataset.json`` and judged voxel by voxel against the contours' even-odd truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image

from datasets_helpers import native_tree
from jobs_helpers import assert_mask_matches_truth
from segmap.datasets.batchtree import scan_batch_tree
from segmap.datasets.export import export_folder, export_zip
from segmap.datasets.freeze import FreezeOptions, freeze
from segmap.datasets.manifest import Manifest
from segmap.datasets.qa.plots import render_region_plot
from segmap.datasets.qa.report import DatasetQA
from segmap.datasets.store import open_frozen, save_store
from segmap.labelmap import read_region_map
from segmap.labelmap.formats import import_file
from test_convert_truth import truth_labels_ijk

SEGMAP = [sys.executable, "-m", "segmap.cli", "dataset"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return native_tree(tmp_path_factory.mktemp("dataset-tree"))


@pytest.fixture(scope="module")
def frozen(tree):
    scan = scan_batch_tree(tree.out)
    return freeze(scan.conversions, FreezeOptions(name="Phantom", dataset_id=502, folds=3))


@pytest.fixture(scope="module")
def exports(frozen, tmp_path_factory):
    out = tmp_path_factory.mktemp("exports")
    return {fmt: export_folder(frozen, fmt, out / fmt).path for fmt in ("nnunet", "monai", "msd")}


def _by_key(frozen):
    return {c.source_key: c for c in frozen.manifest.cases}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --- the manifest ----------------------------------------------------------------------


def test_the_manifest_records_where_every_case_came_from(tree, frozen):
    m = frozen.manifest
    keys = {c.source_key for c in m.cases}
    assert keys == set(tree.cases) - {tree.planted["unexpected"]}
    assert [e.source_key for e in m.excluded] == [tree.planted["unexpected"]]
    assert "value(s) [7]" in m.excluded[0].reason
    assert m.region_map.sha256 == read_region_map(tree.map_path).sha256
    for case in m.cases:
        built = tree.cases[case.source_key]
        first = pydicom.dcmread(next(built.series_folder.iterdir()), stop_before_pixels=True)
        assert case.series_instance_uid == first.SeriesInstanceUID
        assert case.study_instance_uid == first.StudyInstanceUID
        assert case.subject == first.PatientID == built.subject
        rt = tree.inputs / (case.source_key + ".dcm")
        assert case.annotation_sop_instance_uid == pydicom.dcmread(rt).SOPInstanceUID
        assert case.map_sha256 == m.region_map.sha256
        folder = tree.out / case.source_key
        assert case.image.sha256 == _sha(folder / "image.nii.gz")
        assert case.mask.sha256 == _sha(folder / "mask.nii.gz")
        assert case.size_ijk == built.grid.size
        # Case names never carry the patient: no ID, no name, nothing of the folder.
        assert "PAT" not in case.name and "Synthetic" not in case.name
        assert case.source_key.split("/")[0] not in case.name
    assert Manifest.from_dict(json.loads(m.to_json())) == m


def test_no_subject_is_in_two_folds_of_the_export(frozen, exports):
    splits = json.loads((exports["nnunet"] / "splits_final.json").read_text())
    subject = {c.name: c.subject for c in frozen.manifest.cases}
    assert len(splits) == 3
    seen: list[str] = []
    for split in splits:
        val = {subject[n] for n in split["val"]}
        train = {subject[n] for n in split["train"]}
        assert val and not val & train
        assert sorted(split["train"] + split["val"]) == sorted(subject)
        seen += split["val"]
    assert sorted(seen) == sorted(subject)  # every case validated exactly once
    folds = {c.source_key: c.fold for c in frozen.manifest.cases}
    assert folds["alice/study1/rtstruct"] == folds["alice/study2/rtstruct"]
    assert folds["carol/rtstruct"] == folds["carol/second"]


# --- nnU-Net: labels back to the map, voxel for voxel -----------------------------------


def test_nnunet_labels_map_back_to_the_region_map_voxel_for_voxel(tree, frozen, exports, tmp_path):
    root = exports["nnunet"]
    assert root.name == "Dataset502_Phantom"
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["channel_names"] == {"0": "CT"}
    assert dataset["file_ending"] == ".nii.gz"
    assert dataset["numTraining"] == len(frozen.manifest.cases) == 7
    assert sorted(dataset["labels"].values()) == list(range(8))
    assert dataset["labels"]["background"] == 0
    to_nnunet = {int(k): v for k, v in dataset["segmap"]["map_value_to_nnunet_value"].items()}
    back = np.zeros(max(to_nnunet.values()) + 1, dtype=np.uint8)
    for map_value, label in to_nnunet.items():
        back[label] = map_value
    assert import_file(root / "dataset.json", "nnunet").region_map == frozen.manifest.region_map
    for case in frozen.manifest.cases:
        label = nib.load(str(root / "labelsTr" / f"{case.name}.nii.gz"))
        image = root / "imagesTr" / f"{case.name}_0000.nii.gz"
        assert np.array_equal(label.affine, nib.load(str(image)).affine)
        values = np.asarray(label.dataobj)
        assert set(np.unique(values)) <= set(range(8))
        mapped = nib.Nifti1Image(back[values], label.affine, header=label.header)
        path = tmp_path / f"{case.name}.nii.gz"
        nib.save(mapped, path)
        built = tree.cases[case.source_key]
        assert_mask_matches_truth(path, built.series_folder, built.truth)
        # The image is the batch's own file, hard-linked rather than copied.
        source = tree.out / case.source_key / "image.nii.gz"
        assert os.stat(image).st_ino == os.stat(source).st_ino


# --- MONAI and the Decathlon layout, read by MONAI ------------------------------------


@pytest.mark.filterwarnings("ignore:.*nvImageCodec:UserWarning")  # MONAI's GPU decoder
def test_monai_reads_the_datalist_and_every_path_exists(frozen, exports):
    from monai.data import load_decathlon_datalist
    from monai.transforms import LoadImaged

    root = exports["monai"]
    training = load_decathlon_datalist(str(root / "datalist.json"), True, "training")
    validation = load_decathlon_datalist(str(root / "datalist.json"), True, "validation")
    assert len(training) == len(frozen.manifest.cases)
    for item in training + validation:
        assert Path(item["image"]).is_file() and Path(item["label"]).is_file()
    assert {item["fold"] for item in training} == {0, 1, 2}
    assert [i["image"] for i in validation] == [i["image"] for i in training if i["fold"] == 0]
    fold_of = {c.name: c.fold for c in frozen.manifest.cases}
    assert all(fold_of[Path(i["image"]).name[:-7]] == i["fold"] for i in training)
    labels = json.loads((root / "labels.json").read_text())
    assert labels == {c.name: c.value for c in frozen.manifest.labels.classes}
    assert import_file(root / "labels.json", "monai").region_map.values == tuple(range(1, 8))
    loaded = LoadImaged(keys=["image", "label"], image_only=True)(training[0])
    assert loaded["image"].shape == loaded["label"].shape


def test_msd_dataset_json_is_the_decathlons_and_monai_reads_it(frozen, exports):
    from monai.data import load_decathlon_datalist

    root = exports["msd"]
    assert root.name == "Task502_Phantom"
    assert (root / "imagesTs").is_dir()
    dataset = json.loads((root / "dataset.json").read_text())
    assert dataset["labels"]["0"] == "background"
    assert sorted(int(k) for k in dataset["labels"]) == list(range(8))
    assert dataset["modality"] == {"0": "CT"}
    assert dataset["numTraining"] == len(dataset["training"]) == 7
    items = load_decathlon_datalist(str(root / "dataset.json"), True, "training")
    assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in items)
    back = {
        v: int(k)
        for k, v in dataset["segmap_dataset"]["labels"]["map_value_to_label_value"].items()
    }
    assert back == {v: k for k, v in frozen.manifest.labels.to_label.items()}


# --- reproducibility ------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["nnunet", "monai", "msd"])
def test_the_same_frozen_dataset_exports_to_identical_bytes(frozen, exports, fmt, tmp_path):
    again = export_folder(frozen, fmt, tmp_path / "again").path
    assert _files(again) == _files(exports[fmt])
    a = export_zip(frozen, fmt, tmp_path / "a.zip").path
    b = export_zip(frozen, fmt, tmp_path / "b.zip").path
    assert a.read_bytes() == b.read_bytes()
    shutil.unpack_archive(a, tmp_path / "unzipped")
    assert _files(tmp_path / "unzipped" / again.name) == _files(again)


def test_a_frozen_store_exports_the_same_bytes_after_new_annotations_arrive(tree, tmp_path):
    from segmap import testing as syn
    from segmap.pipeline.convert import ConvertOptions, convert

    out = tmp_path / "out"
    shutil.copytree(tree.out, out)
    frozen = freeze(scan_batch_tree(out).conversions, FreezeOptions(name="Phantom", folds=3))
    store = save_store(frozen, tmp_path / "store").path
    loaded, resolve = open_frozen(store)
    before = export_zip(loaded, "nnunet", tmp_path / "before.zip", resolve=resolve)
    exported = export_folder(frozen, "nnunet", tmp_path / "export").path
    # A new annotation of gina arrives (no Lesion this time) and is converted over the old.
    gina = tree.cases["gina/rtstruct"]
    rois = tuple(r for r in syn.phantom_rois(gina.grid) if r.name != "Lesion")
    new_rt = tmp_path / "gina-new.dcm"
    syn.write_rtstruct(new_rt, gina.series, rois, seed=77, label="revised")
    convert(
        tree.map_path,
        gina.series_folder,
        new_rt,
        out / "gina" / "rtstruct",
        ConvertOptions(preview=False),
    )
    assert (
        _sha(out / "gina" / "rtstruct" / "mask.nii.gz")
        != _by_key(frozen)["gina/rtstruct"].mask.sha256
    )
    loaded, resolve = open_frozen(store)
    after = export_zip(loaded, "nnunet", tmp_path / "after.zip", resolve=resolve)
    assert after.path.read_bytes() == before.path.read_bytes()
    # The export's own segmap/ folder still reads the tree, which has changed: refused.
    done = subprocess.run(
        [
            *SEGMAP,
            "export",
            "--from",
            str(exported / "segmap"),
            "--format",
            "nnunet",
            "--out",
            str(tmp_path / "again"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "changed since the dataset was frozen" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())


# --- QA -------------------------------------------------------------------------------


def test_qa_flags_the_tenfold_volume_and_the_missing_region(tree, frozen):
    qa, by_key = frozen.qa, _by_key(frozen)
    tenfold = by_key[tree.planted["tenfold"]].name
    regions = {r.name: r for r in qa.regions}
    for name in ("Body", "Liver"):
        flagged = [v.case for v in regions[name].volumes if v.outlier]
        assert flagged == [tenfold], (name, flagged)
    missing = [(m.case, m.region) for m in qa.missing_regions]
    assert missing == [(by_key[tree.planted["missing"]].name, "Spleen")]
    assert regions["Spleen"].cases_with == 6 and regions["Spleen"].cases_total == 7
    assert [(u.source_key, u.values) for u in qa.unexpected_values] == [
        (tree.planted["unexpected"], (7,))
    ]
    assert [(u.name, u.cases) for u in qa.unmatched_names] == [("Stomach", 1)]
    assert DatasetQA.from_dict(json.loads(qa.to_json())) == qa


def test_qa_volumes_are_the_truths_voxels_times_the_voxel_volume(tree, frozen):
    regions = {r.name: r for r in frozen.qa.regions}
    by_key = _by_key(frozen)
    for key in ("alice/study1/rtstruct", tree.planted["tenfold"]):
        built = tree.cases[key]
        mask = nib.load(str(tree.out / key / "mask.nii.gz"))
        truth, _ = truth_labels_ijk(mask.affine, mask.shape, built.truth)
        voxel_ml = float(np.prod(built.grid.spacing)) / 1000
        for name, value in (("Body", 1), ("Liver", 10)):
            expected = int((truth == value).sum()) * voxel_ml
            got = next(v.volume_ml for v in regions[name].volumes if v.case == by_key[key].name)
            assert got == pytest.approx(expected, rel=1e-4)
    body = {v.case: v.volume_ml for v in regions["Body"].volumes}
    normal = body[by_key["alice/study1/rtstruct"].name]
    assert body[by_key[tree.planted["tenfold"]].name] == pytest.approx(10 * normal, rel=0.1)


@pytest.mark.filterwarnings("ignore:.*always_return_as_numpy:FutureWarning")  # MONAI's own
def test_agreement_of_two_collections_matches_an_independent_computation(tree, frozen):
    import torch
    from monai.metrics import compute_hausdorff_distance

    by_key = _by_key(frozen)
    first, second = tree.planted["first_collection"], tree.planted["second_collection"]
    [pair] = frozen.qa.multiple_collections
    assert pair.cases == (by_key[first].name, by_key[second].name)
    a = np.asarray(nib.load(str(tree.out / first / "mask.nii.gz")).dataobj)
    b = np.asarray(nib.load(str(tree.out / second / "mask.nii.gz")).dataobj)
    spacing = [float(s) for s in tree.cases[first].grid.spacing]
    assert {r.region for r in pair.regions} == {c.name for c in frozen.manifest.labels.classes}
    for r in pair.regions:
        map_value = next(c.map_value for c in frozen.manifest.labels.classes if c.value == r.value)
        ra, rb = a == map_value, b == map_value
        assert r.dice == pytest.approx(2 * (ra & rb).sum() / (ra.sum() + rb.sum()), abs=1e-4)
        onehot = [torch.from_numpy(np.stack([~m, m])[None].astype(np.float32)) for m in (ra, rb)]
        hd = compute_hausdorff_distance(*onehot, percentile=95, spacing=spacing)
        assert r.hd95_mm == pytest.approx(float(hd[0, 0]), abs=1e-4)
    liver = next(r for r in pair.regions if r.region == "Liver")
    assert liver.hd95_mm == pytest.approx(3.0)  # the second reader drew it 3 mm over


def test_qa_pictures_show_one_region_each_with_the_outlier_in_red(frozen, exports, tmp_path):
    pictures = sorted((exports["nnunet"] / "segmap" / "qa").glob("*.png"))
    assert [p.name for p in pictures] == [f"label_{v:03d}.png" for v in range(1, 8)]

    def red_pixels(path: Path) -> int:
        rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
        return int(((rgb[..., 0] > 180) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)).sum())

    body = next(r for r in frozen.qa.regions if r.name == "Body")
    assert any(v.outlier for v in body.volumes)
    assert red_pixels(exports["nnunet"] / "segmap" / body.plot) > 20
    calm = replace(body, volumes=tuple(replace(v, outlier=False) for v in body.volumes))
    (tmp_path / "calm.png").write_bytes(render_region_plot(calm))
    assert red_pixels(tmp_path / "calm.png") == 0


# --- the command line -----------------------------------------------------------------


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SEGMAP, *args], capture_output=True, text=True, timeout=300)


def test_export_from_a_batch_tree_on_the_command_line(tree, tmp_path):
    done = _run(
        "export",
        "--from",
        str(tree.out),
        "--format",
        "nnunet",
        "--out",
        str(tmp_path),
        "--name",
        "Cli",
        "--id",
        "7",
        "--folds",
        "2",
    )
    assert done.returncode == 0, done.stderr
    root = tmp_path / "Dataset007_Cli"
    assert len(list((root / "imagesTr").iterdir())) == 7
    assert "outlier    case_" in done.stdout
    assert "left out   frank/rtstruct" in done.stdout
    again = _run(
        "export",
        "--from",
        str(tree.out),
        "--format",
        "nnunet",
        "--out",
        str(tmp_path),
        "--name",
        "Cli",
        "--id",
        "7",
        "--folds",
        "2",
    )
    assert again.returncode == 1 and "already exists" in again.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["export", "--format", "nnunet", "--out", "x"], 2, "--from"),
        (
            ["export", "--from", "{tree}", "--format", "nnunet", "--out", "{tmp}", "--folds", "1"],
            2,
            "--folds must be a whole number from 2",
        ),
        (
            ["export", "--from", "{tree}", "--format", "nnunet", "--out", "{tmp}", "--folds", "9"],
            1,
            "at most 5 folds",
        ),
        (
            ["export", "--from", "{tree}", "--format", "nnunet", "--out", "{tmp}", "--resampled"],
            1,
            "no resampled image and mask",
        ),
        (
            ["export", "--from", "{tmp}/nowhere", "--format", "msd", "--out", "{tmp}"],
            1,
            "not a folder",
        ),
        (
            [
                "export",
                "--from",
                "{tree}",
                "--format",
                "nnunet",
                "--out",
                "{tmp}",
                "--subject",
                "NOBODY",
            ],
            1,
            "the filter keeps none of the 8 conversion(s)",
        ),
        (
            ["export", "--from", "{tree}", "--format", "nnunet", "--out", "{tmp}", "--name", "a b"],
            1,
            "not usable",
        ),
    ],
)
def test_bad_requests_get_one_clear_line_and_the_right_exit_code(
    tree, tmp_path, args, code, message
):
    done = _run(*(a.format(tree=tree.out, tmp=tmp_path) for a in args))
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(tmp_path.glob("Dataset*"))


def test_freeze_then_export_the_store_and_a_filter(tree, tmp_path):
    store = tmp_path / "store"
    done = _run(
        "freeze",
        "--from",
        str(tree.out),
        "--out",
        str(store),
        "--folds",
        "2",
        "--subject",
        "PAT00[1-3]",
    )
    assert done.returncode == 0, done.stderr
    manifest = Manifest.read(store / "manifest.json")
    assert {c.subject for c in manifest.cases} == {"PAT001", "PAT002", "PAT003"}
    assert manifest.filter == {"subject": ["PAT00[1-3]"]}
    refused = _run(
        "export",
        "--from",
        str(store),
        "--format",
        "monai",
        "--out",
        str(tmp_path / "m"),
        "--name",
        "other",
    )
    assert refused.returncode == 2 and "only when freezing" in refused.stderr
    zipped = _run(
        "export", "--from", str(store), "--format", "monai", "--out", str(tmp_path / "m.zip")
    )
    assert zipped.returncode == 0, zipped.stderr
    shutil.unpack_archive(tmp_path / "m.zip", tmp_path / "unzipped")
    datalist = json.loads((tmp_path / "unzipped" / "segmap" / "datalist.json").read_text())
    assert len(datalist["training"]) == len(manifest.cases) == 5
