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
    assert models(reg, "promote", "v3", "--reason", "better on new scans") == 1
    err = capsys.readouterr().err
    assert "v0003 (test accuracy 0.9300) is worse than the champion v0002 (0.9500)" in err
    assert "--force" in err and reg.champion("mnist").version == "v0002"
    assert models(reg, "promote", "v3", "--reason", "better on new scans", "--force") == 0
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
    history.promote(reg, "v0001", "test", force=True)
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
    write = history.write_bytes_atomic

    def fail(path, data, **kwargs):
        if path.name == history.HISTORY_FILE:
            raise OSError(28, "No space left on device")
        write(path, data, **kwargs)

    monkeypatch.setattr(history, "write_bytes_atomic", fail)
    with pytest.raises(RegistryError, match="champion is unchanged"):
        history.promote(reg, "v0003", force=True)
    assert reg.champion("mnist").version == "v0002"


def test_models_table_shows_the_data_version(reg, capsys):
    assert models(reg) == 0
    out = capsys.readouterr().out.splitlines()
    assert "DATA" in out[0] and all(line.split()[5] == "base" for line in out[1:])


def _damage(reg, *lines: bytes, torn: bytes = b"") -> None:
    """Insert ``lines`` after the first record of the history and end it with ``torn``."""
    path = history.history_path(reg.root)
    first, rest = path.read_bytes().split(b"\n", 1)
    path.write_bytes(first + b"\n" + b"".join(line + b"\n" for line in lines) + rest + torn)


def test_damaged_history_lines_are_skipped_with_one_warning(reg, caplog, capsys):
    _damage(reg, b"garbage {", b"\xff\xfe binary", b'{"action": "eaten"}', b"")
    with caplog.at_level("WARNING", logger=history.__name__):
        entries = history.read_history(reg.root)
    assert [e["version"] for e in entries] == ["v0001", "v0002"]
    [record] = caplog.records
    path = history.history_path(reg.root)
    assert record.getMessage().startswith(f"{path}: skipped 3 damaged lines: 2 (")
    assert ", 3 (" in record.getMessage() and ", 4 (" in record.getMessage()
    assert models(reg, "--history") == 0
    assert len(capsys.readouterr().out.splitlines()) == 3  # header and both good lines
    assert models(reg, "promote", "v3", "--force") == 0
    assert models(reg, "rollback") == 0
    assert reg.champion("mnist").version == "v0002"
    assert [e["action"] for e in history.read_history(reg.root)][-2:] == ["promote", "rollback"]


def test_a_record_is_never_glued_to_a_torn_last_line(reg):
    _damage(reg, torn=b'{"time": "2026-01-01T00:0')  # a write killed half way
    history.promote(reg, "v0003", force=True)
    path = history.history_path(reg.root)
    lines = path.read_bytes().splitlines()
    assert lines[-2] == b'{"time": "2026-01-01T00:0' and b'"version": "v0003"' in lines[-1]
    assert [e["version"] for e in history.read_history(reg.root)] == ["v0001", "v0002", "v0003"]


def test_rollback_trusts_the_champion_pointer_over_a_lost_line(reg):
    history.promote(reg, "v0003", force=True)
    path = history.history_path(reg.root)
    lines = path.read_bytes().splitlines()
    path.write_bytes(b"\n".join([*lines[:-1], b"lost"]) + b"\n")  # the promotion's line
    assert history.rollback(reg, "mnist")["version"] == "v0002"
    assert history.rollback(reg, "mnist")["version"] == "v0001"


def test_a_missing_registry_folder_is_not_created(tmp_path, capsys):
    root = tmp_path / "nowhere"
    for args in (["rollback"], ["promote", "v1"]):
        assert main(["models", *args, "--registry", str(root)]) == 1
        [line] = capsys.readouterr().err.splitlines()
        assert line == f"mnist-flow: error: --registry {root}: no registry there; nothing changed"
    assert not root.exists()


def test_a_broken_champion_is_marked_and_replaced(reg, tmp_path, capsys):
    champion = reg.champion("mnist").path
    champion.write_bytes(champion.read_bytes()[:-40])  # truncated
    assert models(reg) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[2].split()[0] == "v0002" and out[2].endswith("* BROKEN")
    assert out[-1].startswith("v0002: BROKEN (") and "SHA-256 does not match" in out[-1]
    assert models(reg, "promote", "v2") == 1 and "v0002 is broken" in capsys.readouterr().err
    # a new model, worse than the broken champion's recorded accuracy, replaces it
    version, decision = add(reg, fake_model(tmp_path / "d"), 0.91)
    assert decision.promoted and version.is_champion and reg.champion("mnist") == version
    assert decision.reason.startswith("champion v0002 is broken (") and "counts as absent" in (
        decision.reason
    )
    assert (decision.champion_version, decision.champion_accuracy) == ("v0002", 0.95)
    assert history.read_history(reg.root)[-1]["previous"] == "v0002"
    # the broken version is no target of a rollback
    with pytest.raises(RegistryError, match=r"v0002 is broken .*cannot roll back to it"):
        history.rollback(reg, "mnist")


def test_a_worse_model_replaces_a_champion_whose_model_is_missing(reg, tmp_path):
    reg.champion("mnist").path.unlink()
    assert reg.sound_champion("mnist") is None
    assert "weights file is missing" in reg.broken(reg.get("v0002"))
    assert [v.version for v in reg.list()] == ["v0001", "v0002", "v0003"]
    _, decision = add(reg, fake_model(tmp_path / "d"), 0.5)
    assert decision.promoted and "v0002 is broken" in decision.reason
