"""The settings of one federated episode, decided by the server and sent to every site with each round.

Why the server decides: a federated episode is one experiment, so every site must train with the same strategy,
crop size and learning rate; a site only chooses which of its cases take part. The settings travel as Flower
``ConfigRecord`` values (flat numbers and strings), so :meth:`FederationSettings.round_config` and
:meth:`FederationSettings.from_round_config` are the whole wire format of the settings.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..continual.episode import EpisodeConfig
from ..errors import SettingsError

__all__ = ["AGGREGATIONS", "FederationSettings"]

#: Aggregations offered, each a Flower strategy: weighted FedAvg; FedProx for sites with very different data; FedAvgM
#: (FedAvg with server momentum), which keeps moving the global model along the rounds' mean update. Averaging sites
#: moves the model about as far as one site does, so with few rounds FedAvg stays well short of training on all the
#: cases in one place; momentum lets the rounds add up.
AGGREGATIONS = ("fedavg", "fedprox", "fedavgm")


@dataclass(frozen=True)
class FederationSettings:
    """One federated episode: which parent learns which disease, how, for how many rounds."""

    parent: str
    disease: str
    rounds: int = 5
    #: Optimiser steps each site takes per round, starting from the global weights.
    local_steps: int = 20
    learning_rate: float = 5e-4
    #: "cosine" decays the learning rate over the rounds to 1 % (as a local episode's cosine schedule), or "constant".
    schedule: str = "cosine"
    aggregation: str = "fedavg"
    #: FedProx's proximal weight mu (only with ``aggregation="fedprox"``).
    proximal_mu: float = 0.01
    #: FedAvgM's server momentum beta (only with ``aggregation="fedavgm"``): each round moves the global model by the
    #: mean update plus beta times the previous move. 0.5 on the three-hospital benchmark (docs/BENCHMARKS.md): the
    #: new disease within 2 points of central training and the old disease kept as well as by any local episode.
    #: 0.7 learnt the new disease more and the old less; 0.9 (the literature's usual value, for hundreds of rounds)
    #: overshot, and the old disease fell 10.9 points.
    server_momentum: float = 0.5
    #: FedAvgM's server learning rate (the move is this times the momentum-accumulated mean update).
    server_learning_rate: float = 1.0
    #: Fewest sites whose update a round must aggregate; a round with fewer fails the episode (no version written).
    min_sites: int = 2
    strategy: str = "ours"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 64
    batch_size: int = 2
    seed: int = 0
    #: Differential privacy (Flower's server-side fixed clipping): clip each site's update to this L2 norm ...
    dp_clip: float | None = None
    #: ... and add Gaussian noise of this multiplier (times the clip) to the aggregate.
    dp_noise: float = 0.0
    #: Model name of the new version (default: the parent's).
    name: str | None = None
    #: Seconds the server waits for the sites' replies in a round; a site that has not answered is dropped.
    round_timeout: float = 3600.0

    def __post_init__(self) -> None:
        """Checked before any site is contacted, with the option to fix named."""
        for option, value, low in (("rounds", self.rounds, 1), ("local-steps", self.local_steps, 1),
                                   ("min-sites", self.min_sites, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"--{option} must be a whole number >= {low}, got {value!r}.")
        if self.aggregation not in AGGREGATIONS:
            raise SettingsError(f"--aggregation must be one of {', '.join(AGGREGATIONS)}, not {self.aggregation!r}.")
        if self.schedule not in ("cosine", "constant"):
            raise SettingsError(f"--schedule must be cosine or constant, not {self.schedule!r}.")
        for option, number in (("proximal-mu", self.proximal_mu), ("dp-noise", self.dp_noise),
                               ("round-timeout", self.round_timeout)):
            if not (isinstance(number, (int, float)) and math.isfinite(number) and number >= 0):
                raise SettingsError(f"--{option} must be a non-negative number, got {number!r}.")
        if not (isinstance(self.server_momentum, (int, float)) and 0 <= self.server_momentum < 1):
            raise SettingsError(f"--server-momentum must be in [0, 1), got {self.server_momentum!r}.")
        if not (isinstance(self.server_learning_rate, (int, float)) and math.isfinite(self.server_learning_rate)
                and self.server_learning_rate > 0):
            raise SettingsError(f"--server-learning-rate must be a positive number, got {self.server_learning_rate!r}.")
        if self.aggregation == "fedavgm" and self.dp_clip is not None:
            raise SettingsError("--aggregation fedavgm cannot be combined with --dp-clip: the privacy noise would be "
                                "carried from round to round by the momentum. Use fedavg with differential privacy.")
        if self.dp_clip is not None and not (math.isfinite(self.dp_clip) and self.dp_clip > 0):
            raise SettingsError(f"--dp-clip must be a positive number (an L2 norm), got {self.dp_clip!r}.")
        if self.dp_noise > 0 and self.dp_clip is None:
            raise SettingsError("--dp-noise needs --dp-clip: the noise is scaled to the clipping norm.")
        self.episode_config()  # strategy, options, crop size, learning rate: EpisodeConfig checks them

    def episode_config(self) -> EpisodeConfig:
        """What every site's local training runs with (one round = ``local_steps`` steps of this)."""
        return EpisodeConfig(
            strategy=self.strategy, strategy_options=dict(self.strategy_options), epochs=1,
            steps_per_epoch=self.local_steps, crop_size=self.crop_size, batch_size=self.batch_size,
            learning_rate=self.learning_rate, schedule="constant", validation_fraction=0.2, keep="last",
            seed=self.seed,
        )

    def learning_rate_at(self, server_round: int) -> float:
        """The round's learning rate: constant, or cosine from the full rate (round 1) down to 1 % (last round)."""
        if self.schedule == "constant" or self.rounds == 1:
            return self.learning_rate
        progress = (server_round - 1) / (self.rounds - 1)
        return self.learning_rate * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))

    def round_config(self, server_round: int) -> dict[str, int | float | str]:
        """The flat values a site needs for one round (Flower ConfigRecord values)."""
        return {
            "disease": self.disease, "parent": self.parent, "strategy": self.strategy,
            "strategy-options": json.dumps(self.strategy_options, sort_keys=True),
            "local-steps": self.local_steps, "learning-rate": self.learning_rate_at(server_round),
            "base-learning-rate": self.learning_rate,
            "proximal-mu": self.proximal_mu if self.aggregation == "fedprox" else 0.0,
            "crop-size": self.crop_size, "batch-size": self.batch_size, "seed": self.seed,
            "rounds": self.rounds,
        }

    @classmethod
    def from_round_config(cls, config: dict[str, Any]) -> FederationSettings:
        """The settings a site reads from a round's config (only what local training needs is carried)."""
        try:
            return cls(
                parent=str(config["parent"]), disease=str(config["disease"]), strategy=str(config["strategy"]),
                strategy_options=json.loads(str(config["strategy-options"])),
                local_steps=int(config["local-steps"]), learning_rate=float(config["base-learning-rate"]),
                crop_size=int(config["crop-size"]), batch_size=int(config["batch-size"]), seed=int(config["seed"]),
                rounds=int(config["rounds"]),
            )
        except KeyError as err:
            raise SettingsError(
                f"the server's round configuration has no {err.args[0]!r}: the server runs another BrainLesionCL "
                "version than this site. Install the same version at every site."
            ) from err

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
