"""The champion/challenger model registry: its store and the promotion rules."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from filelock import FileLock
from platformdirs import user_data_path

import tasks.registry.store as registry_mod
from nn.errors import ConfigError
from nn.io import load_model, save_model
from nn.model import MLP
from tasks.registry import history
from tasks.registry.store import (
    PromotionDecision,
    Registry,
    RegistryError,
    default_registry_root,
    format_models_table,
)


def fake_model(directory: Path, name: str = "model", dataset: str | None = "mnist") -> Path:
    """Save a tiny real network with nn.io.save_model: ``<name>.npz`` + ``<name>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.npz"
    rng = np.random.default_rng(list(f"{directory}/{name}".encode()))  # distinct weights
    metadata: dict = {"preprocessing": {"standardize": False, "mean": 0.0, "std": 1.0}}
    if dataset is not None:
        metadata["dataset"] = {"name": dataset, "checksums": {}}
    save_model(path, MLP.create((6, 4, 3), rng=rng), metadata)
    return path


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return fake_model(tmp_path / "src")


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "registry", lock_timeout=5)


def add(reg: Registry, model: Path, acc: float, dataset: str = "mnist", margin: float = 0.0):
    return reg.register_and_promote(model, {"test_accuracy": acc}, dataset=dataset, margin=margin)


# -- promotion rules -------------------------------------------------------------------------


def test_first_model_becomes_champion(reg, model):
    version, decision = add(reg, model, 0.5)
    assert version.version == "v0001" and version.is_champion
    assert decision.promoted and decision.champion_version is None
    assert "first model" in decision.reason
    assert reg.champion() == version
    assert reg.model_path() == reg.root / "models" / "v0001" / "model.npz"
    pointer = json.loads((reg.root / "champion-mnist.json").read_text())
    assert pointer["version"] == "v0001" and pointer["test_accuracy"] == 0.5
    assert pointer["dataset"] == "mnist" and pointer["promoted_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("champion", "challenger", "margin", "promoted"),
    [
        (0.90, 0.91, 0.01, True),  # exactly the margin (0.91 - 0.90 rounds above 0.01)
        (0.97, 0.98, 0.01, True),  # exactly the margin (0.98 - 0.97 rounds below 0.01)
        (0.90, 0.95, 0.01, True),
        (0.90, 0.9001, 0.0, True),
        (0.90, 0.905, 0.01, False),  # better, but within the margin
        (0.90, 0.90, 0.0, False),  # a tie never replaces the champion
        (0.90, 0.89, 0.0, False),
    ],
)
def test_promotion_needs_the_margin(reg, tmp_path, champion, challenger, margin, promoted):
    add(reg, fake_model(tmp_path / "a"), champion)
    second, decision = add(reg, fake_model(tmp_path / "b"), challenger, margin=margin)
    assert decision.promoted is promoted
    assert second.is_champion is promoted
    assert (decision.champion_version, decision.champion_accuracy) == ("v0001", champion)
    assert (decision.challenger_version, decision.challenger_accuracy) == ("v0002", challenger)
    assert reg.champion().version == ("v0002" if promoted else "v0001")
    assert [v.is_champion for v in reg.list()] == [not promoted, promoted]


def test_the_rule_applies_to_registered_versions(reg, tmp_path):
    from tasks.registry.history import promote_approved

    low = reg.register(fake_model(tmp_path / "a"), {"test_accuracy": 0.8}, dataset="mnist")
    high = reg.register(fake_model(tmp_path / "b"), {"test_accuracy": 0.9}, dataset="mnist")
    assert reg.champion() is None and not low.is_champion
    assert promote_approved(reg, high.version, 0.0, None, "ok").promoted
    assert not promote_approved(reg, "v0001", 0.0, None, "ok").promoted  # worse
    again = promote_approved(reg, "2", 0.5, None, "ok")
    assert not again.promoted and "already the champion" in again.reason
    assert reg.champion().version == "v0002"


