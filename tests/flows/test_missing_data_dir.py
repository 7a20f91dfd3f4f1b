"""A given data folder that is missing or lacks the files fails naming it, offline: in a flow
run (``data.data_dir``) and on the command line (``--data-dir``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.params import DataParams, PipelineOptions, SearchParams
from tasks.errors import DataError

REQUESTS: list[object] = []


def _no_request(*args: object, **kwargs: object) -> None:
    REQUESTS.append(args)
    raise AssertionError(f"a request was made: {args}")


def test_a_flow_run_refuses_a_missing_data_dir_without_any_request(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import mnist_pipeline

    monkeypatch.setattr("tasks.data.sources.download", _no_request)
    monkeypatch.setattr("tasks.data.download.urllib.request.urlopen", _no_request)
    missing = tmp_path / "nonexistent" / "mnist"
    data = DataParams(dataset="mnist", data_dir=str(missing), cache_dir=str(tmp_path / "cache"))
    options = PipelineOptions(out_dir=str(tmp_path / "out"), registry_dir=str(tmp_path / "reg"))
    with pytest.raises(DataError) as info:
        mnist_pipeline(data=data, search=SearchParams(trials=2), options=options)
    assert str(info.value) == f"data.data_dir={missing}: no such directory"
    assert REQUESTS == []


def test_the_command_line_names_a_folder_without_the_files_as_its_option(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from flows.cli import main

    monkeypatch.setattr("tasks.data.sources.download", _no_request)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNIST_FLOW_CACHE", str(tmp_path / "cache"))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["train", "--dataset", "mnist", "--data-dir", str(empty)]) == 1
    errors = capsys.readouterr().err.strip().splitlines()
    assert errors[-1] == (
        f"mnist-flow: error: --data-dir {empty}: no file named train-images-idx3-ubyte[.gz] "
        "or train-images.idx3-ubyte[.gz]"
    )
    assert REQUESTS == []
