"""Data augmentation of training images: shifts, small affine maps and elastic distortions.

Every training image is shown slightly differently at every epoch (Simard, Steinkraus
and Platt 2003), vectorised over the minibatch: each image takes a random warp from a
bank of :data:`BANK_SIZE` drawn once (:func:`warp_bank`), and all images are resampled
at once (:mod:`tasks.fitting.warp`). For an image ``(H, W)`` with centre ``c``, output
pixel ``p = (row, col)`` is read from::

    source(p) = c + A (p - c) - t + d(p)

where ``A = R(theta) / s`` (rotation, zoom, the ``x`` column negated for a flip), ``t``
the translation of the content ``(down, right)`` in pixels and ``d`` an elastic field:
uniform noise in ``[-1, 1]`` smoothed by a Gaussian of ``sigma`` pixels, times ``alpha``.
Pixels from outside the image take ``fill``, by default each image's minimum (its
background, standardised or not); bilinear interpolation keeps the output within the
input's value range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nn.errors import ConfigError
from tasks.data.datasets import get_dataset
from tasks.fitting.warp import (
    SamplePoints,
    WarpBank,
    Workspace,
    elastic_field,
    erase_rectangles,
    sample_points,
)

KINDS = ("none", "shift", "affine", "elastic")
"""Augmentation kinds, each one adding to the previous: ``shift`` translates,
``affine`` also rotates and zooms, ``elastic`` also applies an elastic field."""

_FAMILY_MAGNITUDES = {  # shift (px), rotation (degrees), zoom (+-), elastic alpha, flips
    "digits": (2.0, 10.0, 0.1, 8.0, False),
    "clothes": (0.5, 2.5, 0.025, 2.0, True),
}


@dataclass(frozen=True)
class AugmentConfig:
    """Settings of the random transformation applied to every training image.

    Parameters
    ----------
    kind:
        One of :data:`KINDS`; strength settings the kind does not use are ignored.
    max_shift:
        Largest translation along each axis, in pixels. ``"shift"`` moves by whole
        pixels (``max_shift`` rounded, halves up; no blur), the other kinds sub-pixel.
    max_rotation:
        Largest rotation, in degrees, drawn uniformly in ``[-max_rotation, max_rotation]``.
    scale:
        ``(low, high)`` range of the zoom factor, drawn uniformly; ``(1, 1)`` disables it.
    elastic_alpha, elastic_sigma:
        Magnitude of the elastic field and the Gaussian's standard deviation, in pixels.
    hflip:
        Mirror half of the images left-right (every kind except ``"none"``).
    erase:
        Probability per image of random erasing (Zhong et al. 2017, see
        :func:`tasks.fitting.warp.erase_rectangles`), every kind except ``"none"``.
    fill:
        Value of pixels read from outside the image; ``None``: each image's minimum.
    image_shape:
        ``(height, width)`` of the images; a batch row has ``height * width`` features.
    """

    kind: str = "none"
    max_shift: float = 2.0
    max_rotation: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    elastic_alpha: float = 8.0
    elastic_sigma: float = 3.0
    hflip: bool = False
    erase: float = 0.0
    fill: float | None = None
    image_shape: tuple[int, int] = field(default=(28, 28))

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r} is not one of {', '.join(KINDS)}")
        shape = tuple(self.image_shape)
        if len(shape) != 2 or not all(isinstance(v, int | np.integer) and v >= 2 for v in shape):
            raise ConfigError(f"image_shape={self.image_shape!r} must be two integers >= 2")
        object.__setattr__(self, "image_shape", (int(shape[0]), int(shape[1])))
        _check_range("max_shift", self.max_shift, 0.0, float(min(shape)))
        _check_range("max_rotation", self.max_rotation, 0.0, 180.0)
        if len(tuple(self.scale)) != 2:
            raise ConfigError(f"scale={self.scale!r} must be a (low, high) pair")
        low, high = (float(v) for v in self.scale)
        _check_range("scale[0]", low, 0.1, 10.0)
        _check_range("scale[1]", high, low, 10.0)
        object.__setattr__(self, "scale", (low, high))
        _check_range("elastic_alpha", self.elastic_alpha, 0.0, 1000.0)
        _check_range("elastic_sigma", self.elastic_sigma, 0.1, 100.0)
        if not isinstance(self.hflip, bool | np.bool_):
            raise ConfigError(f"hflip={self.hflip!r} must be a bool")
        _check_range("erase", self.erase, 0.0, 1.0)
        if self.fill is not None and not math.isfinite(self.fill):
            raise ConfigError(f"fill={self.fill!r} must be a finite number or None")

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready settings; ``AugmentConfig(**d)`` rebuilds them."""
        return {
            "kind": self.kind,
            "max_shift": float(self.max_shift),
            "max_rotation": float(self.max_rotation),
            "scale": list(self.scale),
            "elastic_alpha": float(self.elastic_alpha),
            "elastic_sigma": float(self.elastic_sigma),
            "hflip": bool(self.hflip),
            "erase": float(self.erase),
            "fill": None if self.fill is None else float(self.fill),
            "image_shape": list(self.image_shape),
        }

    def scaled(self, factor: float) -> AugmentConfig:
        """The same augmentation with every magnitude (shift, rotation, zoom, elastic
        ``alpha``) times ``factor``, as :func:`default_augment`'s ``strength`` scales them."""
        low, high = self.scale
        return dataclasses.replace(
            self,
            max_shift=self.max_shift * factor,
            max_rotation=self.max_rotation * factor,
            scale=(1.0 - (1.0 - low) * factor, 1.0 + (high - 1.0) * factor),
            elastic_alpha=self.elastic_alpha * factor,
        )

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> AugmentConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ConfigError."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown augmentation settings: {', '.join(sorted(unknown))}")
        values = dict(data)
        for key in ("scale", "image_shape"):
            if key in values:
                values[key] = tuple(values[key])  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ConfigError(f"{name}={value!r} must be a number in [{low:g}, {high:g}]")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{name}={value!r} is outside the allowed range [{low:g}, {high:g}]")


