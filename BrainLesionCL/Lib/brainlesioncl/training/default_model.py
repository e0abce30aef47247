"""The recipe of the shipped demonstration model: phantoms only, the reference MoE architecture at reduced width.

``brainlesioncl train-default OUT`` runs it. The shipped ``braincl-demo-v2`` took two stages: v1 with the defaults
(``train-default braincl-demo-v1``: 30 epochs of 16 phantoms per disease from random weights, 28 min), then
``train-default braincl-demo-v2 --init-from braincl-demo-v1 --epochs 36 --cases-per-disease 24 --learning-rate 5e-4
--schedule cosine --seed 2030`` (fresh phantoms, cosine decay; 93 min on 2 busy CPU cores). It is deterministic by
seed (same data, same crops, same initial weights; floating-point reductions on different CPUs can still differ in
the last bits). The data is procedural, so the model
owes nothing to any patient and no real case is used: every real case BrainLesionCL evaluates it on is held out.

What it learns: the five phantom pathologies (glioma, stroke acute and chronic, MS, WMH, and metastases under the
tumour tag), each with the modality sets of the public databases (BraTS, ATLAS/ISLES, MSSEG, WMH) and random modality
drop on top, on a 1.5 mm working grid that keeps CPU training and inference fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..modalities import BRAINCL_CHANNEL_ORDER, BRAINCL_DISEASE_SLOTS
from ..models import ModelKind, MoEUNet, MoEUNetConfig
from ..phantoms import PhantomConfig, generate_case
from ..preprocessing import PreprocessConfig
from ..registry import ModelBundle, ModelMetadata, write_bundle
from .data import TrainingCase, load_training_case
from .trainer import TrainConfig, evaluate, train

__all__ = ["DefaultRecipe", "phantom_training_cases", "train_default_model"]

logger = logging.getLogger(__name__)

#: Phantom disease -> (disease tag for the model, modality sets drawn per case)
_RECIPE_DATA: dict[str, tuple[str, tuple[tuple[str, ...], ...]]] = {
    "tumour": ("tumour", (("FLAIR", "T1", "T1c", "T2"),)),
    "metastasis": ("tumour", (("FLAIR", "T1", "T1c", "T2"), ("FLAIR", "T1", "T1c"))),
    "stroke": ("stroke", (("T1",), ("FLAIR", "T1", "T2", "DWI"))),
    "MS": ("MS", (("FLAIR", "T1", "T1c", "T2", "PD"),)),
    "WMH": ("WMH", (("FLAIR", "T1"),)),
}


@dataclass(frozen=True)
class DefaultRecipe:
    """Knobs of the default recipe (defaults = what the shipped model was trained with)."""

    cases_per_disease: int = 16
    validation_per_disease: int = 1
    spacing: float = 1.5
    size: tuple[int, int, int] = (104, 120, 96)
    channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    epochs: int = 30
    validate_every: int = 2
    crop_size: int = 64
    batch_size: int = 2
    seed: int = 2026
    learning_rate: float = 1e-3
    schedule: str = "constant"
    #: Bundle folder to start from (a fine-tuning stage), or None to start from random weights.
    init_from: str | None = None


def phantom_training_cases(
    recipe: DefaultRecipe, *, count: int, seed: int, progress: Callable[[str], None] | None = None
) -> list[TrainingCase]:
    """``count`` phantom cases per disease, each with one of that disease's modality sets."""
    rng = np.random.default_rng(seed)
    preprocessing = PreprocessConfig(spacing=recipe.spacing)
    cases = []
    for d_index, (phantom_disease, (tag, modality_sets)) in enumerate(_RECIPE_DATA.items()):
        for i in range(count):
            modalities = modality_sets[int(rng.integers(len(modality_sets)))]
            case_seed = seed * 1000 + d_index * 100 + i
            config = PhantomConfig(disease=phantom_disease, modalities=modalities, size=recipe.size,
                                   spacing=recipe.spacing, seed=case_seed)
            phantom = generate_case(config)
            cases.append(load_training_case(f"{phantom_disease}-{case_seed}", phantom.images, phantom.label, tag,
                                            BRAINCL_CHANNEL_ORDER, preprocessing=preprocessing))
            if progress is not None:
                progress(f"phantom {len(cases)}/{count * len(_RECIPE_DATA)}")
    return cases


