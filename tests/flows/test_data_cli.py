"""``mnist-flow data add`` and ``data list``: a refusal adds nothing, a good batch is a version."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.cli import main
from tasks.data.idx import read_idx
from tasks.data.versions import DataStore, heldout_mask


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The first 60 real MNIST test digits and their labels."""
    images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[:60]
    labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")[:60].astype(np.int64)
    return images, labels


@pytest.fixture
def emitted(monkeypatch) -> list:
    """The events ``data add`` emits (recorded instead of sent: the integration test sends)."""
    import tasks.events

    calls: list = []
    monkeypatch.setattr(tasks.events, "emit_data_added", lambda v, s: calls.append((v, s)))
    return calls


def write_folder(root: Path, images: np.ndarray, labels: np.ndarray, names=None) -> Path:
    """PNG files in class subfolders ``<label>/<i>.png`` (dark ink on white, like a scan)."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / (names[label] if names else str(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - image).resize((56, 56)).save(folder / f"{i:03d}.png")
    return root


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))
    return path


def data(tmp_path: Path, *args: str) -> int:
    return main(["data", *args, "--data-store", str(tmp_path / "store")])


def versions(tmp_path: Path, dataset: str = "mnist") -> list:
    return DataStore(tmp_path / "store").versions(dataset)


def test_add_a_folder_then_list_it(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    assert data(tmp_path, "add", "--dataset", "mnist", str(folder)) == 0
    [version] = versions(tmp_path)
    images, labels = version.load()
    assert images.shape == (60, 28, 28) and images.dtype == np.uint8
    order = np.argsort(digits[1], kind="stable")  # read folder by folder, files by name
    np.testing.assert_array_equal(labels, digits[1][order])
    counts = np.bincount(digits[1], minlength=10)
    assert version.counts == {str(k): int(c) for k, c in enumerate(counts)}
    assert version.n_heldout == 12 == heldout_mask(version.id, 60).sum()
    # prepared as predict prepares: the ink re-centred in 28x28 close to the original digit
    corr = np.corrcoef(images.reshape(60, -1), digits[0][order].reshape(60, -1))[:60, 60:]
    assert np.diag(corr).min() > 0.6 and np.diag(corr).mean() > 0.85
    assert [(v.id, s) for v, s in emitted] == [(version.id, str(tmp_path / "store"))]
    capsys.readouterr()
    assert data(tmp_path, "list", "--dataset", "mnist") == 0
    out = capsys.readouterr().out
    assert version.id in out and "60" in out and f"7:{counts[7]}" in out


def test_fashion_class_names_are_folders(tmp_path, fashion_dir, emitted):
    images = read_idx(fashion_dir / "t10k-images-idx3-ubyte.gz")[:20]
    labels = read_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz")[:20].astype(np.int64)
    names = ["T-shirt_top", "Trouser", "Pullover", "Dress", "Coat", "sandal", "Shirt",
             "Sneaker", "Bag", "ankle-boot"]  # fmt: skip
    folder = write_folder(tmp_path / "batch", images, labels, names)
    assert data(tmp_path, "add", "--dataset", "fashion-mnist", str(folder)) == 0
    [version] = versions(tmp_path, "fashion-mnist")
    order = np.argsort([names[k] for k in labels], kind="stable")  # folders by name
    np.testing.assert_array_equal(version.load()[1], labels[order])


def _refused(tmp_path, capsys, folder: Path, *needles: str) -> None:
    capsys.readouterr()
    assert data(tmp_path, "add", "--dataset", "mnist", str(folder)) == 1
    captured = capsys.readouterr()
    [line] = captured.err.strip().splitlines()
    assert line.startswith("mnist-flow: error: ") and "nothing added" in line
    for needle in needles:
        assert needle in line
    assert versions(tmp_path) == []


def test_unknown_class_folder_refuses_the_batch(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    (folder / "eleven").mkdir()
    _refused(tmp_path, capsys, folder, "eleven", "unknown class folder")
    assert emitted == []


def test_unreadable_image_refuses_the_batch(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    (folder / "3" / "broken.png").write_bytes(b"\x89PNG not really")
    _refused(tmp_path, capsys, folder, "broken.png")


def test_blank_image_refuses_the_batch(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    Image.new("L", (40, 40), 255).save(folder / "5" / "blank.png")
    _refused(tmp_path, capsys, folder, "blank.png", "blank")


def test_duplicate_within_the_batch_refuses_it(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    first = sorted((folder / str(digits[1][0])).iterdir())[0]
    (folder / str(digits[1][0]) / "copy.png").write_bytes(first.read_bytes())
    _refused(tmp_path, capsys, folder, "duplicate of", first.name)


def test_duplicate_of_an_earlier_batch_refuses_it(tmp_path, digits, emitted, capsys):
    images, labels = digits
    first = write_folder(tmp_path / "a", images[:30], labels[:30])
    assert data(tmp_path, "add", "--dataset", "mnist", str(first)) == 0
    second = write_folder(tmp_path / "b", images[25:], labels[25:])  # 5 seen before
    capsys.readouterr()
    assert data(tmp_path, "add", "--dataset", "mnist", str(second)) == 1
    err = capsys.readouterr().err
    assert "an earlier batch" in err and "5 problems" in err
    assert len(versions(tmp_path)) == 1


def test_skip_bad_adds_the_rest_and_lists_the_skipped(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    (folder / "eleven").mkdir()
    Image.new("L", (40, 40), 0).save(folder / "5" / "blank.png")
    assert data(tmp_path, "add", "--dataset", "mnist", "--skip-bad", str(folder)) == 0
    out = capsys.readouterr().out
    assert out.count("skipped: ") == 2 and "blank.png" in out and "eleven" in out
    [version] = versions(tmp_path)
    assert version.n_images == 60


def test_idx_pair_is_added_and_a_blank_image_refuses_it(tmp_path, digits, emitted, capsys):
    images, labels = digits
    img = write_idx(tmp_path / "new-images-idx3-ubyte.gz", images, 2051)
    lab = write_idx(tmp_path / "new-labels-idx1-ubyte.gz", labels, 2049)
    assert data(tmp_path, "add", "--dataset", "mnist", str(lab), str(img)) == 0
    [version] = versions(tmp_path)
    stored, stored_labels = version.load()
    np.testing.assert_array_equal(stored, images)  # IDX images are taken as they are
    np.testing.assert_array_equal(stored_labels, labels)
    blank = images[:10].copy()
    blank[4] = 0
    img2 = write_idx(tmp_path / "b-images-idx3-ubyte.gz", blank, 2051)
    lab2 = write_idx(tmp_path / "b-labels-idx1-ubyte.gz", labels[:10], 2049)
    capsys.readouterr()
    assert data(tmp_path, "add", "--dataset", "mnist", str(img2), str(lab2)) == 1
    assert "b-images-idx3-ubyte.gz[4]: blank image" in capsys.readouterr().err
    assert len(versions(tmp_path)) == 1


def test_list_without_data_says_base_only(tmp_path, capsys):
    assert data(tmp_path, "list", "--dataset", "mnist") == 0
    assert "base dataset only" in capsys.readouterr().out


def test_an_empty_folder_or_empty_class_folders_add_nothing(tmp_path, emitted, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    _refused(tmp_path, capsys, empty, str(empty), "no image to add")
    (empty / "3").mkdir()
    (empty / "7").mkdir()
    _refused(tmp_path, capsys, empty, str(empty), "no image to add")
    assert emitted == []


def test_skip_bad_with_every_image_bad_adds_nothing(tmp_path, emitted, capsys):
    folder = tmp_path / "batch"
    (folder / "4").mkdir(parents=True)
    Image.new("L", (40, 40), 255).save(folder / "4" / "blank.png")
    (folder / "4" / "broken.png").write_bytes(b"not an image")
    capsys.readouterr()
    assert data(tmp_path, "add", "--dataset", "mnist", "--skip-bad", str(folder)) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("mnist-flow: error: ") and str(folder) in line
    assert "all 2 refused" in line and "nothing added" in line
    assert versions(tmp_path) == [] and emitted == []


def test_adding_the_same_folder_again_is_one_short_refusal(tmp_path, digits, emitted, capsys):
    folder = write_folder(tmp_path / "batch", *digits)
    assert data(tmp_path, "add", "--dataset", "mnist", str(folder)) == 0
    capsys.readouterr()
    assert data(tmp_path, "add", "--dataset", "mnist", str(folder)) == 1
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("problem: ") for line in lines)
    assert "55 more (60 in all)" in lines[-1]
    [line] = captured.err.strip().splitlines()
    assert "every image (60) is already in mnist" in line and "nothing added" in line
    assert len(versions(tmp_path)) == 1
