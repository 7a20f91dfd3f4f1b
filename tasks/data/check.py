"""The data check before a retraining: is the newly added data usable?

"New" data are the added batches the champion did not train on. The check reports their
per-class counts, their ink area and mean intensity against the base training set's
(two-sample Kolmogorov-Smirnov test), and the champion's accuracy on them. The gate stops
the retraining when the champion scores less than :data:`GATE_SHARE` of its test accuracy
on at least :data:`GATE_MIN_IMAGES` new images: shuffled labels leave it near chance,
while data that is merely different lowers it far less. Pure: no Prefect.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nn.io import load_model
from tasks.data.datasets import DatasetFiles
from tasks.data.idx import read_idx
from tasks.data.scaling import prepare_images
from tasks.data.versions import BASE, Added, DataStore
from tasks.registry.store import Registry
from tasks.scoring.metrics import class_names

GATE_SHARE = 0.5
GATE_MIN_IMAGES = 20
INK_LEVEL = 128
TRAIN_SAMPLE = 10_000


def pixel_features(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per image of uint8 ``(n, rows, cols)``: ``ink_area`` and ``mean_intensity`` in [0, 1]."""
    flat = np.asarray(images, dtype=np.uint8).reshape(images.shape[0], -1)
    return {
        "ink_area": (flat >= INK_LEVEL).mean(axis=1),
        "mean_intensity": flat.mean(axis=1) / 255.0,
    }


def compare_pixels(new: np.ndarray, train: np.ndarray) -> dict[str, dict[str, float]]:
    """Each feature's mean on ``new`` and ``train`` images and the KS test between them."""
    from scipy.stats import ks_2samp  # here: importing scipy.stats is slow, and rarely needed

    ours, theirs = pixel_features(new), pixel_features(train)
    result = {}
    for name in ours:
        test = ks_2samp(ours[name], theirs[name])
        result[name] = {
            "new_mean": float(ours[name].mean()),
            "train_mean": float(theirs[name].mean()),
            "ks_statistic": float(test.statistic),
            "p_value": float(test.pvalue),
        }
    return result


