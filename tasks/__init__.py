"""Pipeline steps: pure functions and the thin Prefect tasks that wrap them."""
