"""Integration tests against a real Prefect server, work pool, deployment and worker."""
