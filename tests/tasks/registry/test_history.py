"""Changes of champion: automatic, by hand (promote, rollback), all in the append-only history."""

from __future__ import annotations

import pytest

from flows.cli import main
from tasks.errors import RegistryError
from tasks.registry import history
from tasks.registry.promotion import SameSetScores
from tasks.registry.store import Registry
from tests.tasks.registry.test_store import add, fake_model


@pytest.fixture
def reg(tmp_path) -> Registry:
    """Three models of mnist: v0001 (0.90), v0002 (0.95) champion, v0003 (0.93)."""
    reg = Registry(tmp_path / "registry", lock_timeout=5)
    for name, acc in (("a", 0.90), ("b", 0.95), ("c", 0.93)):
        add(reg, fake_model(tmp_path / name), acc)
    return reg


def models(reg: Registry, *args: str) -> int:
    return main(["models", *args, "--registry", str(reg.root)])


def test_automatic_promotions_are_in_the_history(reg):
    entries = history.read_history(reg.root)
    assert [(e["version"], e["previous"], e["action"]) for e in entries] == [
        ("v0001", None, "auto"),
        ("v0002", "v0001", "auto"),
    ]
    assert "beats champion v0001" in entries[1]["reason"]


def test_promote_by_hand_then_rollback_twice(reg, capsys):
    assert models(reg, "promote", "v3", "--reason", "better on new scans") == 0
    assert reg.champion("mnist").version == "v0003"
    assert models(reg, "rollback") == 0
    assert reg.champion("mnist").version == "v0002"
    assert models(reg, "rollback") == 0  # back through the chain, not back and forth
    assert reg.champion("mnist").version == "v0001"
    capsys.readouterr()
    assert models(reg, "rollback") == 1
    assert "no earlier champion of mnist" in capsys.readouterr().err
    assert reg.champion("mnist").version == "v0001"
    actions = [(e["version"], e["action"]) for e in history.read_history(reg.root)]
    assert actions == [("v0001", "auto"), ("v0002", "auto"), ("v0003", "promote"),
                       ("v0002", "rollback"), ("v0001", "rollback")]  # fmt: skip
    capsys.readouterr()
    assert models(reg, "--history") == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 6 and "better on new scans" in out[3] and "promote" in out[3]


def test_history_is_only_ever_appended(reg):
    before = history.history_path(reg.root).read_text()
    history.promote(reg, "v0001", "test")
    after = history.history_path(reg.root).read_text()
    assert after.startswith(before) and after.count("\n") == before.count("\n") + 1


def test_promote_refuses_the_champion_and_unknown_versions(reg, capsys):
    assert models(reg, "promote", "v0002") == 1
    assert "already the champion" in capsys.readouterr().err
    assert models(reg, "promote", "v0009") == 1
    assert "no model version v0009" in capsys.readouterr().err
    assert len(history.read_history(reg.root)) == 2


def test_same_set_scores_decide_the_promotion(tmp_path):
    reg = Registry(tmp_path / "registry", lock_timeout=5)
    add(reg, fake_model(tmp_path / "a"), 0.95)
    # worse on its own test accuracy, better on the shared evaluation set: promoted
    scores = SameSetScores(challenger=0.91, champion_version="v0001", champion=0.90, n_images=120)
    version, decision = reg.register_and_promote(
        fake_model(tmp_path / "b"), {"test_accuracy": 0.94}, dataset="mnist", scores=scores
    )
    assert decision.promoted and "same 120 images" in decision.reason
    assert version.version == "v0002" and decision.challenger_accuracy == 0.91
    # scores of a champion that is no longer the champion are not used
    stale = SameSetScores(challenger=0.99, champion_version="v0001", champion=0.10, n_images=120)
    _, decision = reg.register_and_promote(
        fake_model(tmp_path / "c"), {"test_accuracy": 0.93}, dataset="mnist", scores=stale
    )
    assert not decision.promoted and reg.champion("mnist").version == "v0002"


def test_a_failed_history_write_leaves_the_champion(reg, monkeypatch):
    def fail(path, text, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(history, "write_text_atomic", fail)
    with pytest.raises(RegistryError, match="champion is unchanged"):
        history.promote(reg, "v0003")
    assert reg.champion("mnist").version == "v0002"


def test_models_table_shows_the_data_version(reg, capsys):
    assert models(reg) == 0
    out = capsys.readouterr().out.splitlines()
    assert "DATA" in out[0] and all(line.split()[5] == "base" for line in out[1:])
