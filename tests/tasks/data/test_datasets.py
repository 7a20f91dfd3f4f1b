"""The dataset registry, the cache location and the verification policy."""

from __future__ import annotations

import gzip
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
from platformdirs import user_cache_path

from nn.errors import ConfigError
from tasks.data.datasets import (
    DATASETS,
    ROLES,
    DatasetFiles,
    FileSpec,
    default_cache_dir,
    ensure_dir,
    fingerprint,
    get_dataset,
    resolve_cache_dir,
)
from tasks.data.idx import read_idx
from tasks.data.sources import find_in_dir
from tasks.data.verify import md5sum, verify_file
from tasks.errors import CacheError, ChecksumError, DataError, IDXFormatError
from tests.tasks.idx_helpers import gunzip_to, write_idx

MNIST_TRAIN_LABELS_MD5 = "d53e105ee54ea40749a09fcbcd1e9432"


def test_registry_lists_the_three_datasets() -> None:
    assert set(DATASETS) == {"mnist", "fashion-mnist", "idx"}
    mnist = get_dataset("mnist")
    assert [m.split("/")[2] for m in mnist.mirrors] == [
        "ossci-datasets.s3.amazonaws.com",
        "storage.googleapis.com",
        "yann.lecun.com",
    ]
    assert all(mnist.file(r).sha256 and mnist.file(r).md5 and mnist.file(r).size for r in ROLES)
    assert all(get_dataset("fashion-mnist").file(r).sha256 for r in ROLES)
    idx = get_dataset("idx")
    assert not any(f.sha256 or f.md5 for f in idx.files) and idx.n_classes is None


def test_unknown_dataset_names_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset 'kmnist'.*fashion-mnist, idx, mnist"):
        get_dataset("kmnist")


def test_registry_checksums_match_the_real_files(mnist_dir: Path, fashion_dir: Path) -> None:
    """All eight files verify by content, whatever their compression (some were recompressed)."""
    for name, folder in (("mnist", mnist_dir), ("fashion-mnist", fashion_dir)):
        for fs in get_dataset(name).files:
            info = verify_file(folder / fs.filename, fs)
            assert info.sha256 == fs.sha256 and info.content_size == fs.size
    assert md5sum(mnist_dir / "t10k-images-idx3-ubyte.gz") == "9fb629c4189551a2d022fa330f9573f3"
    # Recompressed copies: their .gz MD5 differs from the published one, yet they verify.
    train_images = get_dataset("mnist").file("train_images")
    assert md5sum(mnist_dir / train_images.filename) != train_images.md5
    assert md5sum(fashion_dir / "t10k-labels-idx1-ubyte.gz") != "bb300cfdad3c16e7a12a480ee83cd310"


@pytest.mark.slow  # reads the 47 MB training file
def test_mnist_training_images_are_mnist(mnist_dir: Path) -> None:
    """The complete training set: 60,000 images whose statistics are MNIST's."""
    images = read_idx(mnist_dir / "train-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    assert images.shape == (60000, 28, 28) and labels.shape == (60000,)
    pixels = images.astype(np.float64) / 255
    assert abs(pixels.mean() - 0.1307) < 5e-4 and abs(pixels.std() - 0.3081) < 5e-4
    assert np.bincount(labels).tolist()[:2] == [5923, 6742]


def test_mnist_training_images_verify_uncompressed(mnist_dir: Path, tmp_path: Path) -> None:
    """An uncompressed copy of the training images verifies by content; a changed pixel does not."""
    spec = get_dataset("mnist").file("train_images")
    raw = gunzip_to(mnist_dir / spec.filename, tmp_path / "train-images-idx3-ubyte")
    assert verify_file(raw, spec).sha256 == spec.sha256
    data = bytearray(raw.read_bytes())
    data[-1] ^= 0xFF
    raw.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="SHA-256 of the decompressed content") as info:
        verify_file(raw, spec)
    assert str(raw) in str(info.value)


def test_verify_names_a_wrong_length(mnist_dir: Path, tmp_path: Path) -> None:
    """Images of another size (a subset, another dataset's shape) fail on their length first."""
    spec = get_dataset("mnist").file("test_images")
    subset = write_idx(tmp_path / spec.filename, read_idx(mnist_dir / spec.filename)[:100])
    with pytest.raises(ChecksumError, match=r"78416 bytes .*expected 7840016") as info:
        verify_file(subset, spec)
    assert str(subset) in str(info.value)


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    user_cache = user_cache_path("mnist-flow", appauthor=False)
    monkeypatch.delenv("MNIST_FLOW_CACHE", raising=False)
    assert default_cache_dir() == user_cache
    monkeypatch.setenv("MNIST_FLOW_CACHE", "")  # empty counts as unset
    assert default_cache_dir() == user_cache
    monkeypatch.setenv("MNIST_FLOW_CACHE", str(tmp_path / "env"))
    assert default_cache_dir() == resolve_cache_dir(None) == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "flag") == tmp_path / "flag"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders are Linux's")
