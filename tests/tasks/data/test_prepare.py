"""Preparation of the arrays (pure) and the cached fetch/preprocess Prefect tasks."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from prefect.states import Failed

from nn.errors import ConfigError
from tasks.data.arrays import POOL_FILES
from tasks.data.datasets import DATASETS, DatasetFiles
from tasks.data.idx import read_idx
from tasks.data.prepare import PrepareParams, load_prepared, prepare, split_indices
from tasks.data.scaling import pixel_stats, prepare_images
from tasks.data.sources import fetch_files
from tasks.errors import ChecksumError, DataError, FetchError
from tasks.fetch import _retry_on_network_error, fetch
from tasks.preprocess import preprocess
from tests.tasks.idx_helpers import ROLE_FILES, idx_folder_from_mnist_test, write_idx


@pytest.fixture(scope="module")
def digits_dir(mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MNIST test set as an IDX folder: 8,000 images to train, 2,000 to test."""
    return idx_folder_from_mnist_test(mnist_dir, tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def digits(digits_dir: Path) -> DatasetFiles:
    return fetch_files("idx", data_dir=str(digits_dir))


@pytest.mark.slow  # the whole training file
def test_full_fashion_mnist(fashion_dir: Path, tmp_path: Path) -> None:
    files = fetch_files("fashion-mnist", data_dir=str(fashion_dir), cache_dir=tmp_path, mirrors=[])
    params = PrepareParams(seed=3)
    prepared = prepare(files, params, tmp_path / "out")
    assert (prepared.n_train, prepared.n_val, prepared.n_test) == (50_000, 10_000, 10_000)
    splits = prepared.load()
    assert splits.X_train.dtype == np.float32
    assert splits.X_train.shape == (50_000, 784) and splits.y_train.dtype == np.int64
    assert splits.X_val is not None and splits.y_val is not None
    np.testing.assert_array_equal(np.bincount(splits.y_val), np.full(10, 1000))  # stratified
    mean, std = _moments(splits.X_train)
    assert abs(mean) < 1e-4 and abs(std - 1) < 1e-4
    # the statistics come from the training split only
    images, labels = read_idx(files.train_images), read_idx(files.train_labels)
    train_idx, val_idx = split_indices(labels, params)
    np.testing.assert_array_equal(splits.y_val, labels[val_idx])
    assert prepared.preprocessing["mean"] == pytest.approx(pixel_stats(images[train_idx])[0])
    assert prepared.preprocessing["mean"] != pytest.approx(pixel_stats(images)[0], abs=1e-6)
    raw_test = read_idx(files.test_images)
    np.testing.assert_array_equal(prepare_images(raw_test, prepared.preprocessing), splits.X_test)
    assert load_prepared(prepared.directory, prepared.split) == prepared
    # another seed adds a split of indices, not a copy of the images
    other = prepare(files, PrepareParams(seed=4), tmp_path / "out")
    assert other.directory == prepared.directory and other.split != prepared.split
    split_bytes = (other.directory / f"{other.split}.npz").stat().st_size
    assert split_bytes < 600_000 < (other.directory / "train_images.npy").stat().st_size


def _moments(X: np.ndarray) -> tuple[float, float]:
    """Mean and std of all entries, in float64, chunk by chunk (no 300 MB temporary)."""
    total = squares = 0.0
    for start in range(0, X.shape[0], 5000):
        chunk = np.asarray(X[start : start + 5000], dtype=np.float64)
        total += chunk.sum()
        squares += np.einsum("ij,ij->", chunk, chunk)
    mean = total / X.size
    return mean, float(np.sqrt(squares / X.size - mean**2))


def test_no_validation_split_and_stratified_subset(digits: DatasetFiles, tmp_path: Path) -> None:
    prepared = prepare(digits, PrepareParams(val_size=0, train_size=1000), tmp_path / "out")
    splits = prepared.load(mmap=False)
    assert splits.X_val is None and splits.y_val is None and prepared.n_val == 0
    assert splits.X_train.shape == (1000, 784) and splits.X_test.shape == (2000, 784)
    X_test, y_test = prepared.load_test()  # the test split alone, the same arrays
    np.testing.assert_array_equal(X_test, splits.X_test)
    np.testing.assert_array_equal(y_test, splits.y_test)
    share = np.bincount(read_idx(digits.train_labels), minlength=10) / 8000
    assert np.all(np.abs(np.bincount(splits.y_train, minlength=10) - 1000 * share) <= 1)


def test_split_depends_on_the_seed_only(digits: DatasetFiles) -> None:
    labels = read_idx(digits.train_labels)
    a = split_indices(labels, PrepareParams(val_size=500, train_size=3000, seed=1))
    b = split_indices(labels, PrepareParams(val_size=500, train_size=3000, seed=1))
    c = split_indices(labels, PrepareParams(val_size=500, train_size=3000, seed=2))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])
    assert a[0].size == 3000 and a[1].size == 500 and not np.intersect1d(*a).size


