"""The code version follows every source file; the cache policy keys on it and small inputs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import tasks.cache
from tasks.cache import PACKAGES, InputsAndCode, code_version, forget_code_version


def _tree(root: Path) -> Path:
    for package in PACKAGES:
        (root / package).mkdir(parents=True)
        (root / package / "__init__.py").write_text(f'"""{package}."""\n')
    (root / "tasks" / "helper.py").write_text("def helper():\n    return 1\n")
    return root


def test_changes_with_any_source_file(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    first = code_version(root)
    assert code_version(root) == first and len(first) == 24
    (root / "tasks" / "__pycache__").mkdir()
    (root / "tasks" / "__pycache__" / "helper.cpython-311.py").write_text("x")
    (root / "tasks" / "notes.txt").write_text("not code")
    assert code_version(root) == first
    helper = root / "tasks" / "helper.py"
    helper.write_text("def helper():\n    return 2\n")
    edited = code_version(root)
    assert edited != first
    (root / "flows" / "extra.py").write_text("")
    assert code_version(root) not in (first, edited)
    helper.rename(root / "tasks" / "renamed.py")
    assert code_version(root) not in (first, edited)


def test_the_packages_beside_this_module_have_a_version(tmp_path: Path) -> None:
    version = code_version()
    assert len(version) == 24 and version != code_version(tmp_path)


def test_the_default_version_is_hashed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    monkeypatch.setattr(tasks.cache, "SOURCE_ROOT", root)
    first = code_version()
    assert first == code_version(root)
    (root / "tasks" / "helper.py").write_text("def helper():\n    return 2\n")
    assert code_version() == first != code_version(root)  # given a root: hashed again
    forget_code_version()
    assert code_version() == code_version(root) != first


class _Store:
    """A result store holding ``records`` (key -> cached value)."""

    def __init__(self, records: dict[str, object]) -> None:
        self.records = records

    def exists(self, key: str) -> bool:
        return key in self.records

    def read(self, key: str) -> SimpleNamespace:
        return SimpleNamespace(result=self.records[key])


def _context(name: str, records: dict[str, object]) -> SimpleNamespace:
    return SimpleNamespace(task=SimpleNamespace(name=name), result_store=_Store(records))


def test_policy_keys_on_the_task_the_small_inputs_and_the_code() -> None:
    policy = InputsAndCode(inputs=lambda p: None if p["n"] < 0 else {"n": p["n"]})
    key = policy.compute_key(_context("fit", {}), {"n": 1, "big": object()}, {})
    assert key is not None and key.startswith("fit-")
    assert policy.compute_key(_context("fit", {}), {"n": 1, "big": None}, {}) == key
    assert policy.compute_key(_context("fit", {}), {"n": 2}, {}) != key
    assert policy.compute_key(_context("other", {}), {"n": 1}, {}) != key
    assert policy.compute_key(_context("fit", {}), {"n": -1}, {}) is None


def test_a_cached_result_whose_files_are_gone_is_a_miss(tmp_path: Path) -> None:
    policy = InputsAndCode(inputs=lambda p: {"n": p["n"]}, files_exist=lambda r: r.is_file())
    key = policy.compute_key(_context("fit", {}), {"n": 1}, {})
    assert key is not None
    (tmp_path / "out").write_text("")
    assert policy.compute_key(_context("fit", {key: tmp_path / "out"}), {"n": 1}, {}) == key
    gone = _context("fit", {key: tmp_path / "gone"})
    assert policy.compute_key(gone, {"n": 1}, {}) is None  # run uncached, rewrite the files
