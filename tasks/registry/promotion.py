"""Registry records and the promotion rule: versions, decisions and the models table (pure).

A challenger is promoted when ``challenger - champion >= margin`` (within 1e-9, for the
rounding of the difference) and ``challenger > champion``: a tie never replaces the champion.
The first model of a dataset becomes its champion. Accuracies are on the test set (with
added data, plus the held-out added images), so a champion's test accuracy overstates its
accuracy on new images a little (selection bias).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from numbers import Real
from pathlib import Path
from typing import Any

from nn.errors import ConfigError
from tasks.errors import RegistryError

VERSION_RE = re.compile(r"^v(\d{4,})$")
_DATASET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EPS = 1e-9


def check_margin(margin: float) -> float:
    """Return ``margin`` as a float; raise ConfigError unless 0 <= margin < 1."""
    if isinstance(margin, bool) or not isinstance(margin, Real) or not 0 <= margin < 1:
        raise ConfigError(f"margin must be a number >= 0 and < 1, got {margin!r}")
    return float(margin)


def check_dataset(dataset: str) -> str:
    """Return ``dataset``; raise ConfigError unless it is a safe file-name component."""
    if not isinstance(dataset, str) or not _DATASET_RE.match(dataset):
        raise ConfigError(
            f"dataset must be a name of letters, digits, '.', '_' or '-' (at most 64), "
            f"got {dataset!r}"
        )
    return dataset


def check_accuracy(value: Any, where: str) -> float:
    """Return ``value`` as a float; raise RegistryError naming ``where`` unless in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 1:
        raise RegistryError(f"{where} must be a number in [0, 1], got {value!r}")
    return float(value)


def version_name(version: ModelVersion | str | int) -> str:
    """Return the canonical name (``"v0003"``) of ``version`` (``3``, ``"3"``, ``"v3"``, ...)."""
    if isinstance(version, ModelVersion):
        return version.version
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        return f"v{version:04d}"
    if isinstance(version, str):
        match = re.fullmatch(r"v?(\d+)", version)
        if match and int(match.group(1)) >= 1:
            return f"v{int(match.group(1)):04d}"
    raise RegistryError(f"version must look like 'v0001' or be a positive int, got {version!r}")


@dataclass(frozen=True)
class ModelVersion:
    """One registered model: ``version`` (``"v0001"``, ... in registration order),
    ``created_at`` (ISO 8601, UTC), ``dataset`` whose test set gave ``test_accuracy`` (in
    [0, 1]), ``path`` of its ``model.npz``, and whether it ``is_champion`` of its dataset."""

    version: str
    created_at: str
    dataset: str
    test_accuracy: float
    path: Path
    is_champion: bool = False

    def __post_init__(self) -> None:
        if not VERSION_RE.match(self.version):
            raise RegistryError(f"version must look like 'v0001', got {self.version!r}")
        check_accuracy(self.test_accuracy, "test_accuracy")

    @property
    def number(self) -> int:
        """The version number (``v0007`` -> 7)."""
        return int(self.version[1:])


