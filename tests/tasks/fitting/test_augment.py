"""Tests of tasks.fitting.augment on real digits and clothes."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest

from nn.errors import ConfigError
from tasks.fitting.augment import (
    EASE_FACTOR,
    KINDS,
    AugmentConfig,
    Augmenter,
    default_augment,
    eased,
    make_augmenter,
    random_affine,
    warp_bank,
)
from tasks.fitting.warp import WarpBank, elastic_field, noise_stride, sample_points, warp


def _read_images(path: Path, count: int) -> np.ndarray:
    """The first ``count`` images of an IDX image file, (count, 28, 28) float32 in [0, 1]."""
    with gzip.open(path, "rb") as handle:
        raw = handle.read(16 + count * 784)
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, 28, 28) / np.float32(255)


@pytest.fixture(scope="module")
def digits(mnist_dir: Path) -> np.ndarray:
    """64 real MNIST digits, (64, 28, 28) float32 in [0, 1]."""
    return _read_images(mnist_dir / "t10k-images-idx3-ubyte.gz", 64).astype(np.float32)


@pytest.fixture(scope="module")
def clothes(fashion_dir: Path) -> np.ndarray:
    """64 real Fashion-MNIST images, (64, 28, 28) float32 in [0, 1]."""
    return _read_images(fashion_dir / "t10k-images-idx3-ubyte.gz", 64).astype(np.float32)


def _standardize(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) in [0, 1] -> (n, 784) standardised with MNIST-like statistics."""
    return ((images.reshape(len(images), -1) - 0.1307) / 0.3081).astype(np.float32)


def _centre_of_mass(images: np.ndarray) -> np.ndarray:
    """(n, H, W) non-negative images -> (n, 2) centre of mass (row, column)."""
    rows, cols = np.indices(images.shape[1:])
    mass = images.sum(axis=(1, 2))
    return np.stack(
        [(images * rows).sum(axis=(1, 2)) / mass, (images * cols).sum(axis=(1, 2)) / mass], 1
    )


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
def test_output_shape_dtype_and_determinism(digits: np.ndarray, kind: str) -> None:
    X = _standardize(digits)
    augment = make_augmenter(default_augment("mnist", kind))
    assert augment is not None
    first = augment(X, np.random.default_rng(7))
    second = augment(X, np.random.default_rng(7))
    other = augment(X, np.random.default_rng(8))
    assert first.shape == X.shape and first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)
    assert not np.allclose(first, X)
    assert np.all(np.isfinite(first))


def test_none_gives_no_augmenter() -> None:
    assert make_augmenter(AugmentConfig()) is None
    assert make_augmenter(default_augment("fashion-mnist", "none")) is None


@pytest.mark.parametrize("kind", ["shift", "affine", "elastic"])
def test_zero_strength_is_identity(clothes: np.ndarray, kind: str) -> None:
    X = _standardize(clothes)
    config = AugmentConfig(
        kind=kind, max_shift=0.0, max_rotation=0.0, scale=(1.0, 1.0), elastic_alpha=0.0
    )
    augment = make_augmenter(config)
    assert augment is not None
    np.testing.assert_array_equal(augment(X, np.random.default_rng(0)), X)


@pytest.mark.parametrize("shift", [(1.0, -2.0), (0.5, 1.5), (-2.0, 0.0)])
def test_pure_shift_moves_centre_of_mass(digits: np.ndarray, shift: tuple[float, float]) -> None:
    # Digits with a margin of at least 3 empty pixels: nothing leaves the frame.
    digits = digits[(digits[:, :3].sum((1, 2)) + digits[:, -3:].sum((1, 2))) == 0]
    digits = digits[(digits[:, :, :3].sum((1, 2)) + digits[:, :, -3:].sum((1, 2))) == 0]
    n = len(digits)
    assert n > 40
    matrices = np.broadcast_to(np.eye(2), (n, 2, 2))
    shifts = np.broadcast_to(np.asarray(shift), (n, 2))
    moved = warp(digits, matrices, shifts, fill=0.0)
    np.testing.assert_allclose(moved.sum(axis=(1, 2)), digits.sum(axis=(1, 2)), rtol=1e-5)
    delta = _centre_of_mass(moved) - _centre_of_mass(digits)
    np.testing.assert_allclose(delta, np.broadcast_to(shift, (n, 2)), atol=1e-4)


