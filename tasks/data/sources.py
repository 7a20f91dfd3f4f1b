"""Fetch a dataset's four files: from the cache, local folders, then mirrors.

A mirror whose host cannot be reached is not tried again for the other files, and one
:class:`~tasks.errors.FetchError` lists every attempt compactly. Downloads are verified
before an atomic rename into the cache; a corrupt cache entry is dropped and fetched
again. Pure: no Prefect.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path

from tasks.data.datasets import (
    ROLES,
    STEMS,
    DatasetFiles,
    DatasetSpec,
    FileSpec,
    ensure_dir,
    get_dataset,
    resolve_cache_dir,
)
from tasks.data.download import DownloadFailed, Logger, download
from tasks.data.idx import IDXFile, check_pair, infer_n_classes
from tasks.data.verify import record_verified, verified_before, verify_file
from tasks.errors import DataDirError, DataError, FetchError, IDXFormatError, SettingsHint


def dataset_cache_dir(spec: DatasetSpec, cache_root: Path, mirror: str | None) -> Path:
    """Return the cache folder of a dataset (for ``idx``, one per mirror URL)."""
    if spec.name != "idx":
        return cache_root / spec.name
    tag = hashlib.sha256(str(mirror).encode()).hexdigest()[:16]
    return cache_root / "idx" / tag


def find_in_dir(folder: Path, role: str) -> Path:
    """Return the one file of ``folder`` playing ``role``: a name of :data:`STEMS`,
    optionally ``.gz``, optionally after a prefix (``emnist-digits-``).

    Raises DataError when the folder does not exist, or no file or several files match.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: no such directory")
    matches = sorted(
        {
            p
            for stem in STEMS[role]
            for pattern in (f"*{stem}", f"*{stem}.gz")
            for p in folder.glob(pattern)
        }
    )
    if not matches:
        names = " or ".join(f"{s}[.gz]" for s in STEMS[role])
        raise DataError(f"{folder}: no file named {names}")
    if len(matches) > 1:
        listed = ", ".join(p.name for p in matches)
        raise DataError(f"{folder}: several files could be the {role.replace('_', ' ')}: {listed}")
    return matches[0]


def _mirror_url(base: str, filename: str) -> str:
    return base if base.endswith(filename) else base.rstrip("/") + "/" + filename


def fetch_files(
    dataset: str = "mnist",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    mirror: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    local_dirs: Sequence[str | os.PathLike[str]] | None = None,
    logger: Logger | None = None,
    timeout: float = 60.0,
    retries: int = 2,
    sleep: Callable[[float], None] = time.sleep,
) -> DatasetFiles:
    """Find, download if needed, and verify the four files of ``dataset``.

    ``data_dir`` (a folder of the four files, used in place; required for ``idx`` unless
    ``mirror`` is given) is the only source when given. Otherwise, for each file: the cache
    (``cache_dir``, default :func:`default_cache_dir`); the dataset's local folders; the
    base URL ``mirror`` (``http(s)://`` or ``file://``); the built-in mirrors. A failing
    source is logged and the next one tried. ``mirrors`` and ``local_dirs`` replace the
    built-in ones (tests); ``timeout``, ``retries``, ``sleep`` go to
    :func:`tasks.data.download.download`.

    Raises DataError (``data_dir`` missing or lacking a file), FetchError (a file from no
    source; lists every attempt), CacheError (unusable cache), IDXFormatError (the files
    disagree: counts, labels out of range, image shapes).
    """
    spec = get_dataset(dataset)
    log = logger or logging.getLogger(__name__)
    if spec.name == "idx" and data_dir is None and mirror is None:
        raise SettingsHint(
            "dataset 'idx' reads a folder of IDX files: give {data_dir:FOLDER} (or {mirror:URL})"
        )
    if data_dir is not None:
        return _from_folder(spec, Path(data_dir).expanduser(), log)
    folders = [Path(d) for d in (spec.local_dirs if local_dirs is None else local_dirs)]
    urls = [mirror] if mirror else []
    urls += list(spec.mirrors if mirrors is None else mirrors)
    cache = None
    if spec.name != "idx" or mirror:
        cache = ensure_dir(dataset_cache_dir(spec, resolve_cache_dir(cache_dir), mirror))
        unchanged = verified_before(cache, spec)
        if unchanged is not None:
            for path in unchanged.paths.values():
                log.info("%s: verified before, unchanged since, from cache (%s)", path.name, path)
            return unchanged

    get = partial(download, logger=log, timeout=timeout, retries=retries, sleep=sleep)
    found: dict[str, IDXFile] = {}
    sources: dict[str, str] = {}
    failures: dict[str, list[tuple[str, str]]] = {}
    unreachable: dict[str, str] = {}  # source -> why its host cannot be reached at all
    transient = False
    for fs in spec.files:
        tried: list[tuple[str, str]] = []
        for label, source, attempt in _sources(fs, cache, folders, urls, get):
            if source in unreachable:  # the same host failed for an earlier file
                tried.append((source, unreachable[source]))
                continue
            try:
                found[fs.role] = attempt()
            except (DataError, DownloadFailed) as exc:
                transient = transient or getattr(exc, "transient", False)
                if isinstance(exc, _NotCached):
                    continue  # an expected miss: neither a warning nor worth listing
                tried.append((source, str(exc)))
                if getattr(exc, "unreachable", False):
                    unreachable[source] = str(exc)
                    log.warning(
                        "%s failed: %s; not trying this source for the other files", label, exc
                    )
                else:
                    log.warning(
                        "%s: %s failed: %s; trying the next source", fs.filename, label, exc
                    )
                continue
            sources[fs.role] = label
            log.info("%s: verified, from %s (%s)", fs.filename, label, found[fs.role].path)
            break
        else:
            failures[fs.filename] = tried
    if failures:
        raise FetchError(_failure_message(spec, failures), transient=transient)
    files = _assemble(spec, found, sources)
    if cache is not None and all(path.parent == cache for path in files.paths.values()):
        record_verified(cache, files, spec)
    return files


