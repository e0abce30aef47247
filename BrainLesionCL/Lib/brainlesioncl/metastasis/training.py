"""Training both stages of the metastasis pipeline on labelled cases (reference recipe, CPU-sized on request).

Stage 1 (detector): 64^3 crops, half centred on a lesion voxel and half on background (pos:neg 1:1), target 1 iff
the patch's class values sum to more than 1 (the reference's rule), BCE-with-logits, Adam 4e-4.
Stage 2 (segmentor): crops pos:neg 2:1, **only the crops the frozen detector accepts** (logit > 0) are segmented
and scored, Dice (sigmoid) + BCE on [WT, TC, ET] with deep-supervision weights 0.5^k; SGD 0.01 (momentum 0.99,
Nesterov) with polynomial decay as the reference, or Adam for short CPU runs.
Both: random flips, Gaussian noise, intensity scaling and contrast (MONAI transforms), gradient clipping at 12.

Three departures from the reference, each off by default so the reference recipe stays reproducible:

* ``lesion_balanced``: positive crops pick a lesion (connected component) uniformly, then a voxel in it, so a 3 mm
  metastasis is sampled as often as a 30 mm one (voxel-uniform sampling almost never centres on the small ones, the
  lesions this pipeline exists for).
* ``segmentor_window``: the detector judges the full 64^3 crop, as at inference, and the segmentor learns on a random
  smaller window of each accepted crop that still holds the crop's centre; a 48^3 window costs a third of the
  compute, which is what makes CPU training of the DynUNet feasible at all.
* ``batch_dice``: one Dice over the whole batch per region instead of one per crop. With the reference's
  ``smooth_nr=0`` a crop without lesion contributes a constant Dice loss of 1 and so no gradient against false
  positives; over the batch it does, which removes the speckle an under-trained segmentor spreads over accepted
  patches.
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
    _lesions: list[np.ndarray] | None = field(default=None, repr=False)

    def lesion_voxels(self) -> list[np.ndarray]:
        """Voxel coordinates (N, 3) of each lesion (26-connected components of the label), computed once."""
        if self._lesions is None:
            from scipy import ndimage

            labels, count = ndimage.label(self.classes > 0, structure=np.ones((3, 3, 3)))
            flat = labels.ravel()
            order = np.argsort(flat, kind="stable")
            bounds = np.searchsorted(flat[order], np.arange(1, count + 2))
            self._lesions = [np.stack(np.unravel_index(order[bounds[i]:bounds[i + 1]], labels.shape), axis=1)
                             for i in range(count)]
        return self._lesions


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
    lesion_balanced: bool = False
    segmentor_window: int | None = None  # None: the whole crop (reference)
    batch_dice: bool = False

    @classmethod
    def cpu(cls, **overrides) -> MetTrainConfig:
        """The CPU recipe: Adam, lesion-balanced crops, 48^3 segmentor windows, batch Dice."""
        values = {"crops_per_case": 4, "segmentor_lr": 1e-3, "segmentor_optimizer": "adam", "lesion_balanced": True,
                  "segmentor_window": 48, "batch_dice": True}
        return cls(**{**values, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StageResult:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def sample_crops(case: MetCase, size: int, count: int, positive_fraction: float, rng: np.random.Generator,
                 lesion_balanced: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """``count`` crops (image, classes), a share centred on lesion voxels, the rest on background voxels.

    With ``lesion_balanced`` a positive crop first draws a lesion uniformly, then a voxel of that lesion.
    """
    image, classes = case.image, case.classes
    lesions = case.lesion_voxels() if lesion_balanced else []
    pad = [(0, max(0, size - s)) for s in classes.shape]
    if any(after for _, after in pad):  # padding after each axis only: voxel coordinates stay valid
        image, classes = np.pad(image, [(0, 0), *pad]), np.pad(classes, pad)
    lesion = np.flatnonzero(classes > 0)
    background = np.flatnonzero((classes == 0) & (np.abs(image).sum(0) > 0))
    crops = []
    for i in range(count):
        positive = i < round(count * positive_fraction) and lesion.size > 0
        if positive and lesions:
            voxels = lesions[int(rng.integers(len(lesions)))]
            centre = voxels[int(rng.integers(len(voxels)))]
        else:
            pool = lesion if positive else background
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
                                             positive_fraction, rng, config.lesion_balanced):
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


def segmentor_loss(outputs: torch.Tensor, target: torch.Tensor, batch_dice: bool = False) -> torch.Tensor:
    """Dice (sigmoid) + BCE, over the main output and the deep-supervision heads with weights 0.5^k."""
    dice = DiceLoss(sigmoid=True, smooth_nr=0.0, smooth_dr=1e-5, batch=batch_dice)
    bce = nn.BCEWithLogitsLoss()
    heads = outputs.unbind(1) if outputs.dim() == 6 else (outputs,)
    weights = [0.5**k for k in range(len(heads))]
    total = sum(w * (dice(h, target) + bce(h, target)) for w, h in zip(weights, heads, strict=True))
    return total / sum(weights)


def centred_windows(x: torch.Tensor, target: torch.Tensor, size: int, rng: np.random.Generator):
    """One random ``size``^3 window per crop that contains the crop's centre voxel (where positives are centred)."""
    full = x.shape[-1]
    low, high = max(0, full // 2 - size + 1), min(full - size, full // 2)
    xs, ts = [], []
    for i in range(x.shape[0]):
        a, b, c = (int(v) for v in rng.integers(low, high + 1, size=3))
        xs.append(x[i, :, a:a + size, b:b + size, c:c + size])
        ts.append(target[i, :, a:a + size, b:b + size, c:c + size])
    return torch.stack(xs), torch.stack(ts)


def train_segmentor(segmentor: nn.Module, detector: nn.Module, cases: Sequence[MetCase], config: MetTrainConfig, *,
                    device="cpu", progress: Callable[[dict], None] | None = None,
                    cancel: Callable[[], bool] | None = None, time_budget_s: float | None = None) -> StageResult:
    """Train the segmentor on detector-accepted crops for ``config.epochs`` epochs or ``time_budget_s`` seconds."""
    rng = np.random.default_rng(config.seed + 1)
    torch.manual_seed(config.seed + 1)
    augment = _Augment(config.seed + 1) if config.augment else None
    optimizer: torch.optim.Optimizer
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
            x = x[keep]
            if config.segmentor_window and config.segmentor_window < config.patch_size:
                x, target = centred_windows(x, target, config.segmentor_window, rng)
            optimizer.zero_grad(set_to_none=True)
            loss = segmentor_loss(segmentor(x), target, config.batch_dice)
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
