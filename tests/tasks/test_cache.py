"""The code version used in cache keys follows every source file of the packages."""

from __future__ import annotations

from pathlib import Path

from tasks.cache import PACKAGES, code_version


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
