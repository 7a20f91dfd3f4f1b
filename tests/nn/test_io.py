"""Model files: round trip, atomic writes, and a ModelFileError for every bad file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from nn.errors import ConfigError, ModelFileError
from nn.io import load_model, metadata_path, save_model
from nn.model import MLP
from nn.train import TrainConfig

META = {
    "training": TrainConfig(epochs=1).to_dict(),
    "preprocessing": {"standardize": True, "mean": np.float32(0.1307), "std": 0.3081},
    "dataset": {"name": "mnist", "sha256": "ab" * 32},
}


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, MLP]:
    rng = np.random.default_rng(0)
    model = MLP.create((784, 32, 16, 10), rng=rng)
    for b in model.biases:
        b[:] = rng.normal(0.0, 0.1, size=b.shape)
    path = tmp_path / "model.npz"
    save_model(path, model, META)
    return path, model


def _rewrite_npz(path: Path, **arrays) -> None:
    """Replace the weights and fix the checksum, so only the arrays are at fault."""
    with path.open("wb") as fh:
        np.savez(fh, **arrays)
    meta = json.loads(metadata_path(path).read_text())
    meta["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    metadata_path(path).write_text(json.dumps(meta))


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def _edit_json(path: Path, **changes) -> None:
    meta = json.loads(metadata_path(path).read_text())
    meta.update(changes)
    metadata_path(path).write_text(json.dumps(meta))


def test_round_trip_gives_identical_predictions(saved, mnist_test_set):
    path, model = saved
    X, _ = mnist_test_set
    loaded, meta = load_model(path)
    assert loaded.layer_sizes == (784, 32, 16, 10) and loaded.activation == "relu"
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(X[:2000]), model.predict(X[:2000]))
    np.testing.assert_array_equal(loaded.predict_proba(X[:500]), model.predict_proba(X[:500]))
    assert meta["format_version"] == 1
    assert meta["layer_sizes"] == [784, 32, 16, 10]
    assert TrainConfig.from_dict(meta["training"]) == TrainConfig(epochs=1)
    assert meta["preprocessing"]["mean"] == pytest.approx(0.1307)
    assert meta["dataset"] == META["dataset"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.npz"]


def test_saving_again_replaces_both_files(saved):
    path, model = saved
    model.weights[0] += 1
    save_model(path, model, {"note": "second"})
    loaded, meta = load_model(path)
    np.testing.assert_array_equal(loaded.weights[0], model.weights[0])
    assert meta["note"] == "second" and "training" not in meta
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.npz"]


def test_model_files_are_readable_as_open_would_make_them(tmp_path):
    model = MLP.create((4, 3, 2), rng=np.random.default_rng(0))
    old_mask = os.umask(0o027)
    try:
        save_model(tmp_path / "m.npz", model, {})
    finally:
        os.umask(old_mask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert modes == {"m.npz": 0o640, "m.json": 0o640}  # not mkstemp's private 0o600


def test_a_failed_metadata_write_is_detected_on_loading_and_leaves_no_temporary(saved, monkeypatch):
    path, model = saved
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    real_replace = os.replace

    def fail_on_json(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", fail_on_json)
    model.weights[0] += 1
    with pytest.raises(ModelFileError, match="No space left"):
        save_model(path, model, {"note": "second"})
    monkeypatch.undo()
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.json", "model.npz"]
    assert (path.parent / "model.json").read_bytes() == before["model.json"]
    with pytest.raises(ModelFileError, match="SHA-256 does not match"):
        load_model(path)  # the new weights with the old metadata: detected, not loaded


def test_reserved_or_unserialisable_metadata_is_refused(tmp_path):
    model = MLP.create((4, 3, 2), rng=np.random.default_rng(0))
    with pytest.raises(ConfigError, match="layer_sizes"):
        save_model(tmp_path / "m.npz", model, {"layer_sizes": [1]})
    with pytest.raises(ConfigError, match="JSON"):
        save_model(tmp_path / "m.npz", model, {"bad": object()})
    with pytest.raises(ConfigError, match="JSON"):
        save_model(tmp_path / "m.npz", model, {"bad": float("nan")})
    assert list(tmp_path.iterdir()) == []


def test_unwritable_destination(tmp_path):
    model = MLP.create((4, 3, 2), rng=np.random.default_rng(0))
    with pytest.raises(ModelFileError, match="cannot write"):
        save_model(tmp_path / "missing" / "m.npz", model, {})


def test_truncated_npz(saved):
    path, _ = saved
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ModelFileError, match="SHA-256"):
        load_model(path)


def test_truncated_npz_with_matching_checksum(saved):
    path, _ = saved
    raw = path.read_bytes()[:300]
    path.write_bytes(raw)
    _edit_json(path, weights_sha256=hashlib.sha256(raw).hexdigest())
    with pytest.raises(ModelFileError, match=r"not a readable \.npz"):
        load_model(path)


def test_corrupted_bytes(saved):
    path, _ = saved
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="corrupted"):
        load_model(path)


def test_wrong_shape(saved):
    path, _ = saved
    arrays = _arrays(path)
    arrays["W1"] = np.zeros((32, 17), dtype=np.float32)
    _rewrite_npz(path, **arrays)
    with pytest.raises(ModelFileError, match=r"W1 has shape \(32, 17\), expected \(32, 16\)"):
        load_model(path)


def test_wrong_dtype(saved):
    path, _ = saved
    arrays = _arrays(path)
    arrays["b0"] = arrays["b0"].astype(np.float64)
    _rewrite_npz(path, **arrays)
    with pytest.raises(ModelFileError, match="b0 has dtype float64, expected float32"):
        load_model(path)


def test_pickled_object_array_is_never_unpickled(saved):
    path, _ = saved
    arrays = _arrays(path)
    arrays["W0"] = np.array([{"evil": 1}, None], dtype=object)
    _rewrite_npz(path, **arrays)
    with pytest.raises(ModelFileError, match="refused"):
        load_model(path)


def test_missing_or_extra_arrays(saved):
    path, _ = saved
    arrays = _arrays(path)
    _rewrite_npz(path, **{**arrays, "W9": np.zeros(2, dtype=np.float32)})
    with pytest.raises(ModelFileError, match="W9"):
        load_model(path)
    del arrays["b2"]
    _rewrite_npz(path, **arrays)
    with pytest.raises(ModelFileError, match="expected"):
        load_model(path)


def test_non_finite_weights(saved):
    path, _ = saved
    arrays = _arrays(path)
    arrays["W2"][0, 0] = np.nan
    _rewrite_npz(path, **arrays)
    with pytest.raises(ModelFileError, match="W2 holds NaN"):
        load_model(path)


def test_wrong_format_version(saved):
    path, _ = saved
    _edit_json(path, format_version=2)
    with pytest.raises(ModelFileError, match="format_version=2 is not supported"):
        load_model(path)


def test_missing_json(saved):
    path, _ = saved
    metadata_path(path).unlink()
    with pytest.raises(ModelFileError, match="metadata file is missing"):
        load_model(path)


def test_missing_npz(saved):
    path, _ = saved
    path.unlink()
    with pytest.raises(ModelFileError, match="weights file is missing"):
        load_model(path)


def test_invalid_json(saved):
    path, _ = saved
    metadata_path(path).write_text('{"format_version": 1, "layer_')
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(path)
    metadata_path(path).write_text("[1, 2]")
    with pytest.raises(ModelFileError, match="JSON object"):
        load_model(path)


def test_json_not_matching_the_npz(saved):
    path, _ = saved
    _edit_json(path, layer_sizes=[784, 64, 16, 10])
    with pytest.raises(ModelFileError, match=r"W0 has shape \(784, 32\), expected \(784, 64\)"):
        load_model(path)
    _edit_json(path, layer_sizes=[784, 32, 10])
    with pytest.raises(ModelFileError, match="holds arrays"):
        load_model(path)


def test_json_from_another_save(saved, tmp_path):
    path, model = saved
    other = tmp_path / "other.npz"
    model.weights[0] += 1
    save_model(other, model, META)
    metadata_path(path).write_text(metadata_path(other).read_text())
    with pytest.raises(ModelFileError, match="different saves"):
        load_model(path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("layer_sizes", [784]),
        ("layer_sizes", "784-32-10"),
        ("activation", "swish"),
        ("dtype", "float16"),
        ("weights_sha256", None),
    ],
)
def test_bad_metadata_fields(saved, field, value):
    path, _ = saved
    _edit_json(path, **{field: value})
    with pytest.raises(ModelFileError, match=field):
        load_model(path)