def test_random_shifts_stay_within_max_shift(digits: np.ndarray) -> None:
    augment = make_augmenter(AugmentConfig(kind="shift", max_shift=2.0))
    assert augment is not None
    moved = augment(digits.reshape(len(digits), -1), np.random.default_rng(3))
    delta = _centre_of_mass(moved.reshape(digits.shape)) - _centre_of_mass(digits)
    assert np.abs(delta).max() <= 2.0 + 1e-3
    assert np.abs(delta).mean() > 0.5  # uniform in [-2, 2]: mean |shift| is 1


def test_rotation_by_quarter_turn_matches_rot90(digits: np.ndarray) -> None:
    n = len(digits)
    quarter = np.array([[0.0, -1.0], [1.0, 0.0]])
    turned = warp(digits, np.broadcast_to(quarter, (n, 2, 2)), np.zeros((n, 2)), fill=0.0)
    # source = c + A (p - c) with this A reads (r, c) from (-c, r): a clockwise quarter turn.
    np.testing.assert_allclose(turned, np.rot90(digits, k=-1, axes=(1, 2)), atol=1e-6)


def test_fill_is_the_background_of_standardised_images(digits: np.ndarray) -> None:
    X = _standardize(digits)
    background = np.float32((0.0 - 0.1307) / 0.3081)
    n = len(X)
    shifts = np.tile([0.0, 6.0], (n, 1))  # content moves 6 pixels right: left columns are fill
    moved = warp(X.reshape(n, 28, 28), np.broadcast_to(np.eye(2), (n, 2, 2)), shifts)
    np.testing.assert_allclose(moved[:, :, :6], background, atol=1e-6)
    explicit = warp(X.reshape(n, 28, 28), np.broadcast_to(np.eye(2), (n, 2, 2)), shifts, fill=5.0)
    np.testing.assert_array_equal(explicit[:, :, :6], 5.0)


def test_elastic_output_stays_in_input_range(digits: np.ndarray) -> None:
    X = _standardize(digits)
    config = AugmentConfig(kind="elastic", max_rotation=15.0, elastic_alpha=34.0, elastic_sigma=4.0)
    out = Augmenter(config)(X, np.random.default_rng(1))
    assert np.all(out.min(axis=1) >= X.min(axis=1) - 1e-5)
    assert np.all(out.max(axis=1) <= X.max(axis=1) + 1e-5)
    assert np.abs(out - X).mean() > 0.1


