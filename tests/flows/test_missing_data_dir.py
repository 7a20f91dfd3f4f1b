"""A deployment run given a ``data.data_dir`` that does not exist fails naming it, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.params import DataParams, PipelineOptions, SearchParams
from tasks.errors import DataError


def test_a_flow_run_refuses_a_missing_data_dir_without_any_request(
    prefect_harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pipeline import mnist_pipeline

    requests: list[object] = []

    def no_request(*args: object, **kwargs: object) -> None:
        requests.append(args)
        raise AssertionError(f"a request was made: {args}")

    monkeypatch.setattr("tasks.data.sources.download", no_request)
    monkeypatch.setattr("tasks.data.download.urllib.request.urlopen", no_request)
    missing = tmp_path / "nonexistent" / "mnist"
    data = DataParams(dataset="mnist", data_dir=str(missing), cache_dir=str(tmp_path / "cache"))
    options = PipelineOptions(out_dir=str(tmp_path / "out"), registry_dir=str(tmp_path / "reg"))
    with pytest.raises(DataError) as info:
        mnist_pipeline(data=data, search=SearchParams(trials=2), options=options)
    assert str(info.value) == f"data.data_dir={missing}: no such directory"
    assert requests == []
