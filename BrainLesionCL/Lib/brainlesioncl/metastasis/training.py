"""Training both stages of the metastasis pipeline on labelled cases (reference recipe, CPU-sized on request).

Stage 1 (detector): 64^3 crops, half centred on a lesion voxel and half on background (pos:neg 1:1), target 1 iff
the patch's class values sum to more than 1 (the reference's rule), BCE-with-logits, Adam 4e-4.
Stage 2 (segmentor): crops pos:neg 2:1, **only the crops the frozen detector accepts** (logit > 0) are segmented
and scored, Dice (sigmoid) + BCE on [WT, TC, ET] with deep-supervision weights 0.5^k; SGD 0.01 (momentum 0.99,
Nesterov) with polynomial decay as the reference, or Adam for short CPU runs.
Both: random flips, Gaussian noise, intensity scaling and contrast (MONAI transforms), gradient clipping at 12.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
import torch
from monai.losses import DiceLoss
from monai.transforms import RandAdjustContrast, RandGaussianNoise, RandScaleIntensity
from torch import nn

from ..errors import CancelledError, InvalidImageError
from ..modalities import map_channels
from ..models import ModelKind
from ..preprocessing import PreprocessConfig, prepare_case
from ..registry import ModelMetadata
from .labels import classes_to_regions
from .networks import DetectorConfig, SegmentorConfig

__all__ = ["MetCase", "MetTrainConfig", "load_met_case", "sample_crops", "train_detector", "train_segmentor",
           "metastasis_metadata"]

logger = logging.getLogger(__name__)
DEFAULT_CHANNELS = ("FLAIR", "T1c", "T1")  # the reference's best input set ("t1c+t1+f")


@dataclass
class MetCase:
    name: str
    image: np.ndarray  # (C, X, Y, Z) float32 in the pipeline's channel order
    classes: np.ndarray  # (X, Y, Z) uint8: 1 core, 2 oedema, 3 enhancing


def load_met_case(name: str, images: Mapping[str, sitk.Image], classes: sitk.Image,
                  channels: Sequence[str] = DEFAULT_CHANNELS, preprocessing: PreprocessConfig | None = None) -> MetCase:
    """Validate and preprocess a labelled metastasis case (labels 0-3 as BraTS-METS)."""
    values = set(np.unique(sitk.GetArrayViewFromImage(classes)).tolist())
    if not values <= {0, 1, 2, 3}:
        raise InvalidImageError(f"{name}: metastasis labels must be 0-3 (1 core, 2 oedema, 3 enhancing), got "
                                f"{sorted(values)[:8]}.")
    mapped = map_channels(images, channels)
    prepared = prepare_case(mapped, channels, config=preprocessing or PreprocessConfig())
    return MetCase(name, prepared.array, prepared.project_label(classes))


@dataclass(frozen=True)
class MetTrainConfig:
    epochs: int = 400
    patch_size: int = 64
    crops_per_case: int = 5
    cases_per_step: int = 2
    detector_lr: float = 4e-4
    segmentor_lr: float = 0.01
    segmentor_optimizer: str = "sgd"  # "sgd" (reference) or "adam" (short CPU runs)
    grad_clip: float = 12.0
    seed: int = 0
    augment: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StageResult:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def sample_crops(case: MetCase, size: int, count: int, positive_fraction: float,
                 rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` crops (image, classes), a share centred on lesion voxels, the rest on background voxels."""
    image, classes = case.image, case.classes
    pad = [(0, max(0, size - s)) for s in classes.shape]
    image, classes = np.pad(image, [(0, 0), *pad]), np.pad(classes, pad)
    lesion = np.flatnonzero(classes > 0)
    background = np.flatnonzero((classes == 0) & (np.abs(image).sum(0) > 0))
    crops = []
    for i in range(count):
        pool = lesion if (i < round(count * positive_fraction) and lesion.size) else background
        if pool.size == 0:
            pool = np.arange(classes.size)
        centre = np.array(np.unravel_index(int(rng.choice(pool)), classes.shape))
        start = np.clip(centre - size // 2, 0, np.array(classes.shape) - size)
        sl = tuple(slice(int(a), int(a) + size) for a in start)
        crops.append((image[(slice(None), *sl)].copy(), classes[sl].copy()))
    return crops


class _Augment:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.transforms = [RandGaussianNoise(prob=0.1, std=0.1), RandScaleIntensity(factors=0.25, prob=0.15),
                           RandAdjustContrast(prob=0.3, gamma=(0.7, 1.5))]
        for i, t in enumerate(self.transforms):
            t.set_random_state(seed + i)

    def __call__(self, image: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for axis in (1, 2, 3):
            if self.rng.random() < 0.5:
                image, classes = np.flip(image, axis), np.flip(classes, axis - 1)
        image = np.ascontiguousarray(image)
        for transform in self.transforms:
            image = np.asarray(transform(image), dtype=np.float32)
        return image, np.ascontiguousarray(classes)


def _batches(cases: Sequence[MetCase], config: MetTrainConfig, positive_fraction: float, rng, augment):
    order = rng.permutation(len(cases))
    for first in range(0, len(cases), config.cases_per_step):
        images, classes = [], []
        for index in order[first:first + config.cases_per_step]:
            for image, label in sample_crops(cases[index], config.patch_size, config.crops_per_case,
                                             positive_fraction, rng):
                if augment is not None:
                    image, label = augment(image, label)
                images.append(image)
                classes.append(label)
        yield torch.from_numpy(np.stack(images)), np.stack(classes)


def detector_targets(classes: np.ndarray) -> torch.Tensor:
    """1 iff a patch's class values sum to more than 1 (the reference's patch label)."""
    return torch.tensor([[float(c.astype(np.int64).sum() > 1)] for c in classes])


def train_detector(detector: nn.Module, cases: Sequence[MetCase], config: MetTrainConfig, *, device="cpu",
                   progress: Callable[[dict], None] | None = None, cancel: Callable[[], bool] | None = None,
                   time_budget_s: float | None = None) -> StageResult:
    """Train the detector for ``config.epochs`` epochs, or until ``time_budget_s`` seconds have passed."""
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    augment = _Augment(config.seed) if config.augment else None
    optimizer = torch.optim.Adam(detector.parameters(), lr=config.detector_lr)
    loss_fn = nn.BCEWithLogitsLoss()
    detector.to(device).train()
    result, start = StageResult(), time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        losses = []
        for x, classes in _batches(cases, config, 0.5, rng, augment):
            if cancel is not None and cancel():
                raise CancelledError("Training cancelled; no model was written.")
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(detector(x.to(device)), detector_targets(classes).to(device))
            loss.backward()
            nn.utils.clip_grad_norm_(detector.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
        result.losses.append(float(np.mean(losses)))
        if progress is not None:
            progress({"stage": "detector", "epoch": epoch, "epochs": config.epochs, "loss": result.losses[-1]})
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            break
    detector.eval()
    result.seconds = time.perf_counter() - start
    return result


def segmentor_loss(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice (sigmoid) + BCE, over the main output and the deep-supervision heads with weights 0.5^k."""
    dice = DiceLoss(sigmoid=True, smooth_nr=0.0, smooth_dr=1e-5)
    bce = nn.BCEWithLogitsLoss()
    heads = outputs.unbind(1) if outputs.dim() == 6 else (outputs,)
    weights = [0.5**k for k in range(len(heads))]
    total = sum(w * (dice(h, target) + bce(h, target)) for w, h in zip(weights, heads, strict=True))
    return total / sum(weights)


def train_segmentor(segmentor: nn.Module, detector: nn.Module, cases: Sequence[MetCase], config: MetTrainConfig, *,
                    device="cpu", progress: Callable[[dict], None] | None = None,
                    cancel: Callable[[], bool] | None = None, time_budget_s: float | None = None) -> StageResult:
    """Train the segmentor on detector-accepted crops for ``config.epochs`` epochs or ``time_budget_s`` seconds."""
    rng = np.random.default_rng(config.seed + 1)
    torch.manual_seed(config.seed + 1)
    augment = _Augment(config.seed + 1) if config.augment else None
    if config.segmentor_optimizer == "sgd":
        optimizer = torch.optim.SGD(segmentor.parameters(), lr=config.segmentor_lr, momentum=0.99, nesterov=True,
                                    weight_decay=3e-5)
    else:
        optimizer = torch.optim.Adam(segmentor.parameters(), lr=config.segmentor_lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: (1 - e / config.epochs) ** 0.9)
    detector.to(device).eval()
    segmentor.to(device).train()
    result, start = StageResult(), time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        losses = []
        for x, classes in _batches(cases, config, 2 / 3, rng, augment):
            if cancel is not None and cancel():
                raise CancelledError("Training cancelled; no model was written.")
            x = x.to(device)
            with torch.no_grad():
                keep = detector(x)[:, 0] > 0
            if not keep.any():
                continue  # the reference's "loss 0" when the detector accepts nothing
            target = torch.from_numpy(np.stack([classes_to_regions(c) for c in classes]))[keep.cpu()].to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = segmentor_loss(segmentor(x[keep]), target)
            loss.backward()
            nn.utils.clip_grad_norm_(segmentor.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(float(loss.detach()))
        scheduler.step()
        result.losses.append(float(np.mean(losses)) if losses else float("nan"))
        if progress is not None:
            progress({"stage": "segmentor", "epoch": epoch, "epochs": config.epochs, "loss": result.losses[-1]})
        if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
            break
    segmentor.eval()
    result.seconds = time.perf_counter() - start
    return result


def metastasis_metadata(name: str, detector_config: DetectorConfig, segmentor_config: SegmentorConfig, *,
                        channels: Sequence[str] = DEFAULT_CHANNELS, preprocessing: PreprocessConfig | None = None,
                        **extra) -> ModelMetadata:
    """Metadata of a two-stage bundle (components ``detector`` and ``segmentor``)."""
    return ModelMetadata(
        name=name, kind=ModelKind.METASTASIS_TWO_STAGE, channels=list(channels),
        disease_slots=["metastasis"],
        architecture={"detector": detector_config.to_dict(), "segmentor": segmentor_config.to_dict()},
        output={"activation": "sigmoid", "regions": ["WT", "TC", "ET"], "labels": {"1": "core", "2": "oedema",
                                                                                  "3": "enhancing"}},
        preprocessing=(preprocessing or PreprocessConfig()).to_dict(), **extra,
    )
