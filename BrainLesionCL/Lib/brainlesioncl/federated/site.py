"""One hospital in a federated episode: its cases never leave it, only weights and a few numbers do.

A site is a local episode that does not write a version: the same :func:`~brainlesioncl.continual.prepare_episode`
(parent as frozen teacher, the chosen continual-learning strategy set up against it, cases prepared as the model
prepares them), then, each round, ``local_steps`` optimiser steps starting from the global weights the server sent.
What goes back is the network's state dict (the tensors the parent's architecture names, nothing else), the number
of training cases (FedAvg's weight) and the round's mean loss; an evaluation reply carries only Dice and a count.

The parent must be the server's: a site whose copy of the parent differs (another version, or the same name with
other weights) refuses to train, and says why, instead of averaging weights of two different models.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..continual.episode import EpisodePlan, prepare_episode, validation_metrics
from ..errors import BrainLesionCLError
from ..registry import ModelRegistry
from ..training.data import TrainingCase
from ..training.trainer import train
from .settings import FederationSettings

__all__ = ["FederatedSite", "FederationError", "audit_prefix", "check_site_cases", "parent_fingerprint"]


class FederationError(BrainLesionCLError):
    """A federated episode cannot go on (a site refused, too few sites answered); nothing was written.

    ``code``: for a site's refusal, the code of :data:`~.site_errors.SITE_ERRORS` its reply carries instead of this
    message (which may name local paths)."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def parent_fingerprint(registry: ModelRegistry, version: str) -> str:
    """SHA-256 of a version's network weights, as its bundle records it (the file is checked against it whenever the
    network is built): two sites agree on the parent only if their weights are identical."""
    return str(registry.get(version).metadata.sha256["network"])