def test_champions_are_per_dataset(reg, tmp_path):
    add(reg, fake_model(tmp_path / "a"), 0.98, "mnist")
    fashion, decision = add(
        reg, fake_model(tmp_path / "b", dataset="fashion-mnist"), 0.85, "fashion-mnist"
    )
    assert decision.promoted and decision.champion_version is None  # never compared with mnist
    assert reg.champion("mnist").version == "v0001"
    assert reg.champion("fashion-mnist") == fashion
    assert reg.champion().version == "v0002"  # the most recently promoted, whatever the dataset
    assert reg.model_path(dataset="mnist").parent.name == "v0001"
    _, worse = add(reg, fake_model(tmp_path / "c"), 0.97, "mnist")
    assert not worse.promoted and worse.champion_version == "v0001"
    assert reg.champion().version == "v0002"
    assert [v.version for v in reg.list("mnist")] == ["v0001", "v0003"]
    assert [v.is_champion for v in reg.list()] == [True, True, False]


@pytest.mark.parametrize("margin", [-0.01, 1.0, 2, float("nan"), True, "0.1"])
def test_margin_out_of_range_is_a_config_error(reg, model, margin):
    with pytest.raises(ConfigError, match="margin"):
        add(reg, model, 0.9, margin=margin)
    assert reg.list() == []  # validated before anything is copied


def test_decision_markdown_states_both_accuracies(reg, tmp_path):
    add(reg, fake_model(tmp_path / "a"), 0.9123)
    _, decision = add(reg, fake_model(tmp_path / "b"), 0.9150, margin=0.005)
    text = decision.to_markdown()
    assert "not promoted" in text and "v0002" in text and "v0001" in text
    assert decision.verdict == "not promoted" and "verdict" not in decision.to_dict()
    assert "0.9123" in text and "0.9150" in text and "0.0050" in text
    assert decision.to_dict()["champion_accuracy"] == 0.9123
    with pytest.raises(RegistryError):
        PromotionDecision(True, "x", "mnist", "v0001", 0.5, "v0002", None, 0.0)


# -- storage ---------------------------------------------------------------------------------


def test_register_copies_model_metadata_and_metrics(reg, model):
    metrics = {"test_accuracy": 0.75, "test_loss": 0.8, "per_class": [0.7] * 10}
    version = reg.register(model, metrics, dataset="mnist")
    assert version.path.read_bytes() == model.read_bytes()
    assert version.path.with_suffix(".json").read_text() == model.with_suffix(".json").read_text()
    assert json.loads((version.path.parent / "metrics.json").read_text()) == metrics
    assert version.created_at.endswith("+00:00") and version.dataset == "mnist"
    assert reg.get("1") == reg.get(1) == reg.get("v0001") == version


def test_registered_model_loads(reg, model):
    version = reg.register(model, {"test_accuracy": 0.75}, dataset="mnist")
    loaded, metadata = load_model(version.path)
    original, _ = load_model(model)
    assert metadata["dataset"]["name"] == "mnist"
    assert all(np.array_equal(a, b) for a, b in zip(loaded.weights, original.weights, strict=True))


