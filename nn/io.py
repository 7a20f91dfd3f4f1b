"""Saving and loading models: ``.npz`` weights plus JSON metadata beside them.

``save_model("m.npz", model, metadata)`` writes ``m.npz`` (arrays ``W0, b0, W1, b1,
...``, no pickles), then ``m.json`` (``format_version``, ``layer_sizes``,
``activation``, ``dtype``, the npz's ``weights_sha256`` and the caller's metadata:
training settings, preprocessing statistics, dataset), each atomically. The checksum
makes a pair left inconsistent, or a corrupted npz, fail on loading; :func:`load_model`
also checks every array's name, shape, dtype and finiteness.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nn.activations import ACTIVATIONS
from nn.errors import ConfigError, ModelFileError
from nn.model import MLP

FORMAT_VERSION = 1
RESERVED_KEYS = ("format_version", "layer_sizes", "activation", "dtype", "weights_sha256")
DTYPES = ("float32", "float64")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` (its folder must exist) so that it appears whole or not at all.

    A temporary file beside ``path`` is written, ``fsync``-ed (so the rename survives a
    power cut), given ``open()``'s mode rather than ``mkstemp``'s private ``0o600``, and
    renamed over ``path``. Raises :class:`OSError` with nothing left behind.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def metadata_path(path: str | Path) -> Path:
    """The JSON metadata file that belongs to the weights file ``path``."""
    return Path(path).with_suffix(".json")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _array_names(n_layers: int) -> list[str]:
    return [name for i in range(n_layers) for name in (f"W{i}", f"b{i}")]


def save_model(path: str | Path, model: MLP, metadata: dict[str, Any]) -> None:
    """Write ``model`` to ``path`` (.npz) and its metadata to ``path`` with suffix ``.json``.

    Parameters
    ----------
    path:
        Destination of the weights; its folder must exist.
    model:
        The network to save.
    metadata:
        JSON-serialisable extra fields (numpy scalars and arrays are converted),
        none of :data:`RESERVED_KEYS`.
    """
    path = Path(path)
    clash = sorted(set(metadata) & set(RESERVED_KEYS))
    if clash:
        raise ConfigError(f"metadata keys {clash} are reserved by the model file format")
    arrays = dict(zip(_array_names(len(model.weights)), model.parameters(), strict=True))

    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    npz_bytes = buf.getvalue()
    meta = {
        "format_version": FORMAT_VERSION,
        "layer_sizes": list(model.layer_sizes),
        "activation": model.activation,
        "dtype": str(model.dtype),
        "weights_sha256": hashlib.sha256(npz_bytes).hexdigest(),
        **metadata,
    }
    try:
        text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metadata for {path} is not JSON serialisable: {exc}") from exc
    try:
        write_bytes_atomic(path, npz_bytes)
        write_bytes_atomic(metadata_path(path), text.encode("utf-8"))
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot write the model files: {exc}") from exc


def weights_digest(model: MLP) -> str:
    """SHA-256 of the model's architecture and parameter values (not of a file's bytes):
    the same weights give the same digest whatever file holds them."""
    digest = hashlib.sha256(f"{model.activation}:{list(model.layer_sizes)}".encode())
    for array in model.parameters():
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def _read_metadata(path: Path) -> dict[str, Any]:
    mpath = metadata_path(path)
    try:
        text = mpath.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelFileError(
            f"{mpath}: metadata file is missing (expected beside {path})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{mpath}: cannot read metadata: {exc}") from exc
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{mpath}: metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{mpath}: metadata must be a JSON object, got {type(meta).__name__}")
    version = meta.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise ModelFileError(
            f"{mpath}: format_version={version!r} is not supported "
            f"(this code reads version {FORMAT_VERSION})"
        )
    sizes = meta.get("layer_sizes")
    if not (
        isinstance(sizes, list)
        and len(sizes) >= 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)
    ):
        raise ModelFileError(f"{mpath}: layer_sizes={sizes!r} must list >= 2 positive integers")
    if meta.get("activation") not in ACTIVATIONS:
        raise ModelFileError(
            f"{mpath}: activation={meta.get('activation')!r} is not one of {sorted(ACTIVATIONS)}"
        )
    if meta.get("dtype") not in DTYPES:
        raise ModelFileError(f"{mpath}: dtype={meta.get('dtype')!r} is not one of {list(DTYPES)}")
    digest = meta.get("weights_sha256")
    if not (isinstance(digest, str) and len(digest) == 64):
        raise ModelFileError(f"{mpath}: weights_sha256 is missing or malformed")
    return meta


def load_model(path: str | Path) -> tuple[MLP, dict[str, Any]]:
    """Load a model written by :func:`save_model`; returns ``(model, metadata)``, the
    metadata being the whole JSON object. Raises :class:`ModelFileError` naming the file
    on a missing, truncated, corrupted or inconsistent pair. Never unpickles.
    """
    path = Path(path)
    meta = _read_metadata(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: weights file is missing") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read weights: {exc}") from exc
    if hashlib.sha256(raw).hexdigest() != meta["weights_sha256"]:
        raise ModelFileError(
            f"{path}: SHA-256 does not match its metadata {metadata_path(path).name} "
            "(file truncated, corrupted, or the pair comes from different saves)"
        )
    sizes, dtype = meta["layer_sizes"], np.dtype(meta["dtype"])
    names = _array_names(len(sizes) - 1)
    expected = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        expected[f"W{i}"], expected[f"b{i}"] = (n_in, n_out), (n_out,)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            found = sorted(npz.files)
            if found != sorted(names):
                raise ModelFileError(
                    f"{path}: holds arrays {found}, expected {sorted(names)} for "
                    f"layer_sizes {sizes}"
                )
            arrays = {name: npz[name] for name in names}
    except ModelFileError:
        raise
    except ValueError as exc:  # object arrays need pickle: refused
        raise ModelFileError(f"{path}: refused to load ({exc})") from exc
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable .npz file ({exc})") from exc
    for name in names:
        a = arrays[name]
        if a.dtype != dtype:
            raise ModelFileError(f"{path}: array {name} has dtype {a.dtype}, expected {dtype}")
        if a.shape != expected[name]:
            raise ModelFileError(
                f"{path}: array {name} has shape {a.shape}, expected {expected[name]} "
                f"from layer_sizes {sizes}"
            )
        if not np.isfinite(a).all():
            raise ModelFileError(f"{path}: array {name} holds NaN or infinite values")
    model = MLP(
        [arrays[f"W{i}"] for i in range(len(sizes) - 1)],
        [arrays[f"b{i}"] for i in range(len(sizes) - 1)],
        meta["activation"],
    )
    return model, meta
