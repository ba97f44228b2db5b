"""The rendered chart, run by ``podman kube play``: transform.py (every change made to the rendered
objects, and why), engine.py (podman), pods.py (the run: play, probes, requests, plans, security).

    python -m infra.kubeplay [--tag ci]        (after `make images`; `make kubeplay` runs the test)
"""
