"""Atomic writes: complete file or the old one, readable mode, nothing left on failure."""

from __future__ import annotations

import json
import os

import pytest

from tasks import files


def test_write_json_replaces_the_file_and_respects_the_umask(tmp_path):
    target = tmp_path / "a.json"
    target.write_text("old")
    old_mask = os.umask(0o027)
    try:
        files.write_json_atomic(target, {"b": 1, "a": [1.5]})
    finally:
        os.umask(old_mask)
    assert json.loads(target.read_text()) == {"a": [1.5], "b": 1}
    assert target.stat().st_mode & 0o777 == 0o640
    assert list(tmp_path.iterdir()) == [target]


def test_nan_is_refused_before_anything_is_written(tmp_path):
    target = tmp_path / "m.json"
    target.write_text('{"kept": true}')
    with pytest.raises(ValueError):
        files.write_json_atomic(target, {"loss": float("nan")})
    assert json.loads(target.read_text()) == {"kept": True}
    assert list(tmp_path.iterdir()) == [target]
    files.write_json_atomic(target, {"loss": float("inf")}, allow_nan=True)
    assert "Infinity" in target.read_text()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "r.md"
    target.write_text("old report")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        files.write_text_atomic(target, "new report")
    assert target.read_text() == "old report"
    assert list(tmp_path.iterdir()) == [target]


def test_copy_and_missing_source(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"\x00\x01payload")
    dst = tmp_path / "out" / "dst.bin"
    dst.parent.mkdir()
    files.copy_atomic(src, dst)
    assert dst.read_bytes() == b"\x00\x01payload"
    with pytest.raises(FileNotFoundError):
        files.copy_atomic(tmp_path / "missing.bin", dst)
    assert dst.read_bytes() == b"\x00\x01payload"
    assert list(dst.parent.iterdir()) == [dst]


def test_a_directory_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "v0001"
    with files.write_directory_atomic(target, prefix=".tmp-") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-")
        (tmp / "a.txt").write_text("a")
        assert not target.exists()  # a reader cannot see it half written
    assert [p.name for p in target.iterdir()] == ["a.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v0001"]

    with pytest.raises(RuntimeError, match="crash"):
        with files.write_directory_atomic(tmp_path / "v0002") as tmp:
            (tmp / "half.npy").write_bytes(b"\x93NUMPY")
            raise RuntimeError("crash while filling")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v0001"]


def test_an_existing_directory_is_an_error_unless_the_caller_decides(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")

    def fill(replace_existing):
        with files.write_directory_atomic(target, replace_existing=replace_existing) as tmp:
            (tmp / "new.txt").write_text("new")

    with pytest.raises(OSError):
        fill(None)  # never overwritten silently
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    asked = []
    fill(lambda existing: asked.append(existing) or False)  # keep what is there
    assert asked == [target] and [p.name for p in target.iterdir()] == ["old.txt"]
    fill(lambda existing: True)  # replace it
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