@pytest.mark.parametrize("sigma", [1.5, 4.0])
def test_elastic_field_is_smoothed_uniform_noise(sigma: float) -> None:
    from scipy.ndimage import gaussian_filter  # here: scipy only where a test uses it

    n, alpha = 5, 34.0
    field = elastic_field(n, (28, 28), alpha, sigma, np.random.default_rng(2))
    stride = noise_stride(sigma)
    samples = np.random.default_rng(2).random((n, 2, 28 // stride, 28 // stride), dtype=np.float32)
    noise = np.zeros((n, 2, 28, 28))
    noise[:, :, ::stride, ::stride] = 2.0 * samples - 1.0
    expected = stride * alpha * gaussian_filter(noise, sigma=(0, 0, sigma, sigma), mode="reflect")
    assert field.shape == (n, 2, 28, 28) and field.dtype == np.float32
    np.testing.assert_allclose(field, expected, atol=1e-4)


def test_sparse_noise_keeps_the_amplitude_of_dense_noise() -> None:
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(3)
    dense = gaussian_filter(rng.uniform(-1, 1, (400, 28, 28)), sigma=(0, 4, 4), mode="reflect")
    sparse = elastic_field(200, (28, 28), 1.0, 4.0, rng)
    assert noise_stride(4.0) == 2
    np.testing.assert_allclose(sparse.std(), dense.std(), rtol=0.1)


@pytest.mark.parametrize("order", [0, 1])
def test_bank_gives_each_image_the_warp_of_a_random_entry(digits: np.ndarray, order: int) -> None:
    config = default_augment("mnist", "elastic")
    rng = np.random.default_rng(0)
    matrices, shifts = random_affine(config, 8, rng)
    fields = elastic_field(8, (28, 28), 8.0, 3.0, rng).copy()
    bank = WarpBank(sample_points(matrices, shifts, fields, (28, 28), order), order)
    images = np.concatenate([digits] * 80)  # 5,120 images: offsets past a float32's exact range
    out = bank.apply(images, np.random.default_rng(5))
    pick = np.random.default_rng(5).integers(0, 8, len(images))
    expected = warp(images, matrices[pick], shifts[pick], fields[pick], order=order)
    np.testing.assert_array_equal(out, expected)
    assert len(np.unique(pick)) == 8


def test_bank_depends_on_its_settings_not_on_the_training_seed(digits: np.ndarray) -> None:
    config = default_augment("mnist", "elastic")
    first, second = warp_bank(config, size=64), warp_bank(config, size=64)
    for a, b in zip(first.points, second.points, strict=True):
        np.testing.assert_array_equal(a, b)
    other = warp_bank(config, size=64, seed=1)
    assert not np.array_equal(other.points.frac_r, first.points.frac_r)
    gentle = warp_bank(config.scaled(0.5), size=64)
    assert not np.array_equal(gentle.points.frac_r, first.points.frac_r)


def test_an_image_meets_a_different_warp_at_each_draw(digits: np.ndarray) -> None:
    augment = Augmenter(default_augment("mnist", "elastic"))
    one = np.repeat(_standardize(digits[:1]), 256, axis=0)
    out = augment(one, np.random.default_rng(3))
    assert len({row.tobytes() for row in out}) > 240  # 256 draws from 4,096 warps


def test_no_hflip_for_digits_but_for_clothes(clothes: np.ndarray) -> None:
    for kind in KINDS:
        assert default_augment("mnist", kind).hflip is False
        assert default_augment("idx", kind).hflip is False
        assert default_augment("fashion-mnist", kind).hflip is True
    config = AugmentConfig(kind="shift", max_shift=0.0, hflip=True)
    X = clothes.reshape(len(clothes), -1)
    out = Augmenter(config)(X, np.random.default_rng(4)).reshape(clothes.shape)
    same = np.all(out == clothes, axis=(1, 2))
    mirrored = np.all(np.abs(out - clothes[:, :, ::-1]) < 1e-6, axis=(1, 2))
    assert np.all(same | mirrored)
    assert 10 < mirrored.sum() < 54  # about half of 64


def test_random_erasing_sets_one_rectangle_to_the_fill(clothes: np.ndarray) -> None:
    X = _standardize(clothes)
    config = AugmentConfig(kind="shift", max_shift=0.0, erase=1.0, fill=-5.0)
    out = Augmenter(config)(X, np.random.default_rng(5))
    erased = (out == -5.0).reshape(-1, 28, 28)
    np.testing.assert_array_equal(out[~erased.reshape(len(X), -1)], X[~erased.reshape(len(X), -1)])
    for mask in erased:
        rows, cols = np.nonzero(mask)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert box == mask.sum()  # a full rectangle
        assert 0.01 * 784 <= box <= 0.22 * 784
    half = Augmenter(AugmentConfig(kind="shift", max_shift=0.0, erase=0.5, fill=-5.0))
    touched = (half(X, np.random.default_rng(6)) == -5.0).any(axis=1)
    assert 16 < touched.sum() < 48


def test_pickled_augmenter_gives_the_same_output(digits: np.ndarray) -> None:
    augment = Augmenter(default_augment("mnist", "elastic"))
    X = digits.reshape(len(digits), -1)
    copy = pickle.loads(pickle.dumps(augment))
    np.testing.assert_array_equal(
        augment(X, np.random.default_rng(9)), copy(X, np.random.default_rng(9))
    )


def test_config_round_trips_through_dict() -> None:
    config = default_augment("fashion-mnist", "elastic")
    assert AugmentConfig.from_dict(config.to_dict()) == config


def test_wrong_batch_shape_is_an_error() -> None:
    augment = Augmenter(AugmentConfig(kind="shift"))
    with pytest.raises(ConfigError, match=r"\(batch, 784\)"):
        augment(np.zeros((4, 100), dtype=np.float32), np.random.default_rng(0))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "flip"),
        ("max_shift", -1.0),
        ("max_shift", float("nan")),
        ("max_rotation", 270.0),
        ("scale", (1.2, 0.8)),
        ("scale", (0.0, 1.0)),
        ("scale", (1.0,)),
        ("elastic_alpha", -3.0),
        ("elastic_sigma", 0.0),
        ("hflip", "yes"),
        ("fill", float("inf")),
        ("erase", 1.5),
        ("image_shape", (28,)),
        ("max_rotation", "10"),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field.split("[")[0]):
        AugmentConfig(**{field: value})  # type: ignore[arg-type]


