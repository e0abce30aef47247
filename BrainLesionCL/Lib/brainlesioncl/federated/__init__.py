"""Federated episodes: one continual-learning episode trained by several hospitals, no image leaving any of them.

Each round, every site starts from the global weights, trains locally with the chosen continual-learning strategy
(dual distillation against the parent works unchanged: every site holds the parent), and sends back only the
network's weights and its case count; Flower's FedAvg (or FedProx, or FedAvgM with server momentum) averages them,
weighted by cases. At the end the server writes one registry version whose metadata records the parent, strategy,
aggregation, rounds, sites and cases per site. Nothing is written if the federation fails; a restarted server
resumes after its last complete round.

==========================  ==========================================================================================
module                      job
==========================  ==========================================================================================
:mod:`.settings`            the federation's settings, sent to the sites with every round
:mod:`.site`                a site's local training and validation (no Flower)
:mod:`.server`              the round log, restart checkpoints and the final version (no Flower)
:mod:`.flower_apps`         Flower's ServerApp and ClientApp, and an in-process grid (imports ``flwr``)
==========================  ==========================================================================================

``flwr`` is an optional dependency (``pip install brainlesioncl[federated]``), imported only by
:mod:`.flower_apps` and the ``brainlesioncl federated`` commands.
"""

from .server import FederatedServer, RoundRecord
from .settings import AGGREGATIONS, FederationSettings
from .site import FederatedSite, FederationError, parent_fingerprint

__all__ = ["AGGREGATIONS", "FederatedServer", "FederatedSite", "FederationError", "FederationSettings",
           "RoundRecord", "parent_fingerprint"]
