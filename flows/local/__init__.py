"""The local processes a flow command manages: its temporary Prefect server
(:mod:`flows.local.server`) and the watchdog that cleans up when the command is killed
(:mod:`flows.local.watchdog`)."""