def _from_folder(spec: DatasetSpec, folder: Path, log: Logger) -> DatasetFiles:
    """The four files of the folder the user gave, in place: no other source is tried."""
    found: dict[str, IDXFile] = {}
    for fs in spec.files:
        try:
            found[fs.role] = verify_file(find_in_dir(folder, fs.role), fs)
        except DataError as exc:
            reason = str(exc).removeprefix(f"{folder}: ")
            raise DataDirError(f"{{data_dir:{folder}}}: {reason}") from None
        log.info("%s: verified, from folder (%s)", fs.filename, found[fs.role].path)
    return _assemble(spec, found, dict.fromkeys(found, "folder"))


class _NotCached(DataError):
    """The file is not in the cache yet (an expected miss, not worth a warning)."""


def _sources(
    fs: FileSpec,
    cache: Path | None,
    folders: list[Path],
    urls: list[str],
    get: Callable[[str, Path], Path],
) -> Iterator[tuple[str, str, Callable[[], IDXFile]]]:
    """Yield ``(label, source, attempt)`` for each source of one file, in order: ``label``
    names the attempt (the file's URL), ``source`` is the same for every file (base URL)."""
    if cache is not None:
        cached = cache / fs.filename

        def from_cache() -> IDXFile:
            if not cached.exists():
                raise _NotCached(f"{cached}: not in the cache")
            try:
                return verify_file(cached, fs)
            except DataError:
                cached.unlink(missing_ok=True)  # corrupt cache entry: drop it, fetch again
                raise

        yield "cache", "cache", from_cache
    for folder in folders:
        yield (
            "folder",
            "folder",
            lambda folder=folder: verify_file(find_in_dir(folder, fs.role), fs),
        )
    for base in urls:
        url = _mirror_url(base, fs.filename)

        def from_url(url: str = url) -> IDXFile:
            if cache is None:
                raise DataError("no cache directory to download into")
            tmp = get(url, cache)
            try:
                info = verify_file(tmp, fs)
                final = cache / fs.filename
                os.replace(tmp, final)
            except DataError as exc:
                message = str(exc).replace(str(tmp), "the downloaded file")
                raise type(exc)(message) from None
            finally:
                tmp.unlink(missing_ok=True)
            return replace(info, path=final)

        yield url, base, from_url


def _failure_message(spec: DatasetSpec, failures: dict[str, list[tuple[str, str]]]) -> str:
    """What was tried for each missing file, on one line: files that failed alike share a
    heading, consecutive sources that failed with the same reason share an item."""
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for filename, tried in failures.items():
        groups.setdefault(tuple(tried), []).append(filename)
    lines = [f"could not fetch dataset {spec.name!r}:"]
    for tried, filenames in groups.items():
        if len(filenames) == len(spec.files) > 1:
            heading = f"all {len(filenames)} files"
        else:
            heading = ", ".join(filenames)
        merged: list[tuple[list[str], str]] = []
        for source, reason in tried:
            if merged and merged[-1][1] == reason and source.startswith(("http", "file")):
                merged[-1][0].append(source)
            else:
                merged.append(([source], reason))
        items = [f"{', '.join(names)}: {reason}" for names, reason in merged]
        items = items or ["no source to try"]
        lines.append(f"{heading}: every source failed:")
        lines += [f"- {item}{';' if i < len(items) - 1 else '.'}" for i, item in enumerate(items)]
    tried = " ".join(lines).replace("{", "{{").replace("}", "}}")  # a Worded template
    return (  # one line: logs and the Prefect UI show a newline as "\\n"
        f"{tried} Pass {{data_dir:FOLDER}} holding the four IDX files, or {{mirror:URL}} of a "
        "reachable copy (http(s):// or file://)."
    )


def _assemble(
    spec: DatasetSpec, found: dict[str, IDXFile], sources: dict[str, str]
) -> DatasetFiles:
    """Check that the four files agree and build the :class:`DatasetFiles`."""
    n_classes = spec.n_classes
    if n_classes is None:
        labels = found["train_labels"]
        n_classes = infer_n_classes(labels.array, str(labels.path))
    for split in ("train", "test"):
        images, labels = found[f"{split}_images"], found[f"{split}_labels"]
        check_pair(
            images.array,
            labels.array,
            n_classes=n_classes,
            images_name=str(images.path),
            labels_name=str(labels.path),
        )
    train_shape = found["train_images"].array.shape[1:]
    test_shape = found["test_images"].array.shape[1:]
    if train_shape != test_shape:
        raise IDXFormatError(
            f"{found['test_images'].path}: images are {test_shape[0]}x{test_shape[1]} but the "
            f"training images ({found['train_images'].path}) are {train_shape[0]}x{train_shape[1]}"
        )
    return DatasetFiles(
        name=spec.name,
        **{role: found[role].path for role in ROLES},
        checksums={role: found[role].sha256 for role in ROLES},
        n_classes=n_classes,
        image_shape=(int(train_shape[0]), int(train_shape[1])),
        sources=sources,
    )
