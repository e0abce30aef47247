"""Training episodes: a new model version learnt from a hospital's own annotated cases, with no old data.

An episode takes the parent version (default: the active model), this site's labelled cases and their disease tag,
and a strategy (:mod:`.strategies`). It writes a **new** version whose metadata says where it came from and how it was
trained: parent, strategy and its hyper-parameters, case counts, modalities, disease, duration and validation Dice.
No patient identifier, path or image is ever stored in the version. The parent is untouched; activating the new
version and rolling back are one call each on :class:`~brainlesioncl.registry.ModelRegistry`.

Resumable: every epoch's full state goes to ``<registry>/work/<episode key>/checkpoint.pt``; running the same episode
again (same parent, cases, disease, strategy and settings) continues after the last finished epoch. Cancelling
leaves no version behind (and keeps the checkpoint for a resume). Under ``torchrun`` the episode runs data-parallel
and only rank 0 writes.

Parents are usually MoE U-Nets. MultiUnet-style parents (a residual U-Net, or a progressive network made from one by
``brainlesioncl adapt --progressive``) fine-tune with the ``naive`` strategy: the distillation strategies work on the
MoE gates and two-class outputs, and a progressive network's frozen column is already its protection against
forgetting.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import DiseaseNotSupportedError, InvalidImageError, SettingsError
from ..evaluation.segmentation import case_metrics
from ..inference.predictor import select_device
from ..modalities import BRAINCL_CHANNEL_ORDER, BRAINCL_DISEASE_SLOTS, Disease, disease_context, resolve_disease
from ..models import ModelKind, MoEUNet, MoEUNetConfig
from ..preprocessing import PreprocessConfig
from ..registry import ModelBundle, ModelMetadata, ModelRegistry, validate_model_name
from ..subregions import COMPONENT as SUBREGION_COMPONENT
from ..training.data import TrainingCase, load_training_case
from ..training.trainer import JointBatchPlan, TrainConfig, distributed_state, train
from .strategies import EpisodeSetup, Strategy, make_strategy

__all__ = [
    "EpisodeConfig", "EpisodePlan", "EpisodeResult", "Lineage", "load_episode_cases", "prepare_episode",
    "resolve_lineage", "train_episode", "validation_metrics", "write_episode_version",
]

logger = logging.getLogger(__name__)

STRATEGY_STATE = "strategy_state"
#: Parent kinds an episode can train, and the strategies each accepts (None: every strategy).
_TRAINABLE_KINDS: dict[ModelKind, frozenset[str] | None] = {
    ModelKind.MOE_UNET: None,
    ModelKind.RESIDUAL_UNET: frozenset({"naive"}),
    ModelKind.PROGRESSIVE_UNET: frozenset({"naive"}),
}


@dataclass(frozen=True)
class EpisodeConfig:
    """Settings of one episode. Defaults are CPU-sized; the reference used 400 epochs of 128^3 crops, batch 4."""

    strategy: str = "ours"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    epochs: int = 20
    steps_per_epoch: int | None = None
    crop_size: int = 64
    batch_size: int = 2
    learning_rate: float = 1e-3
    #: "constant" (the reference) or "cosine" decay to 1 % over the episode (steadier when fine-tuning on few cases).
    schedule: str = "constant"
    modality_drop: bool = True
    validation_fraction: float = 0.2
    keep: str = "best"
    seed: int = 0
    precision: str = "auto"
    #: Architecture of a model trained from scratch (only when there is no parent).
    scratch_channels: tuple[int, ...] = (8, 16, 32, 64, 128)
    scratch_spacing: float = 1.5

    def __post_init__(self) -> None:
        """Every setting is checked here, before cases are read or a network is built (the training settings by
        :class:`TrainConfig`), so a typo never costs a training run."""
        fraction = self.validation_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
            raise SettingsError(
                f"--validation-fraction must be at least 0 and below 1 (the share of cases kept for validation), got "
                f"{fraction!r}; e.g. 0.2, or 0 to train on every case."
            )
        self.train_config()
        make_strategy(self.strategy, **self.strategy_options)  # unknown strategy or option -> SettingsError

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs, steps_per_epoch=self.steps_per_epoch, batch_size=self.batch_size,
            crop_size=self.crop_size, learning_rate=self.learning_rate, schedule=self.schedule,
            modality_drop=self.modality_drop, seed=self.seed, keep=self.keep, precision=self.precision,
        )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["scratch_channels"] = list(self.scratch_channels)
        return data


@dataclass
class EpisodeResult:
    version: str | None  # None on ranks other than 0 under torchrun
    metadata: ModelMetadata | None
    history: list[dict]
    seconds: float
    #: The trained weights (on every rank; under torchrun they are identical across ranks).
    network_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def load_episode_cases(
    source: str | os.PathLike,
    disease: str,
    channel_order: Sequence[str],
    preprocessing: PreprocessConfig,
    *,
    label_mapping: str = "strict",
    prepare: str = "auto",
    bias_correction: bool = False,
    progress: Callable[[str], None] | None = None,
) -> list[TrainingCase]:
    """Annotated cases from a folder, CSV or JSON manifest (see :mod:`brainlesioncl.cases`), preprocessed as the model
    preprocesses. ``prepare`` runs segmentation's preparation stage on each case (``auto``: raw exams are
    co-registered and brain-extracted onto the sequence the label was drawn on; curated ones are used as given).

    Raises:
        InvalidImageError: a case has no label, or names another disease than the episode's.
    """
    from ..cases import find_annotated_cases

    tag = resolve_disease(disease)
    specs = find_annotated_cases(source)
    other = [s.name for s in specs if s.disease and resolve_disease(s.disease) is not tag]
    if other:
        raise InvalidImageError(
            f"case(s) {', '.join(other[:5])} are tagged with another disease than {tag.value!r}; one episode learns "
            "one disease. Split the manifest and run one episode per disease."
        )
    cases = []
    for i, spec in enumerate(specs, 1):
        assert spec.label is not None  # unlabelled cases were refused above
        cases.append(load_training_case(spec.name, spec.images, spec.label, tag, channel_order,
                                        preprocessing=preprocessing, label_mapping=label_mapping, prepare=prepare,
                                        bias_correction=bias_correction))
        if progress is not None:
            progress(f"loaded case {i}/{len(specs)}")
    return cases


def _split(cases: Sequence[TrainingCase], fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic train/validation split; no validation with fewer than 3 cases (the last epoch is kept)."""
    if fraction <= 0 or len(cases) < 3:
        return list(cases), []
    order = np.random.default_rng(seed).permutation(len(cases))
    count = min(max(1, round(fraction * len(cases))), len(cases) - 1)
    validation = [cases[i] for i in sorted(order[:count])]
    training = [cases[i] for i in sorted(order[count:])]
    return training, validation