def test_cache_dir_follows_xdg_then_home_on_linux(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MNIST_FLOW_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "mnist-flow"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "mnist-flow"


def test_unusable_cache_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a regular file, not a folder")
    with pytest.raises(CacheError, match="not a directory") as info:
        ensure_dir(blocker)
    assert str(blocker) in str(info.value)
    with pytest.raises(CacheError, match="cannot be created") as info:
        ensure_dir(blocker / "mnist")
    assert "cache_dir=" in str(info.value)
    assert ensure_dir(tmp_path / "new" / "mnist").is_dir()


def test_find_in_dir_accepts_usual_names(tmp_path: Path) -> None:
    (tmp_path / "emnist-digits-train-images-idx3-ubyte.gz").touch()
    (tmp_path / "train-labels.idx1-ubyte").touch()
    assert find_in_dir(tmp_path, "train_images").name.startswith("emnist-digits")
    assert find_in_dir(tmp_path, "train_labels").name == "train-labels.idx1-ubyte"
    with pytest.raises(DataError, match="no file named t10k-images-idx3-ubyte"):
        find_in_dir(tmp_path, "test_images")
    (tmp_path / "emnist-letters-train-images-idx3-ubyte.gz").touch()
    with pytest.raises(DataError, match="several files could be the train images"):
        find_in_dir(tmp_path, "train_images")
    with pytest.raises(DataError, match="no such directory"):
        find_in_dir(tmp_path / "missing", "train_images")


def test_verify_by_sha256_accepts_any_compression(fashion_dir: Path, tmp_path: Path) -> None:
    spec = get_dataset("fashion-mnist").file("test_labels")
    original = fashion_dir / spec.filename
    raw = gunzip_to(original, tmp_path / "t10k-labels-idx1-ubyte")
    recompressed = tmp_path / "re.gz"
    recompressed.write_bytes(gzip.compress(raw.read_bytes(), compresslevel=1))
    for path in (original, raw, recompressed):
        assert verify_file(path, spec).sha256 == spec.sha256


def test_verify_rejects_a_corrupted_copy(fashion_dir: Path, tmp_path: Path) -> None:
    spec = get_dataset("fashion-mnist").file("test_labels")
    labels = read_idx(fashion_dir / spec.filename).copy()
    labels[0] = (labels[0] + 1) % 10
    path = write_idx(tmp_path / spec.filename, labels)
    with pytest.raises(ChecksumError, match="SHA-256 of the decompressed content") as info:
        verify_file(path, spec)
    assert str(path) in str(info.value)
    with pytest.raises(IDXFormatError, match="holds labels"):
        verify_file(path, get_dataset("fashion-mnist").file("test_images"))


def test_md5_only_policy(mnist_dir: Path, tmp_path: Path) -> None:
    """With only the .gz MD5 known (a custom registry entry): the .gz passes, copies cannot."""
    spec = FileSpec("train_labels", "train-labels-idx1-ubyte.gz", md5=MNIST_TRAIN_LABELS_MD5)
    original = mnist_dir / spec.filename
    sha = hashlib.sha256(gzip.decompress(original.read_bytes())).hexdigest()
    assert verify_file(original, spec).sha256 == sha
    raw = gunzip_to(original, tmp_path / "train-labels-idx1-ubyte")
    with pytest.raises(ChecksumError, match=r"uncompressed copy.*cannot be verified.*dataset=idx"):
        verify_file(raw, spec)
    recompressed = tmp_path / spec.filename
    recompressed.write_bytes(gzip.compress(raw.read_bytes()))
    with pytest.raises(ChecksumError, match=f"MD5 is .*expected {MNIST_TRAIN_LABELS_MD5}"):
        verify_file(recompressed, spec)
    assert verify_file(raw, FileSpec("train_labels", "x.gz")).sha256 == sha  # idx: no checksum


def test_dataset_files_fingerprint_and_validation(tmp_path: Path) -> None:
    checksums = {role: f"{i:064x}" for i, role in enumerate(ROLES)}
    files = DatasetFiles("idx", *(tmp_path / r for r in ROLES), checksums=checksums, n_classes=3)
    assert files.fingerprint == fingerprint(checksums) and len(files.fingerprint) == 64
    assert files.path("test_labels") == tmp_path / "test_labels"
    with pytest.raises(DataError, match="checksums: need one SHA-256 per role"):
        DatasetFiles("idx", *(tmp_path / r for r in ROLES), checksums={})
    with pytest.raises(DataError, match="n_classes must be >= 2"):
        DatasetFiles("idx", *(tmp_path / r for r in ROLES), checksums=checksums, n_classes=1)
    assert np.all([p.parent == tmp_path for p in files.paths.values()])
