"""Champion/challenger model registry: a worse model never replaces a better one (pure, no Prefect).

Layout of a registry directory ``root``::

    root/.lock                        exclusive lock (filelock) taken by every write
    root/models/v0001/model.npz       weights, checked with nn.io.load_model before the rename
    root/models/v0001/model.json      its metadata
    root/models/v0001/metrics.json    the metrics given at registration
    root/models/v0001/version.json    {"version", "created_at", "dataset", "test_accuracy",
                                       "source", "weights_digest"}
    root/champion-<dataset>.json      {"version", "test_accuracy", "dataset", "promoted_at"}
    root/history.jsonl                every change of champion (tasks.registry.history)

Accuracies are only comparable on the same test set, so there is one champion per dataset
(the rule: :mod:`tasks.registry.promotion`); with no dataset named, "the champion" is the
most recently promoted one over all datasets. Versions and pointers appear by rename, so
readers need no lock; every write holds ``root/.lock``, and
:meth:`Registry.register_and_promote` does both under one lock, so two concurrent runs get
distinct versions and cannot both become champion. Weights already registered for their
dataset (same :func:`nn.io.weights_digest`) are not copied again.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from filelock import FileLock, Timeout

from nn.errors import ModelFileError
from nn.io import load_model, weights_digest
from tasks.errors import NoRegistryError
from tasks.files import write_directory_atomic, write_json_atomic
from tasks.registry.files import (
    MODEL_FILE,
    VERSION_FILE,
    Candidate,
    check_candidate,
    copy_file,
    default_registry_root,
    now,
    read_entry,
    read_json,
    read_pointer,
)
from tasks.registry.history import change_champion
from tasks.registry.promotion import (
    VERSION_RE,
    ModelVersion,
    PromotionDecision,
    RegistryError,
    SameSetScores,
    check_dataset,
    check_margin,
    decide,
    format_models_table,
    version_name,
)

__all__ = [
    "ModelVersion",
    "PromotionDecision",
    "Registry",
    "RegistryError",
    "default_registry_root",
    "format_models_table",
]

METADATA_FILE = "model.json"
METRICS_FILE = "metrics.json"
_TMP_PREFIX = ".tmp-"


class Registry:
    """A directory of trained models with one champion per dataset.

    ``root``: the registry directory (created on first write; ``None``:
    :func:`default_registry_root`). ``lock_timeout``: seconds a write waits for the lock
    before raising :class:`RegistryError`.
    """

    def __init__(self, root: Path | str | None = None, *, lock_timeout: float = 60.0) -> None:
        self.root = Path(root).expanduser() if root is not None else default_registry_root()
        self.models_dir = self.root / "models"
        self.lock_path = self.root / ".lock"
        self.lock_timeout = lock_timeout

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    # -- writing ---------------------------------------------------------------------------

    def register(self, model_path: Path | str, metrics: dict, *, dataset: str) -> ModelVersion:
        """Copy a saved model (``.npz`` and ``.json``) into the next version directory,
        atomically, under the lock; ``metrics`` hold the ``"test_accuracy"`` on ``dataset``.

        Raises
        ------
        RegistryError
            Missing or unloadable model files, metadata naming another dataset, bad
            metrics, lock timeout, or a failed copy; the registry is then unchanged.
        """
        candidate = check_candidate(model_path, metrics, dataset)
        with self.locked():
            return self._register_locked(candidate)[0]

    def register_and_promote(
        self,
        model_path: Path | str,
        metrics: dict,
        *,
        dataset: str,
        margin: float = 0.0,
        scores: SameSetScores | None = None,
    ) -> tuple[ModelVersion, PromotionDecision]:
        """Register a model and promote it if it is better, both under one lock; return the
        version (``is_champion`` reflects the decision) and the decision. If promotion
        fails, the model stays registered and the champion is unchanged."""
        margin = check_margin(margin)
        candidate = check_candidate(model_path, metrics, dataset)
        with self.locked():
            registered, is_new = self._register_locked(candidate)
            decision = self._promote_locked(registered, margin, scores, is_new)
        if decision.promoted:
            registered = replace(registered, is_champion=True)
        return registered, decision

    # -- reading ---------------------------------------------------------------------------

    def get(self, version: ModelVersion | str | int) -> ModelVersion:
        """Return the registered ``version`` (``"v0003"``, ``"3"`` or ``3``)."""
        name = version_name(version)
        directory = self.models_dir / name
        if not directory.is_dir():
            raise RegistryError(f"registry {self.root} has no model version {name}")
        entry = read_entry(directory)
        pointer = self.pointer_path(entry.dataset)
        is_champion = pointer.exists() and read_pointer(pointer, self.models_dir)["version"] == name
        return replace(entry, is_champion=is_champion)

    def list(self, dataset: str | None = None) -> list[ModelVersion]:
        """Return every registered version (of ``dataset`` if given), oldest first."""
        if not self.models_dir.is_dir():
            return []
        champions = {read_pointer(p, self.models_dir)["version"] for p in self._pointer_paths()}
        entries = []
        for directory in self.models_dir.iterdir():
            if directory.is_dir() and VERSION_RE.match(directory.name):
                entry = read_entry(directory)
                if dataset is None or entry.dataset == dataset:
                    is_champion = entry.version in champions
                    entries.append(replace(entry, is_champion=is_champion))
        return sorted(entries, key=lambda v: v.number)

    def champion(self, dataset: str | None = None) -> ModelVersion | None:
        """Return the champion of ``dataset`` (or the most recently promoted one), else None."""
        paths = [self.pointer_path(dataset)] if dataset is not None else self._pointer_paths()
        pointers = [read_pointer(p, self.models_dir) for p in paths if p.exists()]
        if not pointers:
            return None
        latest = max(pointers, key=lambda p: (p["promoted_at"], p["version"]))
        entry = read_entry(self.models_dir / latest["version"])
        return replace(entry, is_champion=True)

    def broken(self, version: ModelVersion) -> str | None:
        """Why the files of ``version`` fail their checks (``model.npz`` loads and holds the
        weights recorded at registration), or None when they pass."""
        try:
            model = load_model(version.path)[0]
        except ModelFileError as exc:
            return str(exc)
        recorded = read_json(version.path.parent / VERSION_FILE, "version record")
        if recorded.get("weights_digest", weights_digest(model)) != weights_digest(model):
            return f"{version.path}: its weights are not those registered as {version.version}"
        return None

    def sound_champion(self, dataset: str) -> ModelVersion | None:
        """The champion of ``dataset`` unless its files are broken (then None)."""
        champion = self.champion(dataset)
        return None if champion is None or self.broken(champion) else champion

    def apply_rule(
        self,
        challenger: ModelVersion,
        margin: float,
        scores: SameSetScores | None = None,
        duplicate: bool = False,
    ) -> PromotionDecision:
        """The promotion rule for ``challenger`` against its dataset's champion, as now; a
        broken champion (:meth:`broken`) counts as absent, and the reason says so."""
        champion = self.champion(challenger.dataset)
        same = champion is None or champion.version == challenger.version
        why = None if same else self.broken(champion)
        if why is None:
            return decide(challenger, champion, margin, scores, duplicate=duplicate)
        decision = decide(challenger, None, margin, duplicate=duplicate)
        reason = (
            f"champion {champion.version} is broken ({why}), so it counts as absent and "
            f"{challenger.version} replaces it"
        )
        if duplicate:
            reason = f"same weights as {challenger.version}, registered before; {reason}"
        return replace(
            decision,
            reason=reason,
            champion_version=champion.version,
            champion_accuracy=champion.test_accuracy,
        )

    def model_path(
        self, version: ModelVersion | str | int | None = None, *, dataset: str | None = None
    ) -> Path:
        """Return the ``model.npz`` of ``version``, or of the champion (of ``dataset`` if
        given) when ``version`` is None; a :class:`RegistryError` if there is none."""
        if version is not None:
            return self.get(version).path
        champion = self.champion(dataset)
        if champion is None:
            scope = f" for dataset '{dataset}'" if dataset is not None else ""
            raise RegistryError(
                f"registry {self.root} has no champion{scope} yet; train one with `mnist-flow run`"
            )
        return champion.path

    def pointer_path(self, dataset: str) -> Path:
        """Return the champion pointer file of ``dataset``."""
        return self.root / f"champion-{check_dataset(dataset)}.json"

    # -- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, create: bool = True) -> Iterator[None]:
        """Hold the registry's lock (every write does); ``create``: make a missing registry,
        else a missing one is a :class:`RegistryError`, as is a lock that cannot be taken."""
        if not create and not self.models_dir.is_dir():
            raise NoRegistryError(
                f"{{registry_dir:{self.root}}}: no registry there; nothing changed"
            )
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"cannot create registry {self.root}: {exc}") from exc
        lock = FileLock(self.lock_path, timeout=self.lock_timeout)
        try:
            lock.acquire()
        except Timeout:  # a TimeoutError, hence an OSError: caught first
            raise RegistryError(
                f"registry {self.root}: timed out after {self.lock_timeout:g} s waiting for lock "
                f"{self.lock_path}; another process holds it"
            ) from None
        except OSError as exc:
            raise RegistryError(
                f"registry {self.root}: cannot take lock {self.lock_path}: {exc}"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def _same_weights(self, candidate: Candidate) -> ModelVersion | None:
        """The registered version of ``candidate``'s dataset with the same weights, if any."""
        for directory in sorted(self.models_dir.glob("v*")):
            if directory.is_dir() and VERSION_RE.match(directory.name):
                record = read_json(directory / VERSION_FILE, "version record")
                if (
                    record.get("weights_digest") == candidate.digest
                    and record.get("dataset") == candidate.dataset
                ):
                    return read_entry(directory)
        return None

    def _next_name(self) -> str:
        names = self.models_dir.iterdir() if self.models_dir.is_dir() else []
        numbers = [int(d.name[1:]) for d in names if VERSION_RE.match(d.name)]
        return f"v{max(numbers, default=0) + 1:04d}"

    def _register_locked(self, candidate: Candidate) -> tuple[ModelVersion, bool]:
        """Register ``candidate`` unless its weights already are; return (version, is_new)."""
        for stale in self.models_dir.glob(f"{_TMP_PREFIX}*"):  # only crashed writers leave these
            shutil.rmtree(stale, ignore_errors=True)
        existing = self._same_weights(candidate)
        if existing is not None:
            return existing, False
        model_path, meta_path, dataset, accuracy, metrics, digest = candidate
        name = self._next_name()
        final = self.models_dir / name
        entry = {
            "version": name,
            "created_at": now(),
            "dataset": dataset,
            "test_accuracy": accuracy,
            "source": str(model_path.resolve()),
            "weights_digest": digest,
        }
        try:  # a registered version is never overwritten: no replace_existing
            with write_directory_atomic(final, prefix=_TMP_PREFIX) as tmp:
                copy_file(model_path, tmp / MODEL_FILE)
                copy_file(meta_path, tmp / METADATA_FILE)
                load_model(tmp / MODEL_FILE)  # the copy is complete, consistent and loadable
                (tmp / METRICS_FILE).write_text(metrics, encoding="utf-8")
                write_json_atomic(tmp / VERSION_FILE, entry)
        except (OSError, ModelFileError) as exc:
            raise RegistryError(
                f"could not register {model_path} as {final}: {exc}; the registry is unchanged"
            ) from exc
        return read_entry(final), True

    def _promote_locked(
        self,
        challenger: ModelVersion,
        margin: float,
        scores: SameSetScores | None = None,
        is_new: bool = True,
    ) -> PromotionDecision:
        decision = self.apply_rule(challenger, margin, scores, duplicate=not is_new)
        if decision.promoted:
            change_champion(
                self, challenger, previous=decision.champion_version, action="auto",
                reason=decision.reason,
            )  # fmt: skip
        return decision

    def _pointer_paths(self) -> list[Path]:
        return sorted(self.root.glob("champion-*.json")) if self.root.is_dir() else []
