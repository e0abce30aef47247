"""The supervised training loop shared by the default model and the continual-learning episodes.

As in the reference: random crops, random modality drop, MONAI ``DiceCELoss`` (softmax, one-hot target, background
excluded, ``smooth_nr=0``), Adam (lr 1e-3, weight decay 1e-5), gradient-norm clipping at 12, mixed precision on
CUDA. Extra loss terms (distillation, regularisers) plug in through ``extra_loss``; progress and cancellation are
callbacks so the CLI, scripts and the Slicer module drive the same loop.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss, DiceLoss
from torch import nn

from ..errors import CancelledError, CorruptModelError, SettingsError
from ..evaluation.segmentation import dice
from ..inference.predictor import InferenceConfig, Predictor, build_context, cpu_has_native_bf16, select_device
from ..io.atomic import storage_error
from ..models.blocks import NETWORK_STRIDE
from .data import TrainingCase, make_batch

__all__ = [
    "BatchPlan", "JointBatchPlan", "TrainConfig", "TrainResult", "dice_score", "evaluate", "segmentation_loss", "train",
]

logger = logging.getLogger(__name__)

#: A term added to the loss; 0.0 (a float) when the term does not apply to this step.
ExtraLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor | float]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (defaults: the reference's, with CPU-sized crops and epochs)."""

    epochs: int = 10
    steps_per_epoch: int | None = None  # default: one crop per case per epoch, as the reference
    batch_size: int = 2
    crop_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-5
    grad_clip: float = 12.0
    modality_drop: bool = True
    foreground_probability: float = 0.5
    seed: int = 0
    validate_every: int = 1
    keep: str = "best"  # "best" validation Dice, or "last" epoch
    precision: str = "auto"  # auto: fp16 autocast on CUDA, bf16 on CPUs with AMX, else fp32; or "fp32"
    schedule: str = "constant"  # "constant" learning rate (the reference), or "cosine" decay to 1% over the run
    activation: str = "softmax"  # "softmax" (BrainCL: 2 classes, DiceCE) or "sigmoid" (MultiUnet: 1 channel, Dice)
    never_drop: tuple[int, ...] = ()  # channels the modality drop keeps (T1c for the tumour sub-regions)

    def __post_init__(self) -> None:
        """Refuse settings training cannot use before any work starts (SettingsError names the option and fix)."""
        for option, value, low in (("epochs", self.epochs, 1), ("batch-size", self.batch_size, 1),
                                   ("validate-every", self.validate_every, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise SettingsError(f"--{option} must be a whole number >= {low}, got {value!r}.")
        if self.steps_per_epoch is not None and (not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 1):
            raise SettingsError(f"steps_per_epoch must be None or a whole number >= 1, got {self.steps_per_epoch!r}.")
        crop = self.crop_size
        if not isinstance(crop, int) or crop % NETWORK_STRIDE or crop < 2 * NETWORK_STRIDE:
            raise SettingsError(
                f"--crop-size must be a multiple of 16 and at least 32 (the network halves the crop four times), got "
                f"{self.crop_size!r}; e.g. 32, 48, 64 or 96."
            )
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise SettingsError(f"--learning-rate must be a positive number, got {self.learning_rate!r}.")
        if self.precision not in ("auto", "fp32"):
            raise SettingsError(f"precision must be 'auto' or 'fp32', not {self.precision!r}")
        if self.keep not in ("best", "last"):
            raise SettingsError(f"--keep must be 'best' or 'last', not {self.keep!r}")
        if self.activation not in ("softmax", "sigmoid"):
            raise SettingsError(f"activation must be 'softmax' or 'sigmoid', not {self.activation!r}")
        if self.schedule not in ("constant", "cosine"):
            raise SettingsError(f"--schedule must be 'constant' or 'cosine', not {self.schedule!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None
    best_dice: float | None = None
    seconds: float = 0.0


def segmentation_loss(activation: str = "softmax") -> nn.Module:
    """The reference segmentation loss: BrainCL's DiceCE on two softmax classes, or MultiUnet's sigmoid Dice."""
    if activation == "sigmoid":
        return DiceLoss(sigmoid=True)
    return DiceCELoss(softmax=True, to_onehot_y=True, include_background=False, smooth_nr=0.0)


#: Binary Dice (1.0 when both are empty): the one implementation, in :mod:`brainlesioncl.evaluation.segmentation`.
dice_score = dice


def evaluate(
    network: nn.Module,
    cases: Sequence[TrainingCase],
    disease_slots: Sequence[str],
    *,
    device: str | torch.device = "cpu",
    threshold: float = 0.5,
    activation: str = "softmax",
) -> list[float]:
    """Dice of the network on whole prepared cases (fast inference path, all of each case's modalities)."""
    was_training = network.training
    predictor = Predictor(network, device=device, config=InferenceConfig(precision="fp32"), activation=activation,
                          lesion_channel=1 if activation == "softmax" else 0)
    scores = []
    for case in cases:
        context = build_context(case.present, case.disease, disease_slots)
        probability = predictor.predict(case.image, context)
        scores.append(dice_score(probability >= threshold, case.label))
    network.train(was_training)
    return scores


class BatchPlan:
    """Which cases make up each step's batch in one epoch. The default: the cases shuffled, ``batch_size`` per step."""

    def __init__(self, cases: Sequence[TrainingCase], batch_size: int) -> None:
        self.cases, self.batch_size = list(cases), batch_size

    def steps(self, world: int = 1) -> int:
        return max(1, math.ceil(len(self.cases) / (self.batch_size * world)))

    def batches(self, rng: np.random.Generator, steps: int) -> list[list[TrainingCase]]:
        order = rng.permutation(len(self.cases))
        return [[self.cases[order[(step * self.batch_size + i) % len(self.cases)]] for i in range(self.batch_size)]
                for step in range(steps)]


class JointBatchPlan(BatchPlan):
    """Several databases at once, as MultiUnet trains: every step takes ``batch_size`` cases from **each** database,
    and every database is oversampled (cycled in a fresh random order) to the length of the largest one."""

    def __init__(self, databases: Sequence[Sequence[TrainingCase]], batch_size: int) -> None:
        self.databases = [list(d) for d in databases if len(d)]
        if not self.databases:
            raise ValueError("no training case in any database")
        super().__init__([c for d in self.databases for c in d], batch_size)

    def steps(self, world: int = 1) -> int:
        return max(1, math.ceil(max(len(d) for d in self.databases) / (self.batch_size * world)))

    def batches(self, rng: np.random.Generator, steps: int) -> list[list[TrainingCase]]:
        needed = steps * self.batch_size
        streams = []
        for database in self.databases:
            stream: list[TrainingCase] = []
            while len(stream) < needed:
                stream.extend(database[i] for i in rng.permutation(len(database)))
            streams.append(stream)
        return [[case for stream in streams for case in stream[step * self.batch_size:(step + 1) * self.batch_size]]
                for step in range(steps)]


def distributed_state() -> tuple[bool, int, int]:
    """(running under torch.distributed, rank, world size)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return True, torch.distributed.get_rank(), torch.distributed.get_world_size()
    return False, 0, 1


def _save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic write of the resume checkpoint (tensors, numbers and strings only: loads with weights_only=True)."""
    tmp = path.with_name(f".{path.name}.partial")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk as a RuntimeError of its zip writer
        tmp.unlink(missing_ok=True)
        raise storage_error(path, err) from err


def _load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file means the same thing to the user
        raise CorruptModelError(
            f"The resume checkpoint {path} cannot be read ({type(err).__name__}: {err}). Delete it to start the "
            "episode from its first epoch."
        ) from err


def train(
    network: nn.Module,
    cases: Sequence[TrainingCase],
    config: TrainConfig,
    disease_slots: Sequence[str],
    *,
    validation: Sequence[TrainingCase] = (),
    device: str | torch.device = "auto",
    extra_loss: ExtraLoss | None = None,
    after_step: Callable[[nn.Module], None] | None = None,
    progress: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    extra_state: tuple[Callable[[], dict], Callable[[dict], None]] | None = None,
    plan: BatchPlan | None = None,
) -> TrainResult:
    """Train ``network`` in place on ``cases``; returns the history. Keeps the best-validation or last weights.

    ``progress`` receives one dict per epoch: epoch, epochs, loss, val_dice (or None), seconds, eta_seconds.
    ``cancel`` is polled between steps; cancelling raises :class:`CancelledError` and leaves ``network`` as it was
    before training started (the last epoch checkpoint, if any, stays on disk for a resume).
    ``extra_loss(network, x, context, logits, bottleneck)`` adds a term to the loss (distillation, regularisers);
    ``after_step(network)`` runs after every optimiser step (path-integral importance).
    ``checkpoint_path``: after every epoch the full training state is saved there atomically; if the file exists when
    training starts, training resumes after its epoch, so an interrupted run continues where it stopped.
    ``extra_state``: (get, set) of state a caller keeps across epochs (e.g. a strategy's running sums), saved in and
    restored from the checkpoint.
    ``plan``: how batches are drawn (default :class:`BatchPlan` over ``cases``; :class:`JointBatchPlan` for
    several databases at once).

    Under ``torchrun`` (torch.distributed initialised by the caller) the network is wrapped in
    DistributedDataParallel: each rank draws its own crops (seed + rank) and gradients are averaged, so every rank
    ends with identical weights.
    """
    if not cases:
        raise ValueError("no training case")
    device = select_device(device)
    network.to(device).train()
    initial_state = copy.deepcopy(network.state_dict())
    distributed, rank, world = distributed_state()
    rng = np.random.default_rng(config.seed + rank)
    torch.manual_seed(config.seed)
    optimizer = optimizer or torch.optim.Adam(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    model: nn.Module = network
    if distributed:
        device_ids = [device.index] if device.type == "cuda" else None
        model = nn.parallel.DistributedDataParallel(network, device_ids=device_ids)
    loss_fn = segmentation_loss(config.activation)
    use_amp = device.type == "cuda" and config.precision == "auto"
    amp_dtype = torch.float16 if use_amp else torch.bfloat16
    use_bf16 = device.type == "cpu" and config.precision == "auto" and cpu_has_native_bf16()
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    plan = plan or BatchPlan(cases, config.batch_size)
    steps = config.steps_per_epoch or plan.steps(world)
    scheduler = None
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs * steps, eta_min=config.learning_rate * 0.01
        )
    result = TrainResult()
    best_state = None
    first_epoch = 1
    elapsed_before = 0.0
    checkpoint_file = Path(checkpoint_path) if checkpoint_path is not None else None
    if checkpoint_file is not None and checkpoint_file.is_file():
        saved = _load_checkpoint(checkpoint_file)
        network.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None and saved.get("scheduler") is not None:
            scheduler.load_state_dict(saved["scheduler"])
        rng.bit_generator.state = json.loads(saved["rng"][rank] if rank < len(saved["rng"]) else saved["rng"][0])
        torch.set_rng_state(saved["torch_rng"])
        result.history = list(saved["history"])
        result.best_dice, result.best_epoch = saved["best_dice"], saved["best_epoch"]
        best_state = saved.get("best_state")
        if extra_state is not None and saved.get("extra") is not None:
            extra_state[1](saved["extra"])
        first_epoch = int(saved["epoch"]) + 1
        elapsed_before = float(saved.get("seconds", 0.0))
        logger.info("resuming from %s after epoch %d", checkpoint_file, first_epoch - 1)
    start = time.perf_counter() - elapsed_before
    try:
        for epoch in range(first_epoch, config.epochs + 1):
            model.train()
            losses = []
            for picks in plan.batches(rng, steps):
                if cancel is not None and cancel():
                    raise CancelledError("Training cancelled; no new model version was written.")
                images, labels, contexts = make_batch(
                    picks, config.crop_size, rng, disease_slots,
                    modality_drop=config.modality_drop, foreground_probability=config.foreground_probability,
                    keep_channels=config.never_drop,
                )
                x = torch.from_numpy(images).to(device)
                y = torch.from_numpy(labels).to(device)
                if config.activation == "sigmoid":
                    y = y.float()
                ctx = torch.from_numpy(contexts).to(device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=use_amp or use_bf16):
                    logits, features = model(x, ctx, give_feature=True)
                    loss = loss_fn(logits.float(), y)
                    if extra_loss is not None:
                        loss = loss + extra_loss(network, x, ctx, logits, features)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(network.parameters(), config.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                if scheduler is not None:
                    scheduler.step()
                if after_step is not None:
                    after_step(network)
                losses.append(float(loss.detach()))
            val_dice = None
            if validation and (epoch % config.validate_every == 0 or epoch == config.epochs):
                val_dice = float(np.mean(evaluate(network, validation, disease_slots, device=device,
                                                  activation=config.activation)))
                if config.keep == "best" and (result.best_dice is None or val_dice > result.best_dice):
                    result.best_dice, result.best_epoch = val_dice, epoch
                    best_state = copy.deepcopy(network.state_dict())
            elapsed = time.perf_counter() - start
            done = epoch - first_epoch + 1
            record = {
                "epoch": epoch,
                "epochs": config.epochs,
                "loss": float(np.mean(losses)),
                "val_dice": val_dice,
                "seconds": elapsed,
                "eta_seconds": (elapsed - elapsed_before) / done * (config.epochs - epoch),
            }
            result.history.append(record)
            logger.info("epoch %d/%d loss %.4f val %s", epoch, config.epochs, record["loss"], val_dice)
            if checkpoint_file is not None:
                states = [json.dumps(rng.bit_generator.state)]
                if distributed:
                    gathered: list[str | None] = [None] * world
                    torch.distributed.all_gather_object(gathered, states[0])
                    states = [str(s) for s in gathered]
                if rank == 0:
                    _save_checkpoint(checkpoint_file, {
                        "epoch": epoch, "network": network.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict() if scheduler is not None else None,
                        "rng": states, "torch_rng": torch.get_rng_state(), "history": result.history,
                        "best_dice": result.best_dice, "best_epoch": result.best_epoch, "best_state": best_state,
                        "extra": extra_state[0]() if extra_state is not None else None, "seconds": elapsed,
                    })
                if distributed:
                    torch.distributed.barrier()
            if progress is not None:
                progress(record)
    except BaseException:
        network.load_state_dict(initial_state)
        raise
    if best_state is not None:
        network.load_state_dict(best_state)
    elif validation and result.history:
        result.best_epoch, result.best_dice = config.epochs, result.history[-1]["val_dice"]
    result.seconds = time.perf_counter() - start
    network.eval()
    return result