def test_corrupted_weights_are_not_registered(reg, model):
    raw = bytearray(model.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    model.write_bytes(bytes(raw))
    with pytest.raises(RegistryError, match=r"SHA-256.*registry is unchanged"):
        reg.register(model, {"test_accuracy": 0.75}, dataset="mnist")
    assert reg.list() == [] and not reg.models_dir.exists()  # refused before the lock


def test_versions_are_numbered_in_order(reg, tmp_path):
    models = [fake_model(tmp_path / "src", f"m{i}") for i in range(3)]
    names = [reg.register(m, {"test_accuracy": 0.5}, dataset="mnist").version for m in models]
    assert names == ["v0001", "v0002", "v0003"]
    assert [v.number for v in reg.list()] == [1, 2, 3]


def test_the_same_weights_are_registered_once(reg, model, tmp_path):
    """An identical re-run (same weights, another model file) adds no version."""
    first, _ = add(reg, model, 0.9)
    again = tmp_path / "again" / "model.npz"
    again.parent.mkdir()
    save_model(again, load_model(model)[0], {"dataset": {"name": "mnist", "checksums": {}}})
    second, decision = add(reg, again, 0.9)
    assert second.version == first.version == "v0001" and [v.version for v in reg.list()] == [
        "v0001"
    ]
    assert decision.already_registered and not decision.promoted
    assert "same weights as v0001" in decision.reason
    other, decision = add(reg, fake_model(tmp_path / "other"), 0.95)
    assert other.version == "v0002" and decision.promoted and not decision.already_registered


def test_empty_registry(tmp_path):
    reg = Registry(tmp_path / "nowhere")
    assert reg.list() == [] and reg.champion() is None
    with pytest.raises(RegistryError) as info:
        reg.model_path()
    assert str(info.value) == (
        f"registry {reg.root} has no champion yet; train one with `mnist-flow run`"
    )
    with pytest.raises(RegistryError, match="no champion for dataset 'fashion-mnist'"):
        reg.model_path(dataset="fashion-mnist")
    with pytest.raises(RegistryError, match="no model version v0004"):
        reg.get(4)
    assert not reg.root.exists()  # reading never creates the registry


@pytest.mark.parametrize("version", [0, -1, "v", "latest", 1.5, True])
def test_bad_version_names(reg, version):
    with pytest.raises(RegistryError, match="version"):
        reg.get(version)


def test_register_rejects_bad_inputs(reg, tmp_path, model):
    with pytest.raises(RegistryError, match=r"missing\.npz"):
        reg.register(tmp_path / "missing.npz", {"test_accuracy": 0.5}, dataset="mnist")
    model.with_suffix(".json").rename(tmp_path / "elsewhere.json")
    with pytest.raises(RegistryError, match=r"model metadata .*model\.json does not exist"):
        reg.register(model, {"test_accuracy": 0.5}, dataset="mnist")
    fashion = fake_model(tmp_path / "f", dataset="fashion-mnist")
    with pytest.raises(RegistryError, match="says dataset 'fashion-mnist'"):
        reg.register(fashion, {"test_accuracy": 0.5}, dataset="mnist")
    good = fake_model(tmp_path / "g")
    for metrics, match in [
        ({"accuracy": 0.5}, "'test_accuracy'"),
        ({"test_accuracy": 1.5}, r"in \[0, 1\], got 1.5"),
        ({"test_accuracy": float("nan")}, "got nan"),
        ({"test_accuracy": 0.5, "when": object()}, "not JSON-serialisable"),
    ]:
        with pytest.raises(RegistryError, match=match):
            reg.register(good, metrics, dataset="mnist")
    with pytest.raises(ConfigError, match="dataset"):
        reg.register(good, {"test_accuracy": 0.5}, dataset="../escape")
    assert reg.list() == []


def test_failing_copy_leaves_no_trace(reg, tmp_path, monkeypatch):
    champion, _ = add(reg, fake_model(tmp_path / "a"), 0.5)
    real_copy = registry_mod.copy_file
    calls = []

    def copy_then_fail(src: Path, dst: Path) -> None:
        calls.append(dst)
        real_copy(src, dst)
        if len(calls) == 2:  # the weights are in the temp dir, the metadata too: now fail
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(registry_mod, "copy_file", copy_then_fail)
    with pytest.raises(RegistryError, match=r"No space left.*registry is unchanged"):
        add(reg, fake_model(tmp_path / "b"), 0.99)
    assert len(calls) == 2 and calls[0].parent.name.startswith(".tmp-")
    assert sorted(p.name for p in (reg.root / "models").iterdir()) == ["v0001"]
    assert reg.list() == [champion] and reg.champion() == champion
    monkeypatch.undo()
    assert add(reg, fake_model(tmp_path / "b"), 0.99)[0].version == "v0002"


def test_failing_pointer_write_keeps_the_champion(reg, tmp_path, monkeypatch):
    add(reg, fake_model(tmp_path / "a"), 0.5)
    before = (reg.root / "champion-mnist.json").read_bytes()
    challenger = reg.register(fake_model(tmp_path / "b"), {"test_accuracy": 0.9}, dataset="mnist")

    def failing_replace(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(RegistryError, match=r"champion-mnist\.json.*champion is unchanged"):
        history.promote(reg, challenger.version)
    monkeypatch.undo()
    assert (reg.root / "champion-mnist.json").read_bytes() == before
    assert sorted(p.name for p in reg.root.iterdir()) == [
        ".lock",
        "champion-mnist.json",
        "history.jsonl",
        "models",
    ]


def test_stale_temp_dirs_are_ignored_and_cleaned(reg, tmp_path, model):
    reg.register(model, {"test_accuracy": 0.5}, dataset="mnist")
    stale = reg.root / "models" / ".tmp-crashed"
    stale.mkdir()
    (stale / "model.npz").write_bytes(b"half")
    assert [v.version for v in reg.list()] == ["v0001"]
    reg.register(model, {"test_accuracy": 0.5}, dataset="mnist")
    assert not stale.exists()


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2]",
        '{"version": "v0001", "dataset": "mnist", "promoted_at": "x"}',
        '{"version": "v0001", "dataset": "mnist", "promoted_at": "x", "test_accuracy": 7}',
        '{"version": "1", "dataset": "mnist", "promoted_at": "x", "test_accuracy": 0.5}',
        '{"version": "v0001", "dataset": "fashion", "promoted_at": "x", "test_accuracy": 0.5}',
        '{"version": "v0009", "dataset": "mnist", "promoted_at": "x", "test_accuracy": 0.5}',
    ],
)
def test_corrupt_champion_pointer_names_the_file(reg, model, content):
    add(reg, model, 0.5)
    pointer = reg.root / "champion-mnist.json"
    pointer.write_text(content)
    for read in (reg.champion, reg.list, reg.model_path, lambda: add(reg, model, 0.9)):
        with pytest.raises(RegistryError, match=re.escape(str(pointer))):
            read()