def _episode_key(parent: str, disease: str, config: EpisodeConfig, cases: Sequence[TrainingCase]) -> str:
    """A short hash naming the resume folder: the same episode gets the same key (no case name is stored)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([parent, disease, config.to_dict()], sort_keys=True, default=str).encode())
    for case in cases:  # names, shapes and a content fingerprint: other data (e.g. --prepare) is another episode
        digest.update(case.name.encode())
        digest.update(str(case.image.shape).encode())
        digest.update(f"{float(case.image.sum(dtype=np.float64)):.6e}/{int(case.label.sum())}".encode())
    return digest.hexdigest()[:16]


def _rank() -> int:
    return distributed_state()[1]


def validation_metrics(network, cases, disease_slots, device, spacing: float,
                       output: dict) -> dict[str, float | int | None]:
    from ..inference.predictor import InferenceConfig, Predictor, build_context

    predictor = Predictor(network, device=device, config=InferenceConfig(precision="fp32"),
                          activation=output.get("activation", "softmax"),
                          lesion_channel=int(output.get("lesion_channel", 1)))
    rows = []
    for case in cases:
        probability = predictor.predict(case.image, build_context(case.present, case.disease, disease_slots))
        rows.append(case_metrics(probability >= 0.5, case.label, (spacing,) * 3))
    out: dict[str, float | int | None] = {}
    for key in ("dice", "sensitivity", "precision", "hd95_mm"):
        values = [getattr(r, key) for r in rows if not np.isnan(getattr(r, key))]
        out[key] = round(float(np.mean(values)), 4) if values else None
    out["cases"] = len(rows)
    return out


@dataclass
class Lineage:
    """Where a new version comes from and what it will say about itself: the parent, the disease slot trained, the
    strategy. A local episode and a federated server (which has no cases) both write versions from one."""

    config: EpisodeConfig
    registry: ModelRegistry
    strategy: Strategy
    parent_metadata: ModelMetadata
    parent_id: str | None  # None when training from scratch
    name: str  # model name of the new version
    slots: list[str]
    trained_tag: str  # the disease slot trained (metastasis trains the tumour slot of a model without one)
    seen: list[str]  # diseases the parent had learnt
    episode_index: int
    parent_state: dict[str, torch.Tensor]  # what the parent stored for this strategy (e.g. EWC importance)


@dataclass
class EpisodePlan(Lineage):
    """Everything a local episode decides before its first step: its lineage, the data split, and the strategy set
    up against its frozen teacher. Local episodes and federated sites both start from one, so they train alike."""

    network: torch.nn.Module  # the student, initialised from the parent, on ``device``
    training: list[TrainingCase]
    validation: list[TrainingCase]
    databases: list[list[TrainingCase]]  # [training] plus replayed databases (joint upper bound only)
    train_config: TrainConfig
    device: torch.device
    say: Callable[[str], None]

    @property
    def training_all(self) -> list[TrainingCase]:
        return [case for database in self.databases for case in database]

    def modalities(self) -> list[str]:
        """Modalities present in at least one training case (recorded in the version; no case names)."""
        channels = self.parent_metadata.channels
        return sorted({m for case in self.training for m, p in zip(channels, case.present, strict=True) if p})


def resolve_lineage(
    disease: str,
    *,
    parent: str | None = None,
    registry: ModelRegistry | None = None,
    config: EpisodeConfig | None = None,
    name: str | None = None,
) -> tuple[Lineage, torch.nn.Module]:
    """The parent version (or a scratch network), checked against the disease and strategy; returns the lineage
    and the parent's network (CPU, trainable).

    Raises:
        DiseaseNotSupportedError: the parent is not trainable, or has no slot for ``disease``.
        SettingsError: the strategy does not fit the parent's kind.
    """
    config = config or EpisodeConfig()
    registry = registry or ModelRegistry()
    if name is not None:
        validate_model_name(name)
    strategy: Strategy = make_strategy(config.strategy, **config.strategy_options)
    # -- the parent -------------------------------------------------------------------------------------------------
    if parent == "scratch":
        network_config = MoEUNetConfig(channels=tuple(config.scratch_channels))
        torch.manual_seed(config.seed)  # same seed, same initial weights
        network: torch.nn.Module = MoEUNet(network_config)
        parent_metadata = ModelMetadata(
            name=name or "episode", kind=ModelKind.MOE_UNET, channels=[m.value for m in BRAINCL_CHANNEL_ORDER],
            disease_slots=[d.value for d in BRAINCL_DISEASE_SLOTS], architecture={"network": network_config.to_dict()},
            preprocessing=PreprocessConfig(spacing=config.scratch_spacing).to_dict(),
        )
        parent_state: dict[str, torch.Tensor] = {}
        parent_id = None
        seen: list[str] = []
        episode_index = 1
    else:
        bundle: ModelBundle = registry.get(parent)
        parent_metadata = bundle.metadata
        parent_id = parent_metadata.version or bundle.path.name
        if parent_metadata.kind not in _TRAINABLE_KINDS:
            raise DiseaseNotSupportedError(
                f"{parent_id} is a {parent_metadata.kind.value} model; episodes train MoE U-Net, residual U-Net and "
                "progressive versions. Pick one of those as parent (see `brainlesioncl models list`)."
            )
        allowed = _TRAINABLE_KINDS[parent_metadata.kind]
        if allowed is not None and strategy.name not in allowed:
            raise SettingsError(
                f"{parent_id} is a {parent_metadata.kind.value} model: it fine-tunes with strategy "
                f"{' or '.join(sorted(allowed))} (the other strategies distil MoE gates and two-class outputs). Use "
                "--strategy naive, or `brainlesioncl adapt --progressive` first to keep the old knowledge in a "
                "frozen column."
            )
        validate_model_name(name or parent_metadata.name)  # before training, not when the version is written
        network = bundle.build()
        stored = parent_metadata.training.get("strategy", {})
        parent_state = (bundle.state_dict(STRATEGY_STATE) if STRATEGY_STATE in parent_metadata.architecture
                        and stored.get("name") == strategy.name else {})
        seen = list(parent_metadata.training.get("diseases_seen", parent_metadata.disease_slots))
        episode_index = int(parent_metadata.training.get("episode", 0)) + 1
    slots = list(parent_metadata.disease_slots)
    tag = resolve_disease(disease)
    if tag in (Disease.UNKNOWN, Disease.AUTO):
        raise DiseaseNotSupportedError(
            f"An episode needs the cases' disease; '{tag.value}' is for segmentation only. Pick the disease tag the "
            "annotations describe."
        )
    if slots:  # MultiUnet-style networks have no disease input
        disease_context(tag, slots)  # raises DiseaseNotSupportedError with the fix when there is no slot
    trained_tag = "tumour" if slots and tag.value == "metastasis" and "metastasis" not in slots else tag.value

    lineage = Lineage(
        config=config, registry=registry, strategy=strategy, parent_metadata=parent_metadata, parent_id=parent_id,
        name=name or parent_metadata.name, slots=slots, trained_tag=trained_tag, seen=seen,
        episode_index=episode_index, parent_state=parent_state,
    )
    return lineage, network


def prepare_episode(
    cases: Sequence[TrainingCase] | str | os.PathLike,
    disease: str,
    *,
    parent: str | None = None,
    registry: ModelRegistry | None = None,
    config: EpisodeConfig | None = None,
    name: str | None = None,
    device: str | torch.device = "auto",
    label_mapping: str = "strict",
    prepare: str = "auto",
    bias_correction: bool = False,
    replay_databases: Sequence[Sequence[TrainingCase]] = (),
    progress: Callable[[dict], None] | None = None,
) -> EpisodePlan:
    """Load the parent and the cases, check that they fit each other, and set the strategy up (see
    :func:`train_episode` for the arguments and the errors raised)."""
    lineage, network = resolve_lineage(disease, parent=parent, registry=registry, config=config, name=name)
    config, strategy, parent_metadata, slots = lineage.config, lineage.strategy, lineage.parent_metadata, lineage.slots
    tag, trained_tag, parent_id = resolve_disease(disease), lineage.trained_tag, lineage.parent_id
    if replay_databases and not strategy.replays_data:
        raise SettingsError("replay_databases is only for the 'joint' upper bound; episodes never replay old data.")
    say = (lambda text: progress({"stage": text})) if progress is not None else (lambda text: logger.info(text))
    device = select_device(device)

    # -- the data ---------------------------------------------------------------------------------------------------
    if isinstance(cases, (str, os.PathLike)):
        say("loading cases")
        cases = load_episode_cases(cases, tag.value, parent_metadata.channels, parent_metadata.preprocess_config,
                                   label_mapping=label_mapping, prepare=prepare, bias_correction=bias_correction,
                                   progress=say)
    cases = list(cases)
    if not cases:
        raise InvalidImageError("No annotated case given; an episode needs at least one.")
    if not any(np.any(case.label) for case in cases):
        raise InvalidImageError(
            f"Every label of the {len(cases)} case(s) is empty: there is no lesion to learn from. Check that the "
            "label files are the annotations (not blank masks), or use --label-mapping nonzero for multi-class labels."
        )
    training, validation = _split(cases, config.validation_fraction, config.seed)
    databases = [training, *[list(d) for d in replay_databases if len(d)]]

    # -- strategy setup ---------------------------------------------------------------------------------------------
    train_config = dataclasses.replace(config.train_config(),
                                       activation=parent_metadata.output.get("activation", "softmax"))
    teacher = None
    if strategy.needs_teacher and parent_id is not None:
        teacher = copy.deepcopy(network).to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    network.to(device)
    setup = EpisodeSetup(
        network=network, teacher=teacher, cases=training, disease=trained_tag, disease_slots=slots,
        channel_count=len(parent_metadata.channels), seen_diseases=lineage.seen, config=train_config, device=device,
        parent_state=lineage.parent_state,
    )
    say(f"strategy {strategy.name}: preparing")
    strategy.begin(setup)
    return EpisodePlan(
        **{f.name: getattr(lineage, f.name) for f in dataclasses.fields(Lineage)},
        network=network, training=training, validation=validation, databases=databases,
        train_config=train_config, device=device, say=say,
    )


def write_episode_version(
    plan: Lineage,
    network_state: Mapping[str, torch.Tensor],
    stored_state: Mapping[str, torch.Tensor],
    *,
    training: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    description: str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> tuple[str, ModelMetadata]:
    """Write the trained weights as a new version of ``plan.registry`` (atomic; the parent is untouched) with the
    lineage every episode records, plus ``training`` (how this one was run). Returns the version id and metadata."""
    metadata_in = plan.parent_metadata
    architecture = {"network": dict(metadata_in.architecture["network"])}
    state_dicts = {"network": {k: v.detach().cpu() for k, v in network_state.items()}}
    if stored_state:
        architecture[STRATEGY_STATE] = {"kind": "strategy_state", "strategy": plan.strategy.name}
        state_dicts[STRATEGY_STATE] = dict(stored_state)
    if SUBREGION_COMPONENT in metadata_in.architecture and plan.parent_id is not None:
        # The tumour sub-region network reads only the images, not the lesion network: it stays valid unchanged, so
        # a site's episode keeps the sub-regions its parent gave.
        architecture[SUBREGION_COMPONENT] = dict(metadata_in.architecture[SUBREGION_COMPONENT])
        state_dicts[SUBREGION_COMPONENT] = plan.registry.get(plan.parent_id).state_dict(SUBREGION_COMPONENT)
    metadata = ModelMetadata(
        name=plan.name,
        kind=metadata_in.kind,
        channels=list(metadata_in.channels),
        disease_slots=plan.slots,
        architecture=architecture,
        output=dict(metadata_in.output),
        preprocessing=dict(metadata_in.preprocessing),
        description=description or f"Episode {plan.episode_index}: {plan.trained_tag} learnt with strategy "
                                   f"{plan.strategy.name} from {plan.parent_id or 'random weights'}.",
        parent=plan.parent_id,
        provenance=dict(provenance or {"source": "brainlesioncl episode",
                                       "data": "local annotated cases (not stored)"}),
        training={
            "episode": plan.episode_index,
            "disease": plan.trained_tag,
            "diseases_seen": sorted({*plan.seen, plan.trained_tag}),
            "strategy": plan.strategy.describe(),
            "config": plan.config.to_dict(),
            **training,
        },
        metrics=dict(metrics or {}),
        # The parent's disease router (``--disease auto``) carries over: old diseases' cases are gone (no replay), so
        # it cannot be refitted here; distillation keeps the encoder close to the parent's. It records the version
        # it was fitted on, and segmenting says so when that is an ancestor.
        router=metadata_in.router,
    )
    return plan.registry.add(metadata, state_dicts), metadata


def train_episode(
    cases: Sequence[TrainingCase] | str | os.PathLike,
    disease: str,
    *,
    parent: str | None = None,
    registry: ModelRegistry | None = None,
    config: EpisodeConfig | None = None,
    name: str | None = None,
    device: str | torch.device = "auto",
    label_mapping: str = "strict",
    prepare: str = "auto",
    bias_correction: bool = False,
    replay_databases: Sequence[Sequence[TrainingCase]] = (),
    resume: bool = True,
    progress: Callable[[dict], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> EpisodeResult:
    """Train one episode and store the result as a new version (not activated).

    Args:
        cases: prepared :class:`TrainingCase` objects, or a folder / CSV / JSON manifest of annotated cases.
        disease: the cases' disease tag; it must be one of the parent's disease slots (``metastasis`` trains the
            tumour slot).
        parent: version to start from (default: the active model). ``"scratch"`` starts from random weights with
            ``config.scratch_channels`` (first episode of a benchmark sequence).
        registry: where the parent is and the new version goes (default: the user's registry).
        config: :class:`EpisodeConfig`; ``config.strategy`` picks the strategy.
        name: model name of the new version (default: the parent's name); the version id is ``<name>-v<N>``.
        prepare: when ``cases`` is a folder or manifest, the preparation stage for each case (``auto``, ``on``,
            ``off``; see :func:`load_episode_cases`); ``bias_correction`` likewise.
        replay_databases: earlier episodes' cases, one list per database, for the ``joint`` upper bound only: the
            episode then trains as MultiUnet's joint training does (a batch from every database at every step,
            each oversampled to the largest) with :class:`~brainlesioncl.training.JointBatchPlan`.
        progress: receives one dict per epoch (epoch, epochs, loss, val_dice, eta_seconds) and stage messages as
            ``{"stage": text}``.
        cancel: polled between steps; cancelling raises :class:`~brainlesioncl.errors.CancelledError` and writes no
            version.

    Raises:
        DiseaseNotSupportedError: the parent has no slot for ``disease``.
        SettingsError: unknown strategy or option, or ``replay_databases`` with a strategy other than ``joint``.
    """
    start = time.perf_counter()
    plan = prepare_episode(
        cases, disease, parent=parent, registry=registry, config=config, name=name, device=device,
        label_mapping=label_mapping, prepare=prepare, bias_correction=bias_correction,
        replay_databases=replay_databases, progress=progress,
    )
    key = _episode_key(plan.parent_id or "scratch", plan.trained_tag, plan.config, plan.training_all)
    work = plan.registry.root / "work" / key
    if _rank() == 0:
        work.mkdir(parents=True, exist_ok=True)
    checkpoint = work / "checkpoint.pt"
    if not resume and checkpoint.exists() and _rank() == 0:
        checkpoint.unlink()

    def epoch_report(record: dict) -> None:
        if progress is not None:
            progress(record)

    plan.say(f"training {len(plan.training_all)} cases, validating on {len(plan.validation)}")
    result = train(
        plan.network, plan.training_all, plan.train_config, plan.slots, validation=plan.validation,
        device=plan.device, extra_loss=plan.strategy.loss, after_step=plan.strategy.after_step, progress=epoch_report,
        cancel=cancel, checkpoint_path=checkpoint,
        extra_state=(plan.strategy.state_dict, plan.strategy.load_state_dict),
        plan=JointBatchPlan(plan.databases, plan.train_config.batch_size) if len(plan.databases) > 1 else None,
    )
    plan.say("measuring what the new version keeps")
    stored_state = plan.strategy.end(plan.network)
    val_metrics = (validation_metrics(plan.network, plan.validation, plan.slots, plan.device,
                                       plan.parent_metadata.preprocess_config.spacing, plan.parent_metadata.output)
                   if plan.validation else {})
    seconds = time.perf_counter() - start
    if _rank() != 0:
        return EpisodeResult(None, None, result.history, seconds, plan.network.state_dict())
    version, metadata = write_episode_version(
        plan, plan.network.state_dict(), stored_state,
        training={
            "cases": len(plan.training),
            "replayed_cases": len(plan.training_all) - len(plan.training),
            "validation_cases": len(plan.validation),
            "modalities": plan.modalities(),
            "best_epoch": result.best_epoch,
            "minutes": round(seconds / 60, 2),
            "device": plan.device.type,
            "history": result.history,
        },
        metrics={"validation": val_metrics} if val_metrics else {},
    )
    shutil.rmtree(work, ignore_errors=True)
    plan.say(f"wrote {version}")
    return EpisodeResult(version, metadata, result.history, seconds, plan.network.state_dict())
