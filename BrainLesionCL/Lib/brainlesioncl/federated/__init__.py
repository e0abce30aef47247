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
:mod:`.site_errors`         the only failure texts a site may send (codes, never its own error messages)
:mod:`.environment`         Flower's telemetry and update check off; Flower's helpers found on any ``PATH``
:mod:`.flower_apps`         Flower's ServerApp and ClientApp, and an in-process grid (imports ``flwr``)
==========================  ==========================================================================================

``flwr`` is an optional dependency (``pip install -e '.[federated]'`` from a clone), imported only by
:mod:`.flower_apps` and the ``brainlesioncl federated`` commands. Importing this package switches Flower's telemetry
and update check off for the process (:mod:`.environment`), before Flower is imported.
"""

from .environment import quiet_flower_here

quiet_flower_here()

from .server import FederatedServer, RoundRecord  # noqa: E402 - after quiet_flower_here()
from .settings import AGGREGATIONS, FederationSettings  # noqa: E402
from .site import FederatedSite, FederationError, parent_fingerprint  # noqa: E402 - after quiet_flower_here()

__all__ = ["AGGREGATIONS", "FederatedServer", "FederatedSite", "FederationError", "FederationSettings",
           "RoundRecord", "parent_fingerprint"]