def test_corrupt_version_record_names_the_file(reg, model):
    version, _ = add(reg, model, 0.5)
    record = version.path.parent / "version.json"
    record.write_text('{"version": "v0001", "dataset": "mnist"}')
    with pytest.raises(RegistryError, match=re.escape(f"{record} is corrupted")):
        reg.list()
    record.unlink()
    with pytest.raises(RegistryError, match=re.escape(f"{record} is missing")):
        reg.champion()


def test_lock_timeout_is_a_registry_error(reg, model):
    reg.models_dir.mkdir(parents=True)
    fast = Registry(reg.root, lock_timeout=0.1)
    with FileLock(reg.lock_path):  # another holder (flock is per open file)
        start = time.monotonic()
        with pytest.raises(RegistryError) as info:
            fast.register(model, {"test_accuracy": 0.5}, dataset="mnist")
        assert time.monotonic() - start < 3
        assert fast.list() == []  # nothing was registered while the lock was held
    assert f"timed out after 0.1 s waiting for lock {reg.lock_path}" in str(info.value)
    assert fast.register(model, {"test_accuracy": 0.5}, dataset="mnist").version == "v0001"


def test_unusable_lock_file_is_a_registry_error_naming_it(reg, model):
    reg.lock_path.mkdir(parents=True)  # a folder where the lock file belongs
    with pytest.raises(RegistryError, match=re.escape(f"cannot take lock {reg.lock_path}")):
        reg.register(model, {"test_accuracy": 0.5}, dataset="mnist")
    assert reg.list() == []


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("MNIST_FLOW_REGISTRY", str(tmp_path / "r"))
    assert default_registry_root() == tmp_path / "r" == Registry().root
    user_registry = user_data_path("mnist-flow", appauthor=False) / "registry"
    monkeypatch.setenv("MNIST_FLOW_REGISTRY", "")  # empty counts as unset
    assert default_registry_root() == user_registry == Registry().root
    monkeypatch.delenv("MNIST_FLOW_REGISTRY")
    assert default_registry_root() == user_registry


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG folders are Linux's")
def test_default_root_follows_xdg_then_home_on_linux(monkeypatch, tmp_path):
    monkeypatch.delenv("MNIST_FLOW_REGISTRY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_registry_root() == tmp_path / "xdg" / "mnist-flow" / "registry"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_registry_root() == tmp_path / "home/.local/share/mnist-flow/registry"


# -- the models table ------------------------------------------------------------------------


def test_models_table_is_aligned(reg, tmp_path):
    add(reg, fake_model(tmp_path / "a"), 0.9)
    add(reg, fake_model(tmp_path / "b", dataset="fashion-mnist"), 0.8765, "fashion-mnist")
    add(reg, fake_model(tmp_path / "c"), 0.95)
    lines = format_models_table(reg.list()).splitlines()
    assert len(lines) == 4
    assert lines[0].split() == ["VERSION", "CREATED", "(UTC)", "DATASET", "TEST", "ACC", "CHAMPION"]
    for column in ("DATASET", "TEST ACC"):
        start = lines[0].index(column)
        assert all(line[start - 2 : start] == "  " and line[start] != " " for line in lines[1:])
    assert [line[lines[0].index("CHAMPION") :] for line in lines[1:]] == ["", "*", "*"]
    assert lines[2].split()[3:] == ["fashion-mnist", "0.8765", "*"]
    assert lines[1].split()[3:] == ["mnist", "0.9000"]  # replaced by v0003
    assert lines[3].split()[3:] == ["mnist", "0.9500", "*"]
    assert lines[1].split()[1] == reg.list()[0].created_at[:10]
    assert "no models registered" in format_models_table([])


# -- two processes at the same time ----------------------------------------------------------


def _race_worker(roots, model: str, accuracy: float, barrier, results) -> None:
    """Register and promote into each registry in turn, in step with the other process.

    The copy and the decision are slowed down so that, without the lock, both processes
    would read the same champion and both promote.
    """
    real_copy, real_decide = registry_mod.copy_file, registry_mod.decide

    def slow_copy(src, dst):
        time.sleep(0.05)
        real_copy(src, dst)

    def slow_decide(*args, **kwargs):
        decision = real_decide(*args, **kwargs)
        time.sleep(0.1)
        return decision

    registry_mod.copy_file, registry_mod.decide = slow_copy, slow_decide
    for root in roots:
        barrier.wait(timeout=60)
        try:
            version, decision = Registry(root, lock_timeout=30).register_and_promote(
                Path(model), {"test_accuracy": accuracy}, dataset="mnist"
            )
            results.put((root, version.version, decision.promoted))
        except Exception as exc:  # report to the parent instead of dying silently
            results.put((root, repr(exc), None))


@pytest.mark.slow
def test_two_processes_cannot_both_become_champion(tmp_path):
    models = [fake_model(tmp_path / "src", f"m{i}") for i in range(2)]  # distinct weights
    roots = [str(tmp_path / f"reg{i}") for i in range(4)]
    for root in roots[::2]:  # half the rounds start with a champion to beat, half empty
        add(Registry(root), fake_model(tmp_path / "seed"), 0.90)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_race_worker, args=(roots, str(model), 0.95, barrier, results))
        for model in models
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * len(roots))]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    for i, root in enumerate(roots):
        mine = [(version, promoted) for r, version, promoted in outcomes if r == root]
        assert all(promoted is not None for _, promoted in mine), mine
        seeded = i % 2 == 0
        assert sorted(v for v, _ in mine) == (["v0002", "v0003"] if seeded else ["v0001", "v0002"])
        winners = [v for v, promoted in mine if promoted]
        assert len(winners) == 1, mine  # equal accuracies: the second one ties and loses
        reg = Registry(root)
        assert [p.name for p in Path(root).glob("champion-*.json")] == ["champion-mnist.json"]
        champion = reg.champion()
        assert champion.version == winners[0] and champion.test_accuracy == 0.95
        listed = reg.list()
        assert len(listed) == 2 + seeded
        assert [v.version for v in listed if v.is_champion] == winners
        assert not list((Path(root) / "models").glob(".tmp-*"))


@pytest.mark.parametrize(
    ("losses", "diverged"),
    [
        ([2.1, 1.2, 0.4], False),  # learning
        ([2.4, 2.35], False),  # undertrained: near ln(10) = 2.30, not diverged
        ([2.1, 5.6], False),  # one noisy epoch on a few hundred images: weak, not diverged
        ([2.1, 23.1], True),  # more than ten times ln(10)
        ([2.5, 1381.0], True),  # the issue's --lr 10
    ],
)
def test_divergence_is_an_exploded_training_loss(losses, diverged):
    from tasks.registry.promotion import divergence

    history = [{"epoch": i + 1, "train_loss": loss} for i, loss in enumerate(losses)]
    reason = divergence(history, 10)
    assert (reason is not None) is diverged
    if diverged:
        expected = f"final training loss {losses[-1]:.4g} is more than 10 times ln(10)"
        assert reason.startswith(expected)


def test_chance_level_accuracy_is_no_candidate():
    from tasks.registry.promotion import chance_level

    assert chance_level(0.098, 10) == "test accuracy 0.0980 is at chance level (0.1000)"
    assert chance_level(0.16, 10) is None and chance_level(0.9, 10) is None
    assert chance_level(0.54, 2) is not None and chance_level(0.56, 2) is None
