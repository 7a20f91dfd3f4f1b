"""The register-model task: registry entry, promotion and the ``mnist-promotion`` artifact."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.register import PROMOTION_ARTIFACT_KEY, register_model, settle_approval
from tasks.registry.promotion import PromotionDecision, SameSetScores
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
        "mnist: v0002 not promoted; accuracy 0.9050, champion v0001 0.9000 on the test set, "
        "margin 0.0100"
    )
    assert earlier.data == first.to_markdown() and "promoted to champion" in earlier.data
    assert earlier.description.endswith("0.9000, no champion before on the test set, margin 0.0000")
    assert latest.flow_run_id is not None and latest.flow_run_id == earlier.flow_run_id


def test_a_rejection_is_recorded_with_who_and_why_and_the_set_that_decided(
    prefect_harness, tmp_path: Path
) -> None:
    registry_dir = str(tmp_path / "registry")
    first, second = fake_model(tmp_path / "first"), fake_model(tmp_path / "second")
    review = {"approved": False, "by": "ada", "reason": "too few sevens"}

    @flow
    def rejected() -> tuple[PromotionDecision, PromotionDecision]:
        register_model(str(first), {"test_accuracy": 0.9}, dataset="mnist",
                       registry_dir=registry_dir)  # fmt: skip
        scores = SameSetScores(challenger=0.93, champion_version="v0001", champion=0.89,
                               n_images=10_300)  # fmt: skip
        proposal = register_model(str(second), {"test_accuracy": 0.91}, dataset="mnist",
                                  registry_dir=registry_dir, scores=scores, hold=True)  # fmt: skip
        return proposal, settle_approval(proposal, review, registry_dir=registry_dir)

    proposal, decision = rejected()
    assert proposal.promoted and not decision.promoted and decision.review == review
    assert "would become the champion" in proposal.to_markdown(proposal=True)
    assert "promoted" not in proposal.to_markdown(proposal=True)
    assert decision.verdict == "rejected by ada"
    assert decision.reason.endswith("; rejected by ada: too few sevens")
    where = "the same 10,300 images (test set and held-out added data)"
    assert decision.evaluated_on == where and decision.challenger_accuracy == 0.93
    assert f"| role | version | accuracy on {where} |" in decision.to_markdown()
    assert Registry(registry_dir).champion("mnist").version == "v0001"
    [latest] = read_promotion_artifacts()[:1]
    assert latest.data == decision.to_markdown() and "in the Prefect UI" not in latest.data
    assert latest.description.startswith("mnist: v0002 rejected by ada; accuracy 0.9300")
