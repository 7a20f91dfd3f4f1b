"""The registry of known datasets and the files a fetch returns.

Each dataset has four IDX files (train/test images/labels), its mirrors in order, and
the SHA-256 and length of each file's decompressed content (the same whatever the
compression, so any mirror's or a recompressed copy verifies; :mod:`tasks.data.verify`).
The ``idx`` dataset reads any folder of the four files without checksums. Pure: no Prefect.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_cache_path

from nn.errors import ConfigError
from tasks.errors import CacheError, DataError

ROLES: tuple[str, ...] = ("train_images", "train_labels", "test_images", "test_labels")
#: Standard file stems per role; a file may add ``.gz`` and a prefix (``emnist-digits-``).
STEMS: dict[str, tuple[str, ...]] = {
    "train_images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train_labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test_images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}
CACHE_ENV = "MNIST_FLOW_CACHE"


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset (``role``: one of :data:`ROLES`; ``filename``: its ``.gz``
    name on the mirrors and in the cache) and what verifies it, each None when unknown:
    ``sha256`` and ``size`` (bytes) of the decompressed content, ``md5`` of the ``.gz``."""

    role: str
    filename: str
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def kind(self) -> str:
        """``"images"`` or ``"labels"``."""
        return self.role.split("_")[1]


@dataclass(frozen=True)
class DatasetSpec:
    """A known dataset: ``name`` (``--dataset``), ``title``, its four ``files``, the
    ``mirrors`` (base URLs, in order) and ``local_dirs`` (looked in first), ``n_classes``
    (None: read from the labels), ``class_names`` (empty: ``"0"``, ``"1"``, ...),
    ``image_shape`` ``(rows, cols)``, and ``family``: ``"digits"`` or ``"clothes"``, which
    picks the augmentation defaults and the training recipe (:mod:`tasks.settings.recipes`).
    """

    name: str
    title: str
    files: tuple[FileSpec, ...]
    mirrors: tuple[str, ...] = ()
    local_dirs: tuple[str, ...] = ()
    n_classes: int | None = 10
    class_names: tuple[str, ...] = ()
    image_shape: tuple[int, int] = (28, 28)
    family: str = "digits"

    def file(self, role: str) -> FileSpec:
        """Return the spec of the file playing ``role``."""
        return next(f for f in self.files if f.role == role)

    def names_of_classes(self, n_classes: int) -> list[str]:
        """Display names of ``n_classes`` classes: the known names, else ``"0"``, ``"1"``, ..."""
        return list(self.class_names) or [str(i) for i in range(n_classes)]


def _files(
    checks: dict[str, tuple[str | None, str | None, int | None]],
) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(role, STEMS[role][0] + ".gz", *checks.get(role, (None, None, None)))
        for role in ROLES
    )


DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST handwritten digits",
        files=_files(
            {
                # (sha256 and length of the decompressed content, md5 of the published .gz)
                "train_images": (
                    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    47040016,
                ),
                "train_labels": (
                    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    60008,
                ),
                "test_images": (
                    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                    "9fb629c4189551a2d022fa330f9573f3",
                    7840016,
                ),
                "test_labels": (
                    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    10008,
                ),
            }
        ),
        class_names=tuple(str(digit) for digit in range(10)),
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST (Zalando)",
        files=_files(
            {
                "train_images": (
                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    47040016,
                ),
                "train_labels": (
                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                    "25c81989df183df01b3e8a0aad5dffbe",
                    60008,
                ),
                "test_images": (
                    "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                    "bef4ecab320f06d8554ea6380940ec79",
                    7840016,
                ),
                "test_labels": (
                    "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    10008,
                ),
            }
        ),
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        # Debian's package dataset-fashion-mnist (recompressed: verified by SHA-256).
        local_dirs=("/usr/share/datasets/fashion-mnist",),
        class_names=(
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
        family="clothes",
    ),
    "idx": DatasetSpec(
        name="idx",
        title="any folder of the four IDX files (--data-dir), not verified by checksum",
        files=_files({}),
        n_classes=None,
    ),  # usually digits (KMNIST, EMNIST, scans): the digits' recipe and augmentation
}


def get_dataset(name: str) -> DatasetSpec:
    """Return the registered dataset ``name``.

    Raises
    ------
    ConfigError
        Unknown name; the message lists the known ones.
    """
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise ConfigError(f"dataset: unknown dataset {name!r}; choose one of {known}") from None


@dataclass(frozen=True)
class DatasetFiles:
    """The four verified IDX files of a dataset (``name``: a key of :data:`DATASETS`), as
    a fetch returns them: one path per role (gzip-compressed or not), ``checksums`` (role ->
    SHA-256 of the decompressed content), ``n_classes`` (labels in ``[0, n_classes)``),
    ``image_shape`` ``(rows, cols)`` and ``sources`` (role -> cache, folder or URL, for logs).
    """

    name: str
    train_images: Path
    train_labels: Path
    test_images: Path
    test_labels: Path
    checksums: dict[str, str] = field(hash=False)
    n_classes: int = 10
    image_shape: tuple[int, int] = (28, 28)
    sources: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        if sorted(self.checksums) != sorted(ROLES):
            raise DataError(f"checksums: need one SHA-256 per role {ROLES}, got {self.checksums}")
        if self.n_classes < 2:
            raise DataError(f"n_classes must be >= 2, got {self.n_classes}")

    def path(self, role: str) -> Path:
        """Return the path of the file playing ``role`` (one of :data:`ROLES`)."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")
        return Path(getattr(self, role))

    @property
    def paths(self) -> dict[str, Path]:
        """Role -> path."""
        return {role: self.path(role) for role in ROLES}

    @property
    def fingerprint(self) -> str:
        """One SHA-256 identifying the dataset's content (for model metadata and cache keys)."""
        return fingerprint(self.checksums)


def fingerprint(checksums: dict[str, str]) -> str:
    """Return one SHA-256 over the per-role SHA-256 checksums of a dataset's four files."""
    text = "\n".join(f"{role} {checksums[role]}" for role in ROLES)
    return hashlib.sha256(text.encode()).hexdigest()


def default_cache_dir() -> Path:
    """``$MNIST_FLOW_CACHE`` if set and non-empty, else ``platformdirs.user_cache_path``."""
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    return user_cache_path("mnist-flow", appauthor=False)


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None) -> Path:
    """Return ``cache_dir`` as an absolute path, or the default cache directory."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return path.absolute()


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and check it is a writable directory.

    Raises
    ------
    CacheError
        The path exists and is not a directory, or cannot be created or written.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise CacheError(f"cache directory {path}: exists and is not a directory") from None
    except OSError as exc:
        raise CacheError(
            f"cache directory {path}: cannot be created ({exc.strerror or exc}); "
            f"choose another with cache_dir= or {CACHE_ENV}"
        ) from None
    if not path.is_dir():
        raise CacheError(f"cache directory {path}: exists and is not a directory")
    if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
        raise CacheError(
            f"cache directory {path}: not readable and writable; "
            f"choose another with cache_dir= or {CACHE_ENV}"
        )
    return path