@dataclass(frozen=True)
class PromotionDecision:
    """What a retraining run did with its model, with both accuracies on ``evaluated_on``.

    ``champion_*`` describe the champion *before* the decision (``None``: there was none).
    ``review`` is a person's answer when the promotion waited for approval:
    ``{"approved": bool, "by": name, "reason": text}``.
    """

    promoted: bool
    reason: str
    dataset: str
    challenger_version: str
    challenger_accuracy: float
    champion_version: str | None
    champion_accuracy: float | None
    margin: float
    already_registered: bool = False
    evaluated_on: str = "the test set"
    review: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        check_margin(self.margin)
        check_accuracy(self.challenger_accuracy, "challenger_accuracy")
        if (self.champion_version is None) != (self.champion_accuracy is None):
            raise RegistryError("champion_version and champion_accuracy must both be set or None")

    @property
    def verdict(self) -> str:
        """``"promoted to champion"``, ``"rejected by <who>"`` or ``"not promoted"``."""
        if self.promoted:
            return "promoted to champion"
        if self.review is not None and not self.review["approved"]:
            return f"rejected by {self.review['by']}"
        return "not promoted"

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-serialisable dict."""
        return asdict(self)

    def to_markdown(self, *, proposal: bool = False) -> str:
        """A Markdown summary for the report and the artifacts; ``proposal``: the question
        put to a person before anything is decided (in the conditional)."""
        champ = (
            f"| champion before | {self.champion_version} | {self.champion_accuracy:.4f} |"
            if self.champion_version is not None
            else "| champion before | (none) | - |"
        )
        title = "would become the champion" if proposal else self.verdict
        return "\n".join(
            [
                f"### Model {self.challenger_version} ({self.dataset}) {title}"
                if proposal
                else f"### Model {self.challenger_version} ({self.dataset}): {title}",
                "",
                f"| role | version | accuracy on {self.evaluated_on} |",
                "|---|---|---|",
                f"| challenger | {self.challenger_version} | {self.challenger_accuracy:.4f} |",
                champ,
                "",
                f"Required margin: {self.margin:.4f}. {self.reason[0].upper()}{self.reason[1:]}.",
                "",
            ]
        )


@dataclass(frozen=True)
class SameSetScores:
    """Challenger and champion scored on one evaluation set: the test set plus the held-out
    part of the added data (``n_images`` in all). Used by :func:`decide` only while
    ``champion_version`` is still the champion."""

    challenger: float
    champion_version: str | None
    champion: float | None
    n_images: int

    @property
    def described(self) -> str:
        """The set, in words: ``"the same 10,300 images (test set and held-out added data)"``."""
        return f"the same {self.n_images:,} images (test set and held-out added data)"


def decide(
    challenger: ModelVersion,
    champion: ModelVersion | None,
    margin: float,
    scores: SameSetScores | None = None,
    *,
    duplicate: bool = False,
) -> PromotionDecision:
    """Apply the promotion rule; pure. With ``scores`` (of this ``champion``) both are
    compared on that evaluation set; ``duplicate``: the challenger's weights were
    registered before, and the reason says so."""
    decision = _decide(challenger, champion, margin, scores)
    if not duplicate:
        return decision
    reason = f"same weights as {challenger.version}, registered before; {decision.reason}"
    return replace(decision, reason=reason, already_registered=True)


def _decide(
    challenger: ModelVersion,
    champion: ModelVersion | None,
    margin: float,
    scores: SameSetScores | None,
) -> PromotionDecision:
    evaluated_on, metric = "the test set", "test accuracy"
    if scores is not None and (champion is None or scores.champion_version == champion.version):
        challenger = replace(challenger, test_accuracy=scores.challenger)
        if champion is not None and scores.champion is not None:
            champion = replace(champion, test_accuracy=scores.champion)
        evaluated_on = scores.described
        metric = "accuracy"
    common: dict[str, Any] = dict(
        dataset=challenger.dataset,
        challenger_version=challenger.version,
        challenger_accuracy=challenger.test_accuracy,
        champion_version=champion.version if champion else None,
        champion_accuracy=champion.test_accuracy if champion else None,
        margin=margin,
        evaluated_on=evaluated_on,
    )
    if champion is None:
        reason = f"first model for dataset '{challenger.dataset}': no champion to beat"
        return PromotionDecision(promoted=True, reason=reason, **common)
    if champion.version == challenger.version:
        return PromotionDecision(
            promoted=False, reason=f"{challenger.version} is already the champion", **common
        )
    diff = challenger.test_accuracy - champion.test_accuracy
    promoted = diff > 0 and diff >= margin - _EPS
    verb = "beats" if promoted else "does not beat"
    reason = (
        f"{metric} {challenger.test_accuracy:.4f} {verb} champion {champion.version} "
        f"({champion.test_accuracy:.4f}) by at least the margin {margin:.4f} "
        f"(difference {diff:+.4f}) on {evaluated_on}"
    )
    return PromotionDecision(promoted=promoted, reason=reason, **common)


CHANCE_MARGIN = 0.05
"""A test accuracy under chance (1 / classes) plus this is chance level."""
EXPLODED = 10.0
"""A final training loss above this many times ``ln(classes)`` means training diverged."""


def divergence(history: Sequence[dict[str, Any]], n_classes: int) -> str | None:
    """Why a finite model counts as diverged, or None.

    Diverged: the last epoch's training loss (``history``: ``EpochRecord.to_dict()``
    records) is above :data:`EXPLODED` times ``ln(n_classes)``, the loss of a uniform
    guess. An undertrained model ends a few times above it, which is weak, not diverged
    (:func:`chance_level` keeps it from promotion); an exploded one hundreds of times.
    """
    uniform = math.log(n_classes)
    losses = [record["train_loss"] for record in history if "train_loss" in record]
    if losses and not losses[-1] <= EXPLODED * uniform:
        return (
            f"final training loss {losses[-1]:.4g} is more than {EXPLODED:g} times "
            f"ln({n_classes}) = {uniform:.3f}, the loss of guessing uniformly"
        )
    return None


def chance_level(test_accuracy: float, n_classes: int) -> str | None:
    """Why a model is no candidate for promotion (accuracy at chance level), or None."""
    chance = 1.0 / n_classes
    if test_accuracy < chance + CHANCE_MARGIN:
        return f"test accuracy {test_accuracy:.4f} is at chance level ({chance:.4f})"
    return None


def format_models_table(
    versions: Sequence[ModelVersion],
    lineage: dict[str, str] | None = None,
    broken: Sequence[str] = (),
) -> str:
    """Return ``versions`` as an aligned plain-text table for ``mnist-flow models``.

    ``lineage`` (version -> the data version it trained on) adds a DATA column; the
    versions in ``broken`` (files failing their checks) are marked so.
    """
    if not versions:
        return "no models registered yet; train one with `mnist-flow run`"
    header: tuple[str, ...] = ("VERSION", "CREATED (UTC)", "DATASET", "TEST ACC", "CHAMPION")
    rows: list[tuple[str, ...]] = [
        (
            v.version,
            v.created_at[:19].replace("T", " "),
            v.dataset,
            f"{v.test_accuracy:.4f}",
            ("* " if v.is_champion else "") + ("BROKEN" if v.version in broken else ""),
        )
        for v in versions
    ]
    if lineage is not None:
        header = (*header[:4], "DATA", header[4])
        rows = [(*r[:4], lineage.get(r[0], "base"), r[4]) for r in rows]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in (header, *rows)
    ]
    return "\n".join(line.rstrip() for line in lines)