@dataclass(frozen=True)
class DataCheck:
    """What the check found and whether the retraining may go on (``passed``, ``reason``)."""

    dataset: str
    new_batches: list[str]
    n_new: int
    counts: dict[str, int]
    pixels: dict[str, dict[str, float]] = field(default_factory=dict)
    champion_version: str | None = None
    champion_test_accuracy: float | None = None
    champion_accuracy: float | None = None
    passed: bool = True
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, for ``metrics.json``."""
        return asdict(self)

    def to_markdown(self) -> str:
        """The ``mnist-data-check`` artifact."""
        verdict = "passed" if self.passed else "**failed: the retraining stops**"
        lines = [f"### Data check of {self.dataset}: {verdict}", "", self.reason, ""]
        batches = ", ".join(self.new_batches) or "none"
        lines += [f"New images: {self.n_new} in batches {batches}.", ""]
        if self.counts:
            lines += ["| class | images |", "|---|---|"]
            lines += [f"| {name} | {n} |" for name, n in self.counts.items()]
        if self.pixels:
            lines += ["", "| pixels | new | training set | KS statistic | p-value |"]
            lines += ["|---|---|---|---|---|"]
            for name, s in self.pixels.items():
                lines.append(
                    f"| {name.replace('_', ' ')} | {s['new_mean']:.4f} | {s['train_mean']:.4f} "
                    f"| {s['ks_statistic']:.3f} | {s['p_value']:.3g} |"
                )
        if self.champion_accuracy is not None:
            lines += [
                "",
                f"Champion {self.champion_version}: accuracy {self.champion_accuracy:.4f} on the "
                f"new images, {self.champion_test_accuracy:.4f} on the test set.",
            ]
        return "\n".join(lines) + "\n"


def check_new_data(
    dataset: str,
    new_batches: list[str],
    images: np.ndarray,
    labels: np.ndarray,
    train_images: np.ndarray,
    class_names: list[str],
    champion: tuple[str, float, np.ndarray] | None = None,
) -> DataCheck:
    """Check the new uint8 ``(n, rows, cols)`` images and int64 ``(n,)`` labels against
    ``train_images`` (uint8 ``(m, rows, cols)``, a sample of the base training set) and the
    ``champion`` (``(version, test accuracy, predicted labels (n,))`` or None); apply the gate.
    """
    counts = np.bincount(labels, minlength=len(class_names))
    common: dict[str, Any] = {
        "dataset": dataset,
        "new_batches": list(new_batches),
        "n_new": int(labels.size),
        "counts": {name: int(n) for name, n in zip(class_names, counts, strict=False)},
    }
    if labels.size == 0:
        return DataCheck(**common, reason="No new data since the champion was trained.")
    common["pixels"] = compare_pixels(images, train_images)
    if champion is None:
        return DataCheck(**common, reason="No champion yet to score the new data with.")
    version, test_accuracy, predicted = champion
    accuracy = float((predicted == labels).mean())
    common.update(
        champion_version=version, champion_test_accuracy=test_accuracy, champion_accuracy=accuracy
    )
    floor = GATE_SHARE * test_accuracy
    if labels.size >= GATE_MIN_IMAGES and accuracy < floor:
        chance = 1.0 / len(class_names)
        reason = (
            f"the champion {version} scores {accuracy:.4f} on the {labels.size} new images "
            f"(chance: {chance:.2f}) against {test_accuracy:.4f} on the test set, below "
            f"{GATE_SHARE:g} of it: the new labels look wrong (shuffled or mislabelled)"
        )
        return DataCheck(**common, passed=False, reason=reason[0].upper() + reason[1:] + ".")
    reason = (
        f"The champion {version} scores {accuracy:.4f} on the new images "
        f"(gate: below {floor:.4f} with at least {GATE_MIN_IMAGES} images stops the retraining)."
    )
    return DataCheck(**common, reason=reason)


def _seen_by(registry: Registry, store: DataStore, dataset: str) -> tuple[set[str], Any]:
    """The batch ids the champion of ``dataset`` trained on, and the champion (None when
    there is none or its files are broken)."""
    champion = registry.sound_champion(dataset)
    if champion is None:
        return set(), None
    try:
        metrics = json.loads((champion.path.parent / "metrics.json").read_text(encoding="utf-8"))
        return {v.id for v in store.select(dataset, metrics.get("data_version", BASE))}, champion
    except (OSError, ValueError):  # a version of another store: count every batch as new
        return set(), champion


def check_added(
    files: DatasetFiles, added: Added, registry_dir: str | None, store_dir: str | None
) -> DataCheck:
    """Run :func:`check_new_data` on the batches of ``added`` the champion has not seen."""
    store = DataStore(store_dir)
    seen, champion = _seen_by(Registry(registry_dir), store, files.name)
    new = [batch for batch in added.batches() if batch.id not in seen]
    loaded = [batch.load() for batch in new]
    images = np.concatenate([np.zeros((0, *files.image_shape), np.uint8)] + [i for i, _ in loaded])
    labels = np.concatenate([np.zeros(0, np.int64)] + [y for _, y in loaded])
    train = read_idx(files.train_images, kind="images")
    rng = np.random.default_rng(0)
    sample = train[np.sort(rng.choice(len(train), min(TRAIN_SAMPLE, len(train)), replace=False))]
    scored = None
    if champion is not None and labels.size:
        model, meta = load_model(champion.path)
        predicted = model.predict(prepare_images(images, meta["preprocessing"]))
        scored = (champion.version, champion.test_accuracy, predicted)
    names = class_names(files.name, files.n_classes)
    return check_new_data(files.name, [b.id for b in new], images, labels, sample, names, scored)
