"""The register-model task: registry entry, promotion and the ``mnist-promotion`` artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.register import PROMOTION_ARTIFACT_KEY, register_model
from tasks.registry.promotion import PromotionDecision
from tasks.registry.store import Registry
from tests.tasks.registry.test_store import fake_model


def read_promotion_artifacts() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[PROMOTION_ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
        )


def test_register_publishes_the_decision(prefect_harness, tmp_path: Path) -> None:
    registry_dir = str(tmp_path / "registry")
    first_model = fake_model(tmp_path / "first")
    second_model = fake_model(tmp_path / "second")
    before = len(read_promotion_artifacts())

    @flow
    def two_runs() -> tuple[PromotionDecision, PromotionDecision]:
        first = register_model(
            str(first_model), {"test_accuracy": 0.9}, dataset="mnist", registry_dir=registry_dir
        )
        second = register_model(
            str(second_model),
            {"test_accuracy": 0.905},
            dataset="mnist",
            registry_dir=registry_dir,
            margin=0.01,
        )
        return first, second

    first, second = two_runs()
    assert first.promoted and first.champion_version is None
    assert not second.promoted and second.champion_version == first.challenger_version
    assert Registry(registry_dir).champion().version == first.challenger_version

    artifacts = read_promotion_artifacts()
    assert len(artifacts) == before + 2  # one version per run under the same key
    latest, earlier = artifacts[0], artifacts[1]
    assert latest.type == "markdown" and latest.key == PROMOTION_ARTIFACT_KEY
    assert latest.data == second.to_markdown()
    assert "not promoted" in latest.data and "| challenger | v0002 | 0.9050 |" in latest.data
    assert "| champion before | v0001 | 0.9000 |" in latest.data
    assert latest.description == (
        "mnist: v0002 not promoted; test accuracy 0.9050, champion v0001 0.9000, margin 0.0100"
    )
    assert earlier.data == first.to_markdown() and "promoted to champion" in earlier.data
    assert earlier.description.endswith("test accuracy 0.9000, no champion before, margin 0.0000")
    assert latest.flow_run_id is not None and latest.flow_run_id == earlier.flow_run_id
