"""The IDX reader on the real files and on every kind of bad input."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.data.idx import check_pair, load_idx, read_idx
from tasks.errors import DataError, IDXFormatError
from tests.tasks.idx_helpers import gunzip_to, idx_bytes, write_idx

# SHA-256 of the decompressed content, from ../shared/data/README.md.
MNIST_TEST_IMAGES_SHA = "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
MNIST_TEST_LABELS_SHA = "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"


@pytest.fixture(scope="module")
def test_labels_raw(mnist_dir: Path) -> bytes:
    """The decompressed real MNIST test labels (10,008 bytes)."""
    return gzip.decompress((mnist_dir / "t10k-labels-idx1-ubyte.gz").read_bytes())


@pytest.fixture(scope="module")
def small_images_raw(mnist_dir: Path) -> bytes:
    """An IDX images file of the first 20 real MNIST test images."""
    return idx_bytes(read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:20])


def test_reads_the_real_mnist_test_set(mnist_dir: Path) -> None:
    images = load_idx(mnist_dir / "t10k-images-idx3-ubyte.gz", kind="images")
    labels = load_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz", kind="labels")
    assert images.array.shape == (10_000, 28, 28) and images.array.dtype == np.uint8
    assert labels.array.shape == (10_000,)
    assert images.sha256 == MNIST_TEST_IMAGES_SHA and labels.sha256 == MNIST_TEST_LABELS_SHA
    assert images.compressed and images.kind == "images" and labels.kind == "labels"
    assert sorted(np.unique(labels.array)) == list(range(10))
    assert 0 < images.array.mean() < 255
    check_pair(images.array, labels.array, n_classes=10)


def test_uncompressed_copy_reads_the_same(mnist_dir: Path, tmp_path: Path) -> None:
    raw = gunzip_to(mnist_dir / "t10k-labels-idx1-ubyte.gz", tmp_path / "t10k-labels-idx1-ubyte")
    info = load_idx(raw)
    assert not info.compressed and info.sha256 == MNIST_TEST_LABELS_SHA
    np.testing.assert_array_equal(info.array, read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz"))


def _bad(tmp_path: Path, content: bytes, name: str = "bad-idx1-ubyte") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def _raises(path: Path, *words: str, kind: str | None = None) -> None:
    with pytest.raises(IDXFormatError) as info:
        read_idx(path, kind=kind)  # type: ignore[arg-type]
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_wrong_magic(tmp_path: Path, test_labels_raw: bytes) -> None:
    path = _bad(tmp_path, struct.pack(">I", 2050) + test_labels_raw[4:])
    _raises(path, "bad magic number 2050", "2049", "2051")


def test_wrong_kind(mnist_dir: Path) -> None:
    _raises(mnist_dir / "t10k-labels-idx1-ubyte.gz", "labels", "images", kind="images")


def test_truncated_payload(tmp_path: Path, test_labels_raw: bytes) -> None:
    _raises(_bad(tmp_path, test_labels_raw[:-1]), "truncated", "10000 data bytes", "9999")


def test_truncated_payload_in_gzip(tmp_path: Path, small_images_raw: bytes) -> None:
    path = _bad(tmp_path, gzip.compress(small_images_raw[:-100]), "images.gz")
    _raises(path, "truncated", "(20, 28, 28)")


def test_header_larger_than_payload(tmp_path: Path, test_labels_raw: bytes) -> None:
    path = _bad(tmp_path, struct.pack(">II", 2049, 10_001) + test_labels_raw[8:])
    _raises(path, "truncated", "10001")


def test_trailing_bytes(tmp_path: Path, test_labels_raw: bytes) -> None:
    _raises(_bad(tmp_path, test_labels_raw + b"\0\0"), "trailing bytes", "10002")
    path = _bad(tmp_path, gzip.compress(test_labels_raw + b"\7"), "labels.gz")
    _raises(path, "trailing bytes", "at least 10001")


def test_truncated_header(tmp_path: Path, small_images_raw: bytes) -> None:
    _raises(_bad(tmp_path, small_images_raw[:10]), "truncated header")
    _raises(_bad(tmp_path, small_images_raw[:3]), "truncated header", "magic")


def test_zero_dimension(tmp_path: Path) -> None:
    _raises(_bad(tmp_path, struct.pack(">IIII", 2051, 5, 0, 28)), "dimension 1", "is 0")


def test_absurd_header_is_rejected_without_allocating(tmp_path: Path) -> None:
    path = _bad(tmp_path, gzip.compress(struct.pack(">IIII", 2051, 2**31, 2**16, 2**16)), "x.gz")
    _raises(path, "more than")


def test_not_gzip(tmp_path: Path, test_labels_raw: bytes) -> None:
    _raises(_bad(tmp_path, test_labels_raw, "labels.gz"), "not gzip-compressed")
    _raises(_bad(tmp_path, b"<html>Not Found</html>", "labels.gz"), "not gzip")


def test_corrupt_gzip(tmp_path: Path, test_labels_raw: bytes) -> None:
    data = bytearray(gzip.compress(test_labels_raw))
    data[-6] ^= 0xFF  # inside the CRC-32 trailer
    _raises(_bad(tmp_path, bytes(data), "labels.gz"), "corrupt or truncated gzip")
    _raises(_bad(tmp_path, bytes(data[: len(data) // 2]), "half.gz"), "gzip")


def test_empty_file(tmp_path: Path) -> None:
    _raises(_bad(tmp_path, b""), "empty file")
    _raises(_bad(tmp_path, b"", "empty.gz"), "empty file")


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found") as info:
        read_idx(tmp_path / "nowhere.gz")
    assert str(tmp_path / "nowhere.gz") in str(info.value)


def test_count_mismatch(mnist_dir: Path) -> None:
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(IDXFormatError, match=r"10000 images but lab\.gz holds 9999 labels"):
        check_pair(images, labels[:-1], n_classes=10, labels_name="lab.gz")


def test_label_out_of_range(mnist_dir: Path, tmp_path: Path) -> None:
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz").copy()
    labels[7] = 10
    path = write_idx(tmp_path / "labels.gz", labels)
    images = np.zeros((10_000, 28, 28), np.uint8)
    with pytest.raises(IDXFormatError, match=r"label 10 in .*, classes 0-9: label 10 at index 7"):
        check_pair(images, read_idx(path), n_classes=10, labels_name=str(path))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), compress=st.booleans(), images=st.booleans())
def test_random_corruption_raises_only_project_errors(
    tmp_path: Path,
    test_labels_raw: bytes,
    small_images_raw: bytes,
    data: st.DataObject,
    compress: bool,
    images: bool,
) -> None:
    """Randomly edited real files either parse to a well-formed array or raise IDXFormatError."""
    content = bytearray(small_images_raw if images else test_labels_raw)
    if compress:
        content = bytearray(gzip.compress(bytes(content), mtime=0))
    edits = data.draw(st.integers(1, 4))
    for _ in range(edits):
        action = data.draw(st.sampled_from(["flip", "truncate", "insert", "delete", "header"]))
        position = data.draw(st.integers(0, max(len(content) - 1, 0)))
        if action == "flip" and content:
            content[position] ^= data.draw(st.integers(1, 255))
        elif action == "truncate":
            del content[position:]
        elif action == "insert":
            content[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del content[position : position + data.draw(st.integers(1, 16))]
        elif action == "header" and len(content) >= 16:
            content[data.draw(st.integers(0, 15))] = data.draw(st.integers(0, 255))
    path = tmp_path / ("corrupt.gz" if compress else "corrupt")
    path.write_bytes(bytes(content))
    try:
        array = read_idx(path)
    except IDXFormatError as exc:
        assert str(path) in str(exc)
        return
    assert array.dtype == np.uint8 and array.ndim in (1, 3) and 0 not in array.shape
    assert len(bytes(content)) >= 8