def default_augment(dataset: str, kind: str, strength: float = 1.0) -> AugmentConfig:
    """The recommended settings of one augmentation ``kind`` for a dataset.

    The dataset's ``family`` decides: digits are never mirrored; clothes, centred and
    scaled alike in every image, are mirrored and get a quarter of the digits' rotations
    and zooms and half-pixel shifts. ``strength`` in ``[0, 3]`` multiplies every magnitude
    (one knob for a hyperparameter search).

    Raises
    ------
    ConfigError
        If ``dataset``, ``kind`` or ``strength`` is not allowed.
    """
    _check_range("strength", strength, 0.0, 3.0)
    family = get_dataset(dataset).family
    shift, rotation, zoom, alpha, hflip = _FAMILY_MAGNITUDES[family]
    return AugmentConfig(
        kind=kind,
        max_shift=shift * strength,
        max_rotation=rotation * strength,
        scale=(1.0 - zoom * strength, 1.0 + zoom * strength),
        elastic_alpha=alpha * strength,
        elastic_sigma=3.0,
        hflip=hflip,
    )


def random_affine(
    config: AugmentConfig, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one inverse affine map per image.

    Returns
    -------
    matrices:
        ``(n, 2, 2)`` float64, ``A`` in ``source = c + A (p - c) - t``.
    shifts:
        ``(n, 2)`` float64, ``t``: how far the content moves, ``(down, right)`` in pixels.
    """
    if config.kind == "shift":
        whole = math.floor(config.max_shift + 0.5)
        shifts = rng.integers(-whole, whole + 1, size=(n, 2)).astype(np.float64)
    else:
        shifts = rng.uniform(-config.max_shift, config.max_shift, size=(n, 2))
    matrices = np.broadcast_to(np.eye(2), (n, 2, 2)).copy()
    if config.kind in ("affine", "elastic"):
        theta = np.deg2rad(rng.uniform(-config.max_rotation, config.max_rotation, size=n))
        zoom = rng.uniform(config.scale[0], config.scale[1], size=n)
        cos, sin = np.cos(theta) / zoom, np.sin(theta) / zoom
        matrices = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], axis=1)
    if config.hflip:
        flip = rng.random(n) < 0.5
        matrices[flip, :, 1] *= -1.0
    return matrices, shifts


BANK_SIZE = 4096
"""Warps in an augmenter's bank: 38.5 MB of :class:`~tasks.fitting.warp.SamplePoints` for
28x28 images. On validation (MNIST, Fashion-MNIST, and 8,000 MNIST images) the bank
scored what drawing the maps anew for every minibatch did (``docs/results.md``); a
minibatch then costs one gather per interpolation corner."""
BANK_SEED = 0
"""Seed of the bank's own generator: the bank depends on the settings only, so a
training run resumed from a checkpoint meets the same warps."""


def warp_bank(config: AugmentConfig, size: int = BANK_SIZE, seed: int = BANK_SEED) -> WarpBank:
    """``size`` random warps of ``config`` (:func:`random_affine` maps, plus an elastic field
    for ``"elastic"``), drawn from a generator of their own seeded with ``seed``."""
    rng = np.random.default_rng(seed)
    order = 0 if config.kind == "shift" else 1
    parts = []
    for start in range(0, size, 512):
        n = min(512, size - start)
        matrices, shifts = random_affine(config, n, rng)
        displacement = None
        if config.kind == "elastic" and config.elastic_alpha > 0:
            displacement = elastic_field(
                n, config.image_shape, config.elastic_alpha, config.elastic_sigma, rng
            )
        parts.append(sample_points(matrices, shifts, displacement, config.image_shape, order))
    points = SamplePoints(*(np.concatenate(arrays) for arrays in zip(*parts, strict=True)))
    return WarpBank(points, order)


class Augmenter:
    """Picklable ``augmenter(X, rng) -> X2`` for the ``augment=`` hook of ``nn.train.train``.

    ``X`` is a minibatch ``(batch, H * W)`` float32, returned in the same shape and dtype;
    which warp of the bank (:func:`warp_bank`, built on the first call) each image takes,
    and the random erasing, come from ``rng``. Buffers are reused between calls, so one
    instance must not be called from two threads at once (a pickled copy is independent).
    """

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config
        self._workspace = Workspace()
        self._bank: WarpBank | None = None

    def __getstate__(self) -> dict[str, object]:
        return {"config": self.config}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(state["config"])  # type: ignore[misc, arg-type]

    def __call__(self, X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.config
        height, width = cfg.image_shape
        if X.ndim != 2 or X.shape[1] != height * width:
            raise ConfigError(
                f"augmenter expects a (batch, {height * width}) array for image_shape="
                f"{cfg.image_shape}, got shape {X.shape}"
            )
        n = X.shape[0]
        images = np.asarray(X, dtype=np.float32).reshape(n, height, width)
        if self._bank is None:
            self._bank = warp_bank(cfg)
        out = self._bank.apply(images, rng, cfg.fill, self._workspace)
        if cfg.erase > 0:
            fill = images.reshape(n, -1).min(axis=1) if cfg.fill is None else cfg.fill
            erase_rectangles(out, cfg.erase, fill, rng)
        return out.reshape(n, height * width)

    def __repr__(self) -> str:
        return f"Augmenter({self.config!r})"


def make_augmenter(config: AugmentConfig) -> Augmenter | None:
    """The minibatch transformation for ``config``, or ``None`` for ``kind="none"``."""
    if config.kind == "none":
        return None
    return Augmenter(config)


EASE_SHARE = 1 / 6
"""Share of a run's epochs, at its end, trained with gentler augmentation (:func:`eased`)."""
EASE_FACTOR = 0.7
"""The magnitudes of the augmentation in those epochs, as a share of the run's."""


def eased(augmenter: Augmenter, epochs: int) -> Callable[[int], Augmenter]:
    """Each 1-based epoch's augmenter in a run of ``epochs``: ``augmenter``, then for the
    last :data:`EASE_SHARE` of the epochs (rounded: 10 of 60, none of 1 or 2) the same
    augmentation at :data:`EASE_FACTOR` of its magnitudes.

    The network ends its training on images closer to the undistorted ones it will be
    scored on, while the learning rate decays to zero (``nn.train.train``'s
    ``augment_by_epoch``). On MNIST's validation split this gained 0.017 points over 16
    seeds (12 higher, 3 lower), against the same runs' last epochs at full strength
    (``docs/results.md``).
    """
    gentle_from = epochs - round(epochs * EASE_SHARE)
    gentle = Augmenter(augmenter.config.scaled(EASE_FACTOR))
    return lambda epoch: augmenter if epoch <= gentle_from else gentle
