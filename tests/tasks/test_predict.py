"""Predicting digits in image files: agreement with the model on the original arrays,
the command-line output, bad inputs, and the folder flow end to end."""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.predict import mnist_predict
from nn.errors import ConfigError, ModelFileError
from nn.io import load_model, save_model
from nn.model import MLP
from tasks.errors import DataError
from tasks.images.classify import load_predictor, predict_files, run_predict, score_images
from tasks.images.predictions import CSV_COLUMNS
from tasks.predict import ARTIFACT_KEY
from tests.tasks.digit_images import mnist10k, render, train_digit_model


@dataclass(frozen=True)
class DigitModel:
    """A 784-300-10 MLP trained on mnist10k's 8,000 digits, and the 2,000 held out."""

    path: Path
    X_test: np.ndarray  # uint8 (2000, 28, 28)
    y_test: np.ndarray  # int64 (2000,)
    predicted: np.ndarray  # the model's labels for X_test (2000,)


@pytest.fixture(scope="session")
def digit_model(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> DigitModel:
    X_train, y_train, X_test, y_test = mnist10k(mnist_dir)
    path = train_digit_model(X_train, y_train, tmp_path_factory.mktemp("model") / "digits.npz")
    predicted = score_images(load_predictor(path), X_test).argmax(axis=1)
    assert (predicted == y_test).mean() > 0.93  # a sound model, or agreement means little
    return DigitModel(path, X_test, y_test, predicted)


def write_renders(model: DigitModel, folder: Path, n: int, seed: int) -> tuple[list[Path], list]:
    """Render ``n`` held-out digits as PNG files; return the paths and their indices."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(model.X_test), size=n, replace=False)
    paths = []
    for i in indices:
        path = folder / f"digit-{i:04d}.png"
        render(model.X_test[i], rng).save(path)
        paths.append(path)
    return paths, list(indices)


def test_rendered_files_get_the_labels_of_the_original_arrays(digit_model, tmp_path):
    paths, indices = write_renders(digit_model, tmp_path, n=300, seed=0)
    sizes = {Image.open(p).size for p in paths}
    assert len(sizes) > 100  # many sizes, paddings and offsets
    predictions = predict_files(load_predictor(digit_model.path), paths)
    assert all(p.error is None for p in predictions)
    labels = np.array([p.label for p in predictions])
    agreement = (labels == digit_model.predicted[indices]).mean()
    assert agreement >= 0.97, agreement
    accuracy_files = (labels == digit_model.y_test[indices]).mean()
    accuracy_arrays = (digit_model.predicted[indices] == digit_model.y_test[indices]).mean()
    assert accuracy_files >= accuracy_arrays - 0.02


def test_text_output_with_top_three(digit_model, tmp_path):
    (path,), (i,) = write_renders(digit_model, tmp_path, n=1, seed=1)
    text, code = run_predict(str(digit_model.path), [str(path)], top=3)
    assert code == 0
    line = text.splitlines()[0]
    assert line.startswith(f"{path}: {digit_model.predicted[i]} (")
    assert line.count("(") == 4 and "top 3:" in line
    text1, _ = run_predict(str(digit_model.path), [str(path)])
    assert text1 == line.split("  top 3:")[0]


def test_json_output_is_machine_readable(digit_model, tmp_path):
    paths, indices = write_renders(digit_model, tmp_path, n=3, seed=2)
    text, code = run_predict(str(digit_model.path), [str(p) for p in paths], top=3, as_json=True)
    assert code == 0
    records = json.loads(text)
    assert [r["file"] for r in records] == [str(p) for p in paths]
    assert [r["label"] for r in records] == [int(digit_model.predicted[i]) for i in indices]
    for record in records:
        assert record["error"] is None and len(record["top"]) == 3
        probs = [t["probability"] for t in record["top"]]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-6
        assert record["label"] == record["top"][0]["label"]
        assert record["probability"] == probs[0] and 0.0 < probs[0] <= 1.0


def test_folder_with_bad_files_writes_a_csv_and_exits_1(digit_model, tmp_path):
    folder = tmp_path / "images"
    paths, indices = write_renders(digit_model, folder, n=4, seed=3)
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    Image.new("L", (50, 40), 255).save(folder / "blank.png")
    (folder / "notes.txt").write_text("not an image: skipped\n")
    text, code = run_predict(str(digit_model.path), [str(folder)])
    assert code == 1
    assert f"{folder / 'blank.png'}: error: no ink found" in text
    assert f"{folder / 'broken.png'}: error: " in text
    assert "scored 4 of 6 images" in text
    with open(folder / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == CSV_COLUMNS
    by_name = {Path(r["file"]).name: r for r in rows}
    assert sorted(by_name) == sorted([p.name for p in paths] + ["blank.png", "broken.png"])
    for path, i in zip(paths, indices, strict=True):
        row = by_name[path.name]
        assert int(row["label"]) == digit_model.predicted[i] and row["error"] == ""
        assert 0.0 < float(row["probability"]) <= 1.0
    assert by_name["broken.png"]["label"] == "" and by_name["broken.png"]["error"]
    assert "no ink found" in by_name["blank.png"]["error"]


def test_explicit_csv_path(digit_model, tmp_path):
    paths, _ = write_renders(digit_model, tmp_path / "in", n=2, seed=4)
    out = tmp_path / "out.csv"
    text, code = run_predict(str(digit_model.path), [str(p) for p in paths], csv_path=str(out))
    assert code == 0 and text.endswith(f"wrote {out}")
    assert len(out.read_text().splitlines()) == 3
    with pytest.raises(DataError, match="does not exist"):
        run_predict(str(digit_model.path), [str(paths[0])], csv_path=str(tmp_path / "no" / "x.csv"))
    (tmp_path / "taken.csv").mkdir()  # a folder where the CSV should go
    with pytest.raises(DataError, match=r"taken\.csv: cannot write the CSV"):
        run_predict(str(digit_model.path), [str(paths[0])], csv_path=str(tmp_path / "taken.csv"))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".taken.csv")]


def test_missing_and_non_image_files_are_reported(digit_model, tmp_path):
    text_file = tmp_path / "letter.jpg"
    text_file.write_text("Dear reader")
    text, code = run_predict(str(digit_model.path), [str(tmp_path / "gone.png"), str(text_file)])
    assert code == 1
    lines = text.splitlines()
    assert lines[0] == f"{tmp_path / 'gone.png'}: error: no such image file"
    assert lines[1].startswith(f"{text_file}: error: not an image")
    assert lines[2] == "scored 0 of 2 images"


def test_empty_folder_and_no_inputs(digit_model, tmp_path):
    with pytest.raises(DataError, match="holds no image files"):
        run_predict(str(digit_model.path), [str(tmp_path)])
    with pytest.raises(ConfigError, match="inputs"):
        run_predict(str(digit_model.path), [])


@pytest.mark.parametrize("top", [0, 11])
def test_top_out_of_range(digit_model, tmp_path, top):
    with pytest.raises(ConfigError, match=rf"top={top} must be an integer in \[1, 10\]"):
        run_predict(str(digit_model.path), [str(tmp_path / "x.png")], top=top)


def test_missing_model_files(digit_model, tmp_path):
    with pytest.raises(ModelFileError, match=r"none\.npz: model file not found"):
        run_predict(str(tmp_path / "none.npz"), [str(tmp_path)])
    weights_only = tmp_path / "lonely.npz"
    weights_only.write_bytes(digit_model.path.read_bytes())
    with pytest.raises(ModelFileError, match=r"lonely\.json: metadata file is missing"):
        run_predict(str(weights_only), [str(tmp_path)])
    (tmp_path / "lonely.json").write_bytes(digit_model.path.with_suffix(".json").read_bytes())
    weights_only.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelFileError, match=r"lonely\.npz: SHA-256 does not match"):
        run_predict(str(weights_only), [str(tmp_path)])


def save_variant(digit_model: DigitModel, path: Path, *, sizes=None, **changes) -> Path:
    """Save a copy of the test model (or a fresh one with ``sizes``) with changed metadata."""
    model, metadata = load_model(digit_model.path)
    if sizes is not None:
        model = MLP.create(sizes, rng=np.random.default_rng(0))
    keep = {k: v for k, v in metadata.items() if k in ("preprocessing", "dataset")}
    keep.update(changes)
    save_model(path, model, {k: v for k, v in keep.items() if v is not None})
    return path


def test_model_with_another_input_size_does_not_match(digit_model, tmp_path):
    path = save_variant(digit_model, tmp_path / "wide.npz", sizes=(1024, 32, 10))
    with pytest.raises(ModelFileError, match=r"takes 1024 inputs.*28x28 = 784"):
        run_predict(str(path), [str(tmp_path)])


def test_model_declaring_another_image_shape_does_not_match(digit_model, tmp_path):
    path = save_variant(digit_model, tmp_path / "shape.npz", image_shape=[14, 56])
    with pytest.raises(ModelFileError, match=r"shape\.json: image_shape=\[14, 56\]"):
        run_predict(str(path), [str(tmp_path)])


def test_model_without_preprocessing_statistics(digit_model, tmp_path):
    path = save_variant(digit_model, tmp_path / "raw.npz", preprocessing=None)
    with pytest.raises(ModelFileError, match="no 'preprocessing' statistics"):
        load_predictor(path)
    bad = save_variant(digit_model, tmp_path / "bad.npz", preprocessing={"standardize": True})
    with pytest.raises(ModelFileError, match="invalid preprocessing"):
        load_predictor(bad)


def read_prediction_artifacts() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
        )


def test_folder_flow_end_to_end_with_a_corrupt_file(
    prefect_harness: None, digit_model: DigitModel, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "batch"
    paths, indices = write_renders(digit_model, folder, n=6, seed=5)
    corrupt = folder / "corrupt.png"
    corrupt.write_bytes(paths[0].read_bytes()[:100])  # a truncated PNG
    before = len(read_prediction_artifacts())
    with caplog.at_level(logging.INFO):
        result = mnist_predict(str(digit_model.path), str(folder))
    assert (result["n_images"], result["n_failed"]) == (7, 1)
    assert result["csv_path"] == str(folder / "predictions.csv")
    with open(result["csv_path"], newline="") as fh:
        rows = {Path(r["file"]).name: r for r in csv.DictReader(fh)}
    assert len(rows) == 7 and "corrupt or truncated PNG" in rows["corrupt.png"]["error"]
    for path, i in zip(paths, indices, strict=True):
        assert int(rows[path.name]["label"]) == digit_model.predicted[i]
    assert any(
        "could not score" in r.getMessage() and "corrupt.png" in r.getMessage()
        for r in caplog.records
    )

    artifacts = read_prediction_artifacts()
    assert len(artifacts) == before + 1
    table = artifacts[0].data
    table = json.loads(table) if isinstance(table, str) else table
    assert len(table) == 7
    cells = {Path(row["file"]).name: row for row in table}
    assert cells["corrupt.png"]["label"] is None and cells["corrupt.png"]["error"]
    for row in table:
        for value in row.values():
            assert value is None or type(value) in (int, float, str), row


def test_hostile_file_names_stay_text_in_the_csv_and_one_line_each(
    digit_model, tmp_path, monkeypatch
):
    """Formula-like names are neutralised in the CSV, whatever control character they hold;
    a newline in a name is shown escaped."""
    names = ["=1+2.png", "+cmd.png", "-x.png", "@sum.png", "new\nline.png",
             "a\r=cmd|' C calc'!A0.png", "\t=tab.png", "\r-cr.png", "b\t@x\x1b.png"]  # fmt: skip
    paths, indices = write_renders(digit_model, tmp_path, n=len(names), seed=5)
    for path, name in zip(paths, names, strict=True):
        path.rename(tmp_path / name)
    monkeypatch.chdir(tmp_path)
    text, code = run_predict(str(digit_model.path), names, csv_path="out.csv")
    assert code == 0
    lines = text.splitlines()
    assert len(lines) == len(names) + 2  # one per image, "scored 9 of 9", "wrote out.csv"
    assert lines[4].startswith(f"new\\nline.png: {digit_model.predicted[indices[4]]} (")
    raw = Path("out.csv").read_text(encoding="utf-8")
    assert "\r" not in raw and "\t" not in raw and raw.count("\n") == len(names) + 1
    for line in raw.splitlines():  # every field quoted, none starting a formula
        cells = line.split('","')
        assert line.startswith('"') and line.endswith('"') and len(cells) == 4, line
        assert not cells[0][1:].startswith(("=", "+", "-", "@")), line
    with open("out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["file"] for r in rows] == [
        "'=1+2.png", "'+cmd.png", "'-x.png", "'@sum.png", "new\\nline.png",
        "a\\r=cmd|' C calc'!A0.png", "\\t=tab.png", "\\r-cr.png", "b\\t@x\\x1b.png",
    ]  # fmt: skip
    assert [int(r["label"]) for r in rows] == [int(digit_model.predicted[i]) for i in indices]


def test_subfolders_are_listed_as_skipped(digit_model, tmp_path, caplog):
    folder = tmp_path / "scans"
    paths, _ = write_renders(digit_model, folder, n=2, seed=6)
    write_renders(digit_model, folder / "more", n=1, seed=7)
    (folder / ".hidden").mkdir()
    text, code = run_predict(str(digit_model.path), [str(folder)])
    assert code == 0
    lines = text.splitlines()
    assert lines[2] == "scored 2 of 2 images"
    note = f"skipped {folder / 'more'}/: a subfolder, not searched (give it as an input)"
    assert lines[3] == note
    assert len(lines) == 5 and lines[4].startswith("wrote ")
    with open(folder / "predictions.csv", newline="") as fh:
        assert sorted(Path(r["file"]).name for r in csv.DictReader(fh)) == [p.name for p in paths]
    with caplog.at_level(logging.WARNING):
        text, _ = run_predict(str(digit_model.path), [str(folder)], as_json=True)
    assert len(json.loads(text)) == 2
    assert [r.getMessage() for r in caplog.records] == [note]
    only_folders = tmp_path / "classes"
    write_renders(digit_model, only_folders / "3", n=1, seed=8)
    with pytest.raises(DataError, match=r"its subfolders \(3\) are not searched"):
        run_predict(str(digit_model.path), [str(only_folders)])
