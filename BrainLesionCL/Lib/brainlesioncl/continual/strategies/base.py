"""The interface every continual-learning strategy implements, and what an episode hands it.

A strategy is a small object with four hooks the training loop calls: :meth:`Strategy.begin` once before training
(with the frozen teacher, i.e. the parent version, and whatever state the parent stored for this strategy),
:meth:`Strategy.loss` at every step (the term added to the segmentation loss), :meth:`Strategy.after_step` after every
optimiser step, and :meth:`Strategy.end` once after training, returning tensors the new version stores for the next
episode (e.g. EWC importance). None of them ever sees old data: that is the privacy contract of an episode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ...errors import SettingsError
from ...training.data import TrainingCase
from ...training.trainer import TrainConfig

__all__ = ["EpisodeSetup", "Strategy"]


@dataclass
class EpisodeSetup:
    """Everything a strategy may use, built by the episode runner."""

    network: nn.Module  # the student, initialised from the parent's weights
    teacher: nn.Module | None  # the parent, frozen and in eval mode; None on a first episode
    cases: Sequence[TrainingCase]  # this episode's training cases (only these)
    disease: str
    disease_slots: list[str]
    channel_count: int
    seen_diseases: list[str]  # diseases the parent was trained on
    config: TrainConfig
    device: torch.device
    parent_state: Mapping[str, torch.Tensor] = field(default_factory=dict)  # what the parent stored for us


class Strategy:
    """Base class: plain fine-tuning (no extra term). Subclasses override the hooks they need."""

    #: Short name used on the command line and in version metadata.
    name: ClassVar[str] = "naive"
    #: Hyper-parameters and their defaults; constructor keywords must be among these.
    defaults: ClassVar[dict[str, Any]] = {}
    #: Whether the strategy needs the parent as a frozen teacher.
    needs_teacher: ClassVar[bool] = False
    #: True only for the Joint upper bound, which trains on every episode's data (benchmarks only).
    replays_data: ClassVar[bool] = False

    def __init__(self, **hyperparameters: Any) -> None:
        unknown = set(hyperparameters) - set(self.defaults)
        if unknown:
            raise SettingsError(
                f"strategy {self.name!r} has no option {sorted(unknown)}; its options are {sorted(self.defaults)}"
            )
        for key, value in hyperparameters.items():
            _check_hyperparameter(self.name, key, value, self.defaults[key])
        self.hyperparameters: dict[str, Any] = {**self.defaults, **hyperparameters}
        #: Values computed while running (e.g. the dynamic alpha), recorded in the version metadata.
        self.runtime: dict[str, Any] = {}
        self.setup: EpisodeSetup | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.hyperparameters.items())})"

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "hyperparameters": dict(self.hyperparameters), **self.runtime}

    # -- hooks ---------------------------------------------------------------------------------------------------
    def begin(self, setup: EpisodeSetup) -> None:
        self.setup = setup

    def loss(
        self, network: nn.Module, x: torch.Tensor, context: torch.Tensor, logits: torch.Tensor, features: torch.Tensor
    ) -> torch.Tensor | float:
        return 0.0

    def after_step(self, network: nn.Module) -> None:
        return None

    def end(self, network: nn.Module) -> dict[str, torch.Tensor]:
        """Tensors to store in the new version for this strategy's next episode."""
        return {}

    # -- resume ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Running state saved in the epoch checkpoint (so a resumed episode continues exactly)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None

    # -- helpers for subclasses ----------------------------------------------------------------------------------
    def teacher_outputs(self, x: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen parent's logits and bottleneck features on the student's exact input and context."""
        assert self.setup is not None and self.setup.teacher is not None
        with torch.no_grad():
            return self.setup.teacher(x, context, give_feature=True)


def _check_hyperparameter(strategy: str, key: str, value: Any, default: Any) -> None:
    """Numbers stay numbers: a hyper-parameter whose default is a number (or None, meaning "computed") must be given
    a finite, non-negative number, so ``--option beta=abc`` fails at once instead of deep inside training."""
    import math

    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not (numeric or default is None):
        return
    if value is None and default is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SettingsError(
            f"strategy {strategy!r}: option {key} must be a non-negative number"
            f"{' (or null to compute it)' if default is None else ''}, got {value!r}; e.g. --option {key}="
            f"{default if default is not None else 0.5}"
        )
    if isinstance(default, int) and not isinstance(value, int):
        raise SettingsError(f"strategy {strategy!r}: option {key} must be a whole number, got {value!r}.")


def named_parameters(network: nn.Module) -> dict[str, nn.Parameter]:
    """Trainable parameters by name (the unwrapped network: DDP's ``module.`` prefix never appears)."""
    return {k: p for k, p in network.named_parameters() if p.requires_grad}
