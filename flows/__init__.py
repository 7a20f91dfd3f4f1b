"""The Prefect flows that chain the tasks; beside them the command line (``flows.cli``), its
local processes (``flows.local``) and the served champion (``flows.serve``)."""