def test_without_standardisation_pixels_are_in_unit_range(
    digits: DatasetFiles, tmp_path: Path
) -> None:
    prepared = prepare(digits, PrepareParams(val_size=100, standardize=False), tmp_path / "o")
    X = prepared.load().X_train
    assert prepared.preprocessing == {"standardize": False, "mean": 0.0, "std": 1.0}
    assert X.min() == 0.0 and X.max() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_size": -1}, "val_size=-1 must be >= 0"),
        ({"train_size": 0}, "train_size must be None or an integer >= 1"),
        ({"seed": -2}, "seed must be >= 0"),
        ({"standardize": "yes"}, "standardize must be True or False"),
        ({"val_size": 2.5}, "val_size=2.5 must be an integer"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        PrepareParams(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (PrepareParams(val_size=8000), "val_size=8000 must be < 8000"),
        (PrepareParams(val_size=5), "val_size=5 cannot split stratified"),
        (PrepareParams(val_size=1000, train_size=7001), "train_size=7001 must be <= 7000"),
        (PrepareParams(val_size=1000, train_size=3), "train_size=3 cannot subsample"),
    ],
)
def test_impossible_splits(digits: DatasetFiles, params: PrepareParams, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_indices(read_idx(digits.train_labels), params)


@pytest.mark.parametrize(("n", "expected"), [(60000, 10000), (8000, 1333), (1000, 166), (30, 10)])
def test_default_validation_split_adapts_to_the_data(n: int, expected: int) -> None:
    """A sixth of the training images, at most 10,000, at least one per class."""
    labels = np.arange(n) % 10
    train_idx, val_idx = split_indices(labels, PrepareParams(seed=1))
    assert val_idx.size == expected and train_idx.size == n - expected
    assert set(labels[val_idx]) == set(range(10))  # stratified: every class in both parts
    assert not set(train_idx) & set(val_idx)


def test_file_changed_since_fetch(digits: DatasetFiles, tmp_path: Path) -> None:
    changed = replace(digits, checksums={**digits.checksums, "test_labels": "0" * 64})
    with pytest.raises(ChecksumError, match="changed since it was fetched"):
        prepare(changed, PrepareParams(val_size=100), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_prepare_images_rejects_bad_input() -> None:
    pre = {"standardize": True, "mean": 0.5, "std": 0.25}
    images = np.full((2, 28, 28), 255, np.uint8)
    np.testing.assert_allclose(prepare_images(images, pre), np.full((2, 784), 2.0))
    np.testing.assert_array_equal(prepare_images(images.reshape(2, -1), pre), np.full((2, 784), 2))
    with pytest.raises(DataError, match="must be uint8"):
        prepare_images(images.astype(np.float32), pre)
    with pytest.raises(DataError, match=r"of shape \(n, rows, cols\)"):
        prepare_images(images[0, 0], pre)
    with pytest.raises(DataError, match="std > 0"):
        prepare_images(images, {**pre, "std": 0.0})
    with pytest.raises(DataError, match="must have 'standardize'"):
        prepare_images(images, {"mean": 0.1})


def test_missing_array_is_reported(digits: DatasetFiles, tmp_path: Path) -> None:
    prepared = prepare(digits, PrepareParams(val_size=100), tmp_path / "out")
    (prepared.directory / "test_labels.npy").unlink()
    assert load_prepared(prepared.directory, prepared.split) is None
    assert prepared.changed() == ["test_labels.npy"]
    with pytest.raises(DataError, match=r"cannot load prepared data"):
        prepared.load()


def test_an_incomplete_pool_is_replaced_and_a_complete_one_kept(
    digits: DatasetFiles, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = prepare(digits, PrepareParams(val_size=100, train_size=500), out)
    (first.directory / "test_labels.npy").unlink()  # a crashed or tampered result: incomplete
    second = prepare(digits, PrepareParams(val_size=100, train_size=500), out)
    assert load_prepared(second.directory, second.split) == second == first
    images = first.directory / "train_images.npy"
    written = images.stat().st_mtime_ns
    # Another split of the same data keeps the pool and adds its indices.
    third = prepare(digits, PrepareParams(val_size=100, train_size=400), out)
    assert images.stat().st_mtime_ns == written and third.n_train == 400
    assert load_prepared(first.directory, first.split).n_train == 500
    assert [p.name for p in out.iterdir()] == [first.directory.name]  # no temporary left
    assert sorted(p.suffix for p in first.directory.glob("split-*")) == [".json"] * 2 + [".npz"] * 2


def test_retry_only_on_network_errors() -> None:
    def retried(exc: Exception) -> bool:
        return _retry_on_network_error(None, None, Failed(data=exc))  # type: ignore[arg-type]

    assert retried(FetchError("timeouts", transient=True))
    assert not retried(FetchError("404 everywhere"))
    assert not retried(ChecksumError("corrupt"))


# --- the Prefect tasks -------------------------------------------------------------------

# Tasks run here outside a flow: Prefect warns that their logs are not sent to its API.
outside_flow = pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted")


def _latest_artifact(key: str):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )[0]


def _run(digits_dir: Path, cache: Path, **kwargs: object):
    fetched = fetch("idx", data_dir=str(digits_dir), cache_dir=str(cache), return_state=True)
    prepared = preprocess(
        fetched.result(), val_size=500, train_size=2000, cache_dir=str(cache), return_state=True,
        **kwargs,
    )  # fmt: skip
    return fetched, prepared


@outside_flow
def test_second_run_is_served_from_the_cache(
    prefect_harness: None, digits_dir: Path, tmp_path: Path
) -> None:
    first_fetch, first = _run(digits_dir, tmp_path)
    assert first_fetch.is_completed() and first_fetch.name == "Completed"
    assert first.is_completed() and first.name == "Completed"
    table = json.loads(_latest_artifact("data-idx").data)
    assert [row["examples"] for row in table] == [2000, 500, 2000]
    second_fetch, second = _run(digits_dir, tmp_path)
    assert second_fetch.name == "Completed"  # a folder's files are verified in place each time
    assert second.name == "Cached"
    assert second.result() == first.result()
    assert second.result().load().X_train.shape == (2000, 784)
    other_seed = _run(digits_dir, tmp_path, seed=1)[1]
    assert other_seed.name == "Completed"

    # Deleted arrays: the cache is not served with dangling paths; the task runs again.
    (first.result().directory / "train_images.npy").unlink()
    rebuilt = _run(digits_dir, tmp_path)[1]
    assert rebuilt.name == "Completed" and not rebuilt.result().changed()
    assert _run(digits_dir, tmp_path)[1].name == "Cached"


@outside_flow
def test_fetch_from_a_mirror_then_cached_unless_files_are_gone(
    prefect_harness: None, fashion_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = DATASETS["fashion-mnist"]
    monkeypatch.setitem(DATASETS, "fashion-mnist", replace(spec, local_dirs=()))  # no Debian copy

    def run():
        return fetch(
            "fashion-mnist", mirror=fashion_dir.as_uri(), cache_dir=str(tmp_path), return_state=True
        )

    first = run()
    assert first.name == "Completed"
    assert first.result().path("train_images").parent == tmp_path / "fashion-mnist"
    assert run().name == "Cached"
    first.result().path("test_labels").unlink()
    again = run()
    assert again.name == "Completed" and again.result().path("test_labels").is_file()
    assert again.result().sources["test_labels"].startswith("file://")
    assert again.result().sources["train_images"] == "cache"


@outside_flow
def test_a_replaced_file_is_fetched_again(
    prefect_harness: None, digits_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "digits"
    shutil.copytree(digits_dir, folder)
    first = fetch("idx", data_dir=str(folder), cache_dir=str(tmp_path), return_state=True)
    labels = folder / ROLE_FILES["test_labels"]
    write_idx(labels, read_idx(labels)[::-1].copy())
    changed = fetch("idx", data_dir=str(folder), cache_dir=str(tmp_path), return_state=True)
    assert changed.name == "Completed"
    assert changed.result().checksums["test_labels"] != first.result().checksums["test_labels"]
    assert changed.result().checksums["test_images"] == first.result().checksums["test_images"]


@outside_flow
def test_fetch_task_fails_with_one_clear_error(
    prefect_harness: None, digits_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "partial"
    shutil.copytree(digits_dir, folder)
    (folder / ROLE_FILES["test_images"]).unlink()
    state = fetch("idx", data_dir=str(folder), return_state=True)
    assert state.is_failed()
    with pytest.raises(DataError, match=rf"data_dir={folder}: no file named t10k-images-idx3"):
        state.result()


def test_a_tampered_array_is_detected_and_prepared_again(digits: DatasetFiles, tmp_path: Path):
    """Other images of the same shape written over train_images.npy are never trained on."""
    from tasks.data.arrays import file_sha256

    out = tmp_path / "prepared"
    prepared = prepare(digits, PrepareParams(val_size=500, train_size=2000), out)
    pool = prepared.directory
    assert set(prepared.sha256) == {*(f"{n}.npy" for n in POOL_FILES), f"{prepared.split}.npz"}
    assert prepared.sha256["train_images.npy"] == file_sha256(pool / "train_images.npy")
    assert load_prepared(pool, prepared.split) == prepared and prepared.changed() == []
    prepared.verify()
    original = np.load(pool / "train_images.npy")
    noise = np.random.default_rng(0).integers(0, 256, original.shape, dtype=np.uint8)
    np.save(pool / "train_images.npy", noise)  # same shape and dtype: only the checksum tells
    assert prepared.changed() == ["train_images.npy"]
    with pytest.raises(ChecksumError, match=r"train_images\.npy.*changed since it was written"):
        prepared.verify()
    assert load_prepared(pool, prepared.split) is None  # the preprocessing step prepares anew
    again = prepare(digits, PrepareParams(val_size=500, train_size=2000), out)
    assert again == prepared and again.changed() == []
    np.testing.assert_array_equal(np.load(pool / "train_images.npy"), original)


def test_labels_outside_the_classes_of_an_idx_folder_are_named(
    digits_dir: Path, tmp_path: Path
) -> None:
    """A stray label 11 among digits 0-9 is an error naming it, not an empty class 10."""
    folder = tmp_path / "stray"
    shutil.copytree(digits_dir, folder)
    labels = read_idx(folder / ROLE_FILES["train_labels"]).copy()
    labels[[5, 17]] = 11
    write_idx(folder / ROLE_FILES["train_labels"], labels)
    with pytest.raises(DataError, match=r"^label 11 in .*train-labels.*, classes 0-9"):
        fetch_files("idx", data_dir=str(folder))
    labels[[5, 17]] = 3
    write_idx(folder / ROLE_FILES["train_labels"], labels)
    test_labels = read_idx(folder / ROLE_FILES["test_labels"]).copy()
    test_labels[4] = 11
    write_idx(folder / ROLE_FILES["test_labels"], test_labels)
    with pytest.raises(DataError, match=r"^label 11 in .*t10k-labels.*, classes 0-9"):
        fetch_files("idx", data_dir=str(folder))