class FederatedSite:
    """A site's local half of a federated episode (see the module docstring)."""

    def __init__(self, plan: EpisodePlan, fingerprint: str, *, label: str | None = None,
                 audit_dir: str | os.PathLike | None = None, status_file: str | os.PathLike | None = None) -> None:
        self.plan = plan
        self.fingerprint = fingerprint
        self.label = label
        #: Where every reply is copied before it leaves (the hospital's record of what it sent), or None.
        self.audit_dir = Path(audit_dir) if audit_dir else None
        #: A small JSON file rewritten after every reply (round, rounds, kind, scores): how ``brainlesioncl
        #: federated site --progress`` and the Slicer panel follow a site whose training runs in Flower's processes.
        self.status_file = Path(status_file) if status_file else None
        #: The tensors a reply may carry: exactly the parent network's state-dict entries.
        self.expected = {k: (tuple(v.shape), v.dtype) for k, v in plan.network.state_dict().items()}

    @classmethod
    def open(
        cls,
        cases: Sequence[TrainingCase] | str | os.PathLike,
        settings: FederationSettings,
        *,
        registry: ModelRegistry | None = None,
        device: str | torch.device = "auto",
        label_mapping: str = "strict",
        prepare: str = "auto",
        label: str | None = None,
        audit_dir: str | os.PathLike | None = None,
        status_file: str | os.PathLike | None = None,
        progress: Callable[[dict], None] | None = None,
    ) -> FederatedSite:
        """Load this site's annotated cases (a folder or manifest, or prepared cases) and the parent the server
        named, ready for rounds.

        Raises:
            FederationError: this site has no copy of the parent.
            InvalidImageError, SettingsError: as a local episode on these cases would.
        """
        registry = registry or ModelRegistry()
        try:
            fingerprint = parent_fingerprint(registry, settings.parent)
        except BrainLesionCLError as err:
            raise FederationError(
                f"this site has no model version {settings.parent!r}, the federation's parent ({err}). Install the "
                "same version the server uses (brainlesioncl models import ...) before joining.", code="no-parent"
            ) from err
        plan = prepare_episode(
            cases, settings.disease, parent=settings.parent, registry=registry, config=settings.episode_config(),
            device=device, label_mapping=label_mapping, prepare=prepare, progress=progress,
        )
        return cls(plan, fingerprint, label=label, audit_dir=audit_dir, status_file=status_file)

    @property
    def case_count(self) -> int:
        return len(self.plan.training)

    def check_parent(self, parent: str, fingerprint: str) -> None:
        """Refuse a round whose global model is not this site's parent (with the reason, for both ends' logs)."""
        if parent != self.plan.parent_id or fingerprint != self.fingerprint:
            raise FederationError(
                f"site{f' {self.label}' if self.label else ''} refuses: the federation's parent is {parent!r} "
                f"(weights {fingerprint[:12]}), this site's is {self.plan.parent_id!r} (weights "
                f"{self.fingerprint[:12]}). Every site must start from the same version.", code="other-parent"
            )

    def check_update(self, state: Mapping[str, torch.Tensor]) -> None:
        """Global weights must be the parent's architecture, tensor for tensor (a foreign model is refused)."""
        got = {k: tuple(v.shape) for k, v in state.items()}
        want = {k: shape for k, (shape, _dtype) in self.expected.items()}
        if got != want:
            missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
            raise FederationError(
                f"the global weights do not fit this site's parent ({len(missing)} tensors missing, e.g. "
                f"{missing[:2]}; {len(extra)} unexpected, e.g. {extra[:2]}); the server and sites run other models.",
                code="foreign-weights")

    def _load(self, state: Mapping[str, torch.Tensor]) -> None:
        self.check_update(state)
        network = self.plan.network
        network.load_state_dict({k: state[k].to(dtype) for k, (_shape, dtype) in self.expected.items()})

    def train_round(
        self,
        state: Mapping[str, torch.Tensor],
        server_round: int,
        *,
        learning_rate: float,
        proximal_mu: float = 0.0,
        cancel: Callable[[], bool] | None = None,
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """``local_steps`` steps from the global weights; returns the new weights and ``{num-examples, loss}``.

        FedProx adds ``mu / 2 * ||w - w_global||^2`` to the strategy's loss, keeping a site with unusual data from
        pulling far from the others."""
        plan = self.plan
        self._load(state)
        network = plan.network
        anchor = {k: p.detach().clone() for k, p in network.named_parameters() if p.requires_grad}
        strategy_loss = plan.strategy.loss

        def loss(net: torch.nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor,
                 features: torch.Tensor) -> torch.Tensor | float:
            total = strategy_loss(net, x, context, logits, features)
            if proximal_mu > 0:
                drift = sum(((p - anchor[k]) ** 2).sum() for k, p in net.named_parameters() if k in anchor)
                total = total + 0.5 * proximal_mu * drift
            return total

        config = dataclasses.replace(plan.train_config, epochs=1, learning_rate=learning_rate,
                                     seed=plan.train_config.seed + 7919 * server_round, keep="last")
        result = train(network, plan.training, config, plan.slots, device=plan.device, extra_loss=loss,
                       after_step=plan.strategy.after_step, cancel=cancel)
        new_state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
        losses = [record["loss"] for record in result.history]
        return new_state, {"num-examples": float(self.case_count), "loss": float(np.mean(losses))}

    def evaluate(self, state: Mapping[str, torch.Tensor]) -> dict[str, float]:
        """The global model's Dice on this site's validation cases (its training cases when it has too few to hold
        any out, then ``on-training-cases`` is 1)."""
        plan = self.plan
        self._load(state)
        cases = plan.validation or plan.training
        scores = validation_metrics(plan.network, cases, plan.slots, plan.device,
                                    plan.parent_metadata.preprocess_config.spacing, plan.parent_metadata.output)
        return {"num-examples": float(len(cases)), "dice": float(scores.get("dice") or 0.0),
                "on-training-cases": float(not plan.validation)}

    def record_reply(self, kind: str, server_round: int, rounds: int, metrics: Mapping[str, float],
                     state: Mapping[str, torch.Tensor] | None = None, *, run: str = "") -> None:
        """Before a reply leaves: copy it into the audit folder (``<run>-round-<n>-<kind>.json`` with the numbers, and
        for training ``<run>-round-<n>-train.safetensors`` with the tensors exactly as sent; ``run`` is the server's
        id of the federated episode, so a second episode never overwrites the first one's record), and update the
        status file."""
        record = {"site": self.label, "run": run, "round": server_round, "rounds": rounds, "kind": kind,
                  "metrics": dict(metrics)}
        if self.audit_dir is not None:
            from safetensors.torch import save_file

            self.audit_dir.mkdir(parents=True, exist_ok=True)
            stem = self.audit_dir / f"{audit_prefix(run)}round-{server_round}-{kind}"
            if state is not None:
                partial = stem.with_name(stem.name + ".safetensors.partial")
                save_file({k: v.contiguous() for k, v in state.items()}, str(partial))
                partial.replace(stem.with_name(stem.name + ".safetensors"))
            _write_json(stem.with_name(stem.name + ".json"), record)
        if self.status_file is not None:
            self.status_file.parent.mkdir(parents=True, exist_ok=True)
            _write_json(self.status_file, record)


def audit_prefix(run: str) -> str:
    """``"<run>-"`` for an audit file name (only letters, digits, ``-`` and ``_`` of the run id)."""
    safe = "".join(c for c in run if c.isalnum() or c in "-_")
    return f"{safe}-" if safe else ""


def check_site_cases(source: str | os.PathLike) -> int:
    """What a site checks before it joins (seconds, not a round later): its cases are found, all labelled, and every
    image and label file can be read; returns the number of cases.

    Raises:
        NoCasesError, UnlabelledCasesError, InvalidImageError: with the case and the fix (for the site's operator;
            none of it is sent).
    """
    import SimpleITK as sitk

    from ..cases import find_annotated_cases
    from ..errors import InvalidImageError

    specs = find_annotated_cases(source)
    for spec in specs:
        for what, path in [*((m.value, p) for m, p in spec.images.items()), ("label", spec.label)]:
            reader = sitk.ImageFileReader()
            reader.SetFileName(str(path))
            try:
                reader.ReadImageInformation()
            except RuntimeError as err:
                raise InvalidImageError(f"case {spec.name}: the {what} file {path} cannot be read; fix or remove "
                                        "the case.") from err
    return len(specs)


def _write_json(path: Path, record: Mapping[str, object]) -> None:
    """Atomically (a reader never sees half a file)."""
    import json

    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(record, indent=1), encoding="utf-8")
    partial.replace(path)