def test_strength_scales_every_magnitude() -> None:
    base = default_augment("mnist", "elastic")
    strong = default_augment("mnist", "elastic", strength=1.5)
    assert strong.max_shift == pytest.approx(1.5 * base.max_shift)
    assert strong.max_rotation == pytest.approx(1.5 * base.max_rotation)
    assert strong.elastic_alpha == pytest.approx(1.5 * base.elastic_alpha)
    assert strong.scale[1] - 1 == pytest.approx(1.5 * (base.scale[1] - 1))
    off = make_augmenter(default_augment("fashion-mnist", "elastic", strength=0.0))
    assert off is not None and off.config.hflip  # flips stay: they have no magnitude
    with pytest.raises(ConfigError, match="strength"):
        default_augment("mnist", "shift", strength=-1.0)


def test_unknown_dataset_and_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match="cifar"):
        default_augment("cifar", "shift")
    with pytest.raises(ConfigError, match="strength"):
        AugmentConfig.from_dict({"kind": "shift", "strength": 2})


@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_scaled_settings_are_the_default_ones_at_that_strength(dataset):
    full = default_augment(dataset, "elastic")
    for factor in (0.0, 0.7, 1.0, 2.0):
        scaled, reference = (
            full.scaled(factor).to_dict(),
            default_augment(dataset, "elastic", factor).to_dict(),
        )
        assert scaled.keys() == reference.keys()
        for key, value in reference.items():
            assert scaled[key] == pytest.approx(value), key


@pytest.mark.parametrize(("epochs", "gentle"), [(60, 10), (12, 2), (6, 1), (2, 0), (1, 0)])
def test_the_last_sixth_of_the_epochs_trains_on_gentler_images(epochs, gentle):
    augmenter = make_augmenter(default_augment("mnist", "elastic"))
    by_epoch = eased(augmenter, epochs)
    chosen = [by_epoch(epoch) for epoch in range(1, epochs + 1)]
    assert all(a is augmenter for a in chosen[: epochs - gentle])
    late = chosen[epochs - gentle :]
    assert len(late) == gentle and all(a is not augmenter for a in late)
    assert all(a.config == augmenter.config.scaled(EASE_FACTOR) for a in late)
    assert len({id(a) for a in late}) <= 1  # one gentle augmenter, its buffers reused


def test_gentler_images_move_less(digits):
    """The eased augmenter distorts the same digits less: its output is closer to them."""
    full = make_augmenter(default_augment("mnist", "elastic"))
    gentle = eased(full, 6)(6)
    X = _standardize(digits)
    change = {
        name: float(np.abs(aug(X.copy(), np.random.default_rng(0)) - X).mean())
        for name, aug in (("full", full), ("gentle", gentle))
    }
    assert 0 < change["gentle"] < 0.85 * change["full"]