def train_default_model(
    out_dir: str | Path, recipe: DefaultRecipe | None = None, *, device: str = "auto",
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Train the default model and write its bundle to ``out_dir`` (which must not exist)."""
    recipe = recipe or DefaultRecipe()
    say = progress or (lambda message: logger.info(message))
    start = time.perf_counter()
    say("generating training phantoms")
    train_cases = phantom_training_cases(recipe, count=recipe.cases_per_disease, seed=recipe.seed, progress=say)
    validation = phantom_training_cases(recipe, count=recipe.validation_per_disease, seed=recipe.seed + 1)
    config = MoEUNetConfig(channels=recipe.channels)
    network = MoEUNet(config)
    parent = None
    if recipe.init_from:
        bundle = ModelBundle(recipe.init_from)
        config = MoEUNetConfig.from_dict(bundle.metadata.architecture["network"])
        built = bundle.build()
        assert isinstance(built, MoEUNet), f"{recipe.init_from} is not a MoE U-Net bundle"
        network = built
        parent = bundle.metadata.version or bundle.path.name
        say(f"starting from {parent}")
    train_config = TrainConfig(epochs=recipe.epochs, batch_size=recipe.batch_size, crop_size=recipe.crop_size,
                               seed=recipe.seed, keep="best", validate_every=recipe.validate_every,
                               learning_rate=recipe.learning_rate, schedule=recipe.schedule)
    slots = [d.value for d in BRAINCL_DISEASE_SLOTS]

    def report(record: dict) -> None:
        say(f"epoch {record['epoch']}/{record['epochs']} loss {record['loss']:.4f} val Dice "
            f"{record['val_dice'] if record['val_dice'] is None else round(record['val_dice'], 4)} "
            f"ETA {record['eta_seconds'] / 60:.1f} min")

    result = train(network, train_cases, train_config, slots, validation=validation, device=device, progress=report)
    per_disease: dict[str, list[float]] = {}
    scores = evaluate(network, validation, slots)
    for case, score in zip(validation, scores, strict=True):
        per_disease.setdefault(case.name.split("-")[0], []).append(score)
    minutes = (time.perf_counter() - start) / 60
    metadata = ModelMetadata(
        name="braincl-demo",
        kind=ModelKind.MOE_UNET,
        channels=[m.value for m in BRAINCL_CHANNEL_ORDER],
        disease_slots=slots,
        architecture={"network": config.to_dict()},
        preprocessing=PreprocessConfig(spacing=recipe.spacing).to_dict(),
        description="Demonstration model trained on BrainLesionCL phantoms only. Not for clinical use.",
        parent=parent,
        provenance={"source": "brainlesioncl train-default", "data": "procedural phantoms (no patient data)",
                    "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in recipe.__dict__.items()}},
        training={**train_config.to_dict(), "cases": len(train_cases), "validation_cases": len(validation),
                  "best_epoch": result.best_epoch, "minutes": round(minutes, 1), "history": result.history},
        metrics={"validation_dice_phantoms": {k: round(float(np.mean(v)), 4) for k, v in per_disease.items()},
                 "validation_dice_mean": round(float(np.mean(scores)), 4)},
    )
    metadata.version = Path(out_dir).name
    bundle = write_bundle(Path(out_dir), metadata, {"network": network.state_dict()})
    say(f"wrote {bundle.path} in {minutes:.1f} min; validation Dice {metadata.metrics}")
    return bundle.path
