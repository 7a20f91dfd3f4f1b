"""Prefect task: check the newly added data before a retraining; publish ``mnist-data-check``.

The work is :func:`tasks.data.check.check_added` (counts, pixel statistics against the
training set, the champion's accuracy, the gate). The flow stops the run when the check
fails (:class:`tasks.errors.DataGateError`), after the artifact says why.
"""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from tasks.data.check import DataCheck, check_added
from tasks.data.datasets import DatasetFiles
from tasks.data.versions import Added
from tasks.logs import run_logger

DATA_CHECK_ARTIFACT_KEY = "mnist-data-check"


@task(name="check-data", cache_policy=NO_CACHE)
def check_data(
    files: DatasetFiles, added: Added, registry_dir: str | None, store_dir: str | None
) -> DataCheck:
    """Check the added batches the champion has not seen; publish the result as an artifact."""
    check = check_added(files, added, registry_dir, store_dir)
    run_logger(__name__).info(
        "data check of %d new images: %s", check.n_new, "passed" if check.passed else "failed"
    )
    create_markdown_artifact(
        markdown=check.to_markdown(),
        key=DATA_CHECK_ARTIFACT_KEY,
        description=check.reason,
    )
    return check
