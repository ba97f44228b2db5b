"""Deploy tooling: render, lint and validate the chart (Helm's engine via helm-python-sdk), install it.

``python -m infra.deploy render`` (``make render``) and ``python -m infra.deploy install``
(``make deploy``); the chart tests import :mod:`infra.deploy.chart`.
"""
