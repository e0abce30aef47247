"""The interface every continual-learning strategy implements, and what an episode hands it.

A strategy is a small object with four hooks the training loop calls: :meth:`Strategy.begin` once before training
(with the frozen teacher, i.e. the parent version, and whatever state the parent stored for this strategy),
:meth:`Strategy.loss` at every step (the term added to the segmentation loss), :meth:`Strategy.after_step` after every
optimiser step, and :meth:`Strategy.end` once after training, returning tensors the new version stores for the next
episode (e.g. EWC importance). None of them ever sees old data: that is the privacy contract of an episode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from ...errors import SettingsError
from ...training.data import TrainingCase
from ...training.trainer import TrainConfig

__all__ = ["EpisodeSetup", "Options", "Strategy"]

_O = TypeVar("_O", bound="Options")


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


@dataclass(frozen=True)
class Options:
    """A strategy's hyper-parameters, typed; each strategy subclasses it with its own fields and defaults.

    Built from ``--option NAME=VALUE`` pairs by :meth:`from_options`, which refuses unknown names (listing the valid
    ones) and values of the wrong kind, so a typo fails when the strategy is made, never silently deep in training.
    A field's command-line name is its Python name unless its metadata says otherwise (``lambda`` is a keyword).
    """

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            _check_option(type(self).__name__, _option_name(item), getattr(self, item.name), item.default)

    @classmethod
    def option_names(cls) -> dict[str, str]:
        """``{command-line name: field name}``."""
        return {_option_name(item): item.name for item in dataclasses.fields(cls)}

    @classmethod
    def from_options(cls: type[_O], strategy: str, options: Mapping[str, Any]) -> _O:
        names = cls.option_names()
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise SettingsError(
                f"strategy {strategy!r} has no option {unknown}; its options are {sorted(names) or 'none'}"
            )
        try:
            return cls(**{names[key]: value for key, value in options.items()})
        except SettingsError as err:
            raise SettingsError(f"strategy {strategy!r}: {err}") from err

    def to_options(self) -> dict[str, Any]:
        """The values by command-line name (what a version's metadata records)."""
        return {_option_name(item): getattr(self, item.name) for item in dataclasses.fields(self)}


def _option_name(item: dataclasses.Field) -> str:
    return str(item.metadata.get("option", item.name))


class Strategy:
    """Base class: plain fine-tuning (no extra term). Subclasses override the hooks they need."""

    #: Short name used on the command line and in version metadata.
    name: ClassVar[str] = "naive"
    #: The strategy's typed hyper-parameters (a subclass of :class:`Options`).
    options_class: ClassVar[type[Options]] = Options
    #: Whether the strategy needs the parent as a frozen teacher.
    needs_teacher: ClassVar[bool] = False
    #: True only for the Joint upper bound, which trains on every episode's data (benchmarks only).
    replays_data: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        self.options = self.options_class.from_options(self.name, options)
        #: Values computed while running (e.g. the dynamic alpha), recorded in the version metadata.
        self.runtime: dict[str, Any] = {}
        self.setup: EpisodeSetup | None = None

    @property
    def hyperparameters(self) -> dict[str, Any]:
        """The options by command-line name (as recorded in a version's metadata)."""
        return self.options.to_options()

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


def _check_option(owner: str, key: str, value: Any, default: Any) -> None:
    """Numbers stay numbers: an option whose default is a number (or None, meaning "computed") must be given a
    finite, non-negative number, so ``--option beta=abc`` fails at once instead of deep inside training."""
    numeric = isinstance(default, (int, float)) and not isinstance(default, bool)
    if not (numeric or default is None):
        return
    if value is None and default is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise SettingsError(
            f"option {key} must be a non-negative number{' (or null to compute it)' if default is None else ''}, "
            f"got {value!r}; e.g. --option {key}={default if default is not None else 0.5}"
        )
    if isinstance(default, int) and not isinstance(value, int):
        raise SettingsError(f"option {key} must be a whole number, got {value!r}.")


def named_parameters(network: nn.Module) -> dict[str, nn.Parameter]:
    """Trainable parameters by name (the unwrapped network: DDP's ``module.`` prefix never appears)."""
    return {k: p for k, p in network.named_parameters() if p.requires_grad}
