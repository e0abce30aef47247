"""The Flower components a deployment runs: ``flwr run`` points at these two objects.

``server_app`` reads the federation's settings from the run config (``flwr run --run-config``, the same words as
``brainlesioncl federated`` options: ``parent``, ``disease``, ``rounds``, ``local-steps``, ...); ``client_app``
reads each site's cases and registry from its SuperNode's ``node-config`` (``cases``, ``registry``, ``label``).
``brainlesioncl federated app`` writes a Flower App folder naming them.
"""

from __future__ import annotations

from .flower_apps import build_client_app, build_server_app

__all__ = ["client_app", "server_app"]

server_app = build_server_app()
client_app = build_client_app()
