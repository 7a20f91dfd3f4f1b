"""The champion as a web page and an HTTP API: draw, predict, correct (``mnist-flow serve``).

:mod:`flows.serve.model` follows the registry's champion and swaps it in without a
restart; :mod:`flows.serve.corrections` keeps the corrections people record until they are
added as a data batch (the same code as ``mnist-flow data add``); :mod:`flows.serve.app`
is the FastAPI application (the page at ``/``, the API under ``/api``, ``/healthz``).
"""
