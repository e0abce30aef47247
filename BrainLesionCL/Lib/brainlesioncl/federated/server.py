"""The server's half of a federated episode, without Flower: the parent, the round log, restart, the new version.

Flower moves the messages and averages the weights (:mod:`.flower_apps`); this module keeps what BrainLesionCL
promises around that: the global model starts as the parent version, every round is logged (sites that answered,
sites that failed and why, cases, loss, validation Dice), the global weights are checkpointed after every round so
a restarted server continues where it stopped, and only a finished federation writes a version: one registry
version whose metadata records the parent, the strategy, the aggregation, the rounds, the number of sites and the
cases per site (labels only if the operator gave them). A failed or interrupted federation writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import torch

from ..continual.episode import Lineage, resolve_lineage, write_episode_version
from ..registry import ModelRegistry
from .settings import FederationSettings
from .site import FederationError, parent_fingerprint

__all__ = ["FederatedServer", "RoundRecord"]


@dataclass
class RoundRecord:
    """What one round did, as the server saw it (no case or patient information: counts and scores only)."""

    round: int
    sites: int = 0  # sites whose update was aggregated
    #: Which site failed and why: the site's label and an allow-listed code (:mod:`.site_errors`), or that it did not
    #: answer; never a site's own error text.
    failures: list[str] = field(default_factory=list)
    cases: dict[str, int] = field(default_factory=dict)  # cases per site (site label, or "site-<n>")
    loss: float | None = None  # case-weighted mean training loss
    dice: float | None = None  # case-weighted mean validation Dice of the round's global model
    site_dice: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    #: L2 norm of each site's update (its weights minus the round's global weights, floating-point tensors), as
    #: aggregated: after clipping when differential privacy is on. The median of a run without DP is where
    #: ``--dp-clip`` starts to bite (docs/FEDERATED.md).
    update_norms: dict[str, float] = field(default_factory=dict)


class FederatedServer:
    """Coordinates one federated episode's state (see the module docstring)."""

    def __init__(self, settings: FederationSettings, *, registry: ModelRegistry | None = None,
                 progress: Callable[[RoundRecord], None] | None = None) -> None:
        self.settings = settings
        self.registry = registry or ModelRegistry()
        self.lineage, network = resolve_lineage(settings.disease, parent=settings.parent, registry=self.registry,
                                                config=settings.episode_config(), name=settings.name)
        self.initial_state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
        self.fingerprint = parent_fingerprint(self.registry, settings.parent)
        self.progress = progress
        self.rounds: list[RoundRecord] = []
        #: FedAvgM's server momentum after the last finished round (restored on a restart; None otherwise).
        self.momentum: dict[str, torch.Tensor] | None = None
        self.work = self.registry.root / "work" / f"federated-{self._key()}"
        #: This episode's id (start time and settings): sites name their audit files with it, so a second episode
        #: never overwrites the first one's record. A restarted server keeps it (see :meth:`resume`).
        self.run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{self._key()[:6]}"
        self._started = time.perf_counter()
        self._round_started = self._started

    def _key(self) -> str:
        """The restart folder's name: the same federation (parent weights and settings) gets the same folder."""
        identity = [self.settings.to_dict(), self.fingerprint]
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
        return digest.hexdigest()[:16]

    # -- restart ---------------------------------------------------------------------------------------------------
    def resume(self) -> tuple[dict[str, torch.Tensor], int]:
        """The global weights to start from and the rounds already done (0 and the parent on a fresh start)."""
        log, weights, momentum = self.work / "rounds.json", self.work / "global.pt", self.work / "momentum.pt"
        if not (log.exists() and weights.exists()):
            return dict(self.initial_state), 0
        if (self.work / "run.txt").exists():
            self.run_id = (self.work / "run.txt").read_text(encoding="utf-8").strip() or self.run_id
        records = json.loads(log.read_text(encoding="utf-8"))
        state = torch.load(weights, map_location="cpu", weights_only=True)  # our own tensors; never pickle
        if set(state) != set(self.initial_state):
            return dict(self.initial_state), 0  # another model's checkpoint: start over rather than mix
        if momentum.exists():
            stored = torch.load(momentum, map_location="cpu", weights_only=True)
            if set(stored) != set(self.initial_state):
                return dict(self.initial_state), 0  # as above: never carry another model's momentum
            self.momentum = stored
        self.rounds = [RoundRecord(**r) for r in records]
        return state, len(self.rounds)

    def checkpoint(self, state: Mapping[str, torch.Tensor],
                   momentum: Mapping[str, torch.Tensor] | None = None) -> None:
        """Global weights (and FedAvgM's momentum) and the round log after a finished round (atomic: a crash leaves
        the previous round; the log is written last, so it never names a round whose tensors are missing)."""
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "run.txt").write_text(self.run_id, encoding="utf-8")
        for name, tensors in (("global.pt", state), ("momentum.pt", momentum)):
            if tensors is not None:
                partial = self.work / f"{name}.partial"
                torch.save({k: v.detach().cpu() for k, v in tensors.items()}, partial)
                partial.replace(self.work / name)
        log = self.work / "rounds.json.partial"
        log.write_text(json.dumps([asdict(r) for r in self.rounds], indent=1), encoding="utf-8")
        log.replace(self.work / "rounds.json")

    # -- rounds ----------------------------------------------------------------------------------------------------
    def round_config(self, server_round: int) -> dict[str, int | float | str]:
        """What every site gets with a round: the settings, the parent's fingerprint and the round's number."""
        return {**self.settings.round_config(server_round), "parent-fingerprint": self.fingerprint,
                "round": server_round, "run": self.run_id}

    def record_training(self, server_round: int, replies: Sequence[tuple[str, Mapping[str, float]]],
                        failures: list[str], update_norms: Mapping[str, float] | None = None) -> None:
        """Log the training replies of a round; fewer than ``min_sites`` answers ends the federation."""
        record = RoundRecord(round=server_round, sites=len(replies), failures=list(failures),
                             update_norms={site: round(float(n), 6) for site, n in (update_norms or {}).items()})
        record.cases = {site: int(metrics["num-examples"]) for site, metrics in replies}
        total = sum(record.cases.values())
        if total:
            record.loss = sum(float(m["loss"]) * m["num-examples"] for _, m in replies) / total
        self.rounds = [r for r in self.rounds if r.round != server_round] + [record]
        if len(replies) < self.settings.min_sites:
            reasons = "; ".join(failures) or "no site answered in time"
            raise FederationError(
                f"round {server_round}: {len(replies)} site(s) sent an update, fewer than the "
                f"{self.settings.min_sites} required (--min-sites). Reasons: {reasons}. No version was written; fix "
                "the sites and start the server again (it resumes after the last complete round)."
            )

    def record_evaluation(self, server_round: int, replies: Sequence[tuple[str, Mapping[str, float]]],
                          failures: list[str], state: Mapping[str, torch.Tensor],
                          momentum: Mapping[str, torch.Tensor] | None = None) -> RoundRecord:
        """Log the round's validation scores, checkpoint the round's global model, report progress."""
        record = next(r for r in self.rounds if r.round == server_round)
        record.failures += [f"evaluation: {reason}" for reason in failures]
        record.site_dice = {site: round(float(m["dice"]), 4) for site, m in replies}
        counted = sum(m["num-examples"] for _, m in replies)
        if counted:
            record.dice = sum(float(m["dice"]) * m["num-examples"] for _, m in replies) / counted
        now = time.perf_counter()
        record.seconds = round(now - self._round_started, 1)
        self._round_started = now
        self.checkpoint(state, momentum)
        if self.progress is not None:
            self.progress(record)
        return record

    # -- the version -----------------------------------------------------------------------------------------------
    def finish(self, state: Mapping[str, torch.Tensor]) -> str:
        """Write the federation's result as one new version (atomic) and clear the restart folder."""
        done = len(self.rounds)
        if done < self.settings.rounds:
            raise FederationError(f"only {done} of {self.settings.rounds} rounds finished; no version written.")
        lineage: Lineage = self.lineage
        per_site: dict[str, int] = {}
        for record in self.rounds:
            for site, cases in record.cases.items():
                per_site[site] = max(per_site.get(site, 0), cases)
        version, _ = write_episode_version(
            lineage, state, {},
            training={
                "federated": {
                    "rounds": self.settings.rounds, "sites": len(per_site), "cases_per_site": per_site,
                    "aggregation": self.settings.aggregation, "local_steps": self.settings.local_steps,
                    "proximal_mu": self.settings.proximal_mu if self.settings.aggregation == "fedprox" else None,
                    **({"server_momentum": self.settings.server_momentum,
                        "server_learning_rate": self.settings.server_learning_rate}
                       if self.settings.aggregation == "fedavgm" else {}),
                    "dp_clip": self.settings.dp_clip, "dp_noise": self.settings.dp_noise,
                    "history": [asdict(r) for r in self.rounds],
                },
                "cases": sum(per_site.values()),
                "minutes": round((time.perf_counter() - self._started) / 60, 2),
            },
            description=f"Federated episode {lineage.episode_index}: {lineage.trained_tag} learnt by {len(per_site)} "
                        f"sites with strategy {lineage.strategy.name} and {self.settings.aggregation} from "
                        f"{lineage.parent_id}.",
            provenance={"source": "brainlesioncl federated",
                        "data": "annotated cases of every site, never sent (only weights and counts were)"},
        )
        shutil.rmtree(self.work, ignore_errors=True)
        return version

