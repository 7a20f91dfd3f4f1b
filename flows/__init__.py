"""Prefect flows that chain the tasks, and the command-line entry point."""
