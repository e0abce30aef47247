"""End-to-end segmentation of one case: map channels, read, preprocess, predict, restore, threshold.

This is the API the CLI, the batch mode and the Slicer module call::

    segmenter = Segmenter.from_registry()                        # active model, CUDA if present
    result = segmenter.segment({"FLAIR": "flair.nii.gz", "T1": "t1.nii.gz"}, disease="tumour")
    result.write("seg.nii.gz", probabilities="prob.nii.gz")
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from ..errors import CancelledError, DiseaseNotSupportedError, InvalidImageError, ModelError, OutputPathError
from ..io.atomic import StagedOutputs
from ..io.image_io import read_image, squeeze_to_3d, stage_image, validate_image
from ..modalities import Disease, Modality, map_channels, resolve_disease, resolve_modality
from ..models.factory import ModelKind
from ..plausibility import PlausibilityWarning, check_plausibility
from ..preparation import Preparation, prepare_inputs
from ..preprocessing.pipeline import PreparedCase, PreprocessConfig
from ..registry.bundle import ModelBundle, ModelMetadata
from ..registry.registry import ModelRegistry
from ..subregions import CLASS_NAMES as SUBREGION_CLASSES
from ..subregions import COMPONENT as SUBREGION_COMPONENT
from ..subregions import SubregionModel, region_volumes, split_whole_tumour
from .predictor import CancelCheck, InferenceConfig, InferenceMode, Predictor, ProgressCallback, build_context
from .routing import DiseaseRouter, RoutingDecision, case_signature

__all__ = ["SegmentationResult", "Segmenter", "label_statistics", "plausibility_of", "resolve_disease_model"]

logger = logging.getLogger(__name__)

ImageInput = sitk.Image | str | os.PathLike


@dataclass
class SegmentationResult:
    """Outputs on the reference volume's original grid, plus what a report or the Slicer module shows."""

    label: sitk.Image
    probability: sitk.Image
    model_version: str
    disease: str
    channels_used: list[str]
    context: list[float]
    lesion_volume_ml: float
    lesion_count: int
    timings: dict[str, float] = field(default_factory=dict)
    #: What the preparation stage decided and measured (brain extraction, registration, brain volume, warnings).
    quality: dict = field(default_factory=dict)
    #: The stage's transforms and brain mask (brainlesioncl.preparation.Preparation), e.g. to write them out.
    preparation: Preparation | None = None
    #: Voxel-wise predictive entropy (bits, 0..1) from test-time flips, on the reference grid; None unless asked.
    uncertainty: sitk.Image | None = None
    #: What ``disease="auto"`` chose and how sure it was; None when the disease was given.
    routing: RoutingDecision | None = None
    #: Why the result looks implausible (:mod:`brainlesioncl.plausibility`); empty when every check passed. Also in
    #: ``quality["plausibility"]``.
    warnings: list[PlausibilityWarning] = field(default_factory=list)
    #: What each label value means: ``{1: "lesion"}``, or the tumour sub-regions / metastasis classes
    #: (:data:`brainlesioncl.subregions.CLASS_NAMES`: 1 necrotic/non-enhancing core, 2 oedema, 3 enhancing).
    classes: dict[int, str] = field(default_factory=lambda: {1: "lesion"})

    def write(
        self,
        label_path: str | os.PathLike,
        *,
        probabilities: str | os.PathLike | None = None,
        uncertainty: str | os.PathLike | None = None,
        overwrite: bool = False,
    ) -> None:
        """Write the labelmap (uint8: 0 background, then :attr:`classes`) and optionally the probability map,
        all-or-nothing.

        Every file is staged, read back and compared before any is put in place, so a bad path or a failed write
        (a full disk, say) of one leaves none of them behind.
        """
        self._write(label_path, probabilities, uncertainty, overwrite)

    def write_maps(self, *, probabilities: str | os.PathLike | None = None,
                   uncertainty: str | os.PathLike | None = None, overwrite: bool = False) -> None:
        """Write only the probability and uncertainty maps (when the labelmap goes out another way, e.g. as DICOM
        SEG), all-or-nothing as :meth:`write`."""
        self._write(None, probabilities, uncertainty, overwrite)

    def _write(self, label_path: str | os.PathLike | None, probabilities: str | os.PathLike | None,
               uncertainty: str | os.PathLike | None, overwrite: bool) -> None:
        if uncertainty is not None and self.uncertainty is None:
            raise OutputPathError("No uncertainty was computed for this result: segment with uncertainty=True.")
        if label_path is None and probabilities is None and uncertainty is None:
            return
        with StagedOutputs() as outputs:
            if label_path is not None:
                stage_image(outputs, self.label, label_path, overwrite=overwrite)
            if probabilities is not None:
                stage_image(outputs, self.probability, probabilities, overwrite=overwrite)
            if uncertainty is not None and self.uncertainty is not None:  # checked above: both or neither
                stage_image(outputs, self.uncertainty, uncertainty, overwrite=overwrite)


def remove_small_lesions(label: sitk.Image, min_mm3: float) -> sitk.Image:
    """Drop 26-connected lesions smaller than ``min_mm3`` (isolated false-positive specks that dominate HD95)."""
    components = sitk.ConnectedComponent(label > 0, True)
    relabelled = sitk.RelabelComponent(components, minimumObjectSize=int(
        np.ceil(min_mm3 / float(np.prod(label.GetSpacing())))))
    kept = sitk.Cast(relabelled > 0, sitk.sitkUInt8)
    kept.CopyInformation(label)
    return kept


def plausibility_of(label: sitk.Image, disease: str, preparation: Preparation) -> list[PlausibilityWarning]:
    """The plausibility checks of a result, recorded in the preparation's QC record (``quality.json``, the CLI summary,
    the Slicer log) as ``plausibility``."""
    sequences, brain_mask = preparation.reference_grid
    warnings = check_plausibility(label, disease, {m.value: image for m, image in sequences.items()},
                                  brain_mask=brain_mask, quality=preparation.qc)
    preparation.qc["plausibility"] = [w.to_dict() for w in warnings]
    return warnings


def label_statistics(label: sitk.Image) -> tuple[float, int]:
    """Lesion volume in mL and number of 26-connected lesions of a binary labelmap."""
    array = sitk.GetArrayViewFromImage(label)
    voxel_ml = float(np.prod(label.GetSpacing())) / 1000.0
    volume = float(np.count_nonzero(array)) * voxel_ml
    if volume == 0:
        return 0.0, 0
    components = sitk.ConnectedComponent(label > 0, True)
    count = int(sitk.GetArrayViewFromImage(components).max())
    return volume, count


class Segmenter:
    """Segments cases with one model.

    Args:
        network: the network (``network(x, context) -> logits``); tests may inject any module.
        metadata: the model's metadata (channel order, disease slots, output activation, preprocessing).
        device: ``auto`` (CUDA when present), ``cpu`` or ``cuda[:N]``.
        inference: :class:`InferenceConfig`; ``mode="reference"`` reproduces the published evaluation protocol.
        preprocessing: overrides the bundle's preprocessing settings.
        subregions: the bundle's tumour sub-region network (:mod:`brainlesioncl.subregions`), if it has one.
    """

    def __init__(
        self,
        network: nn.Module,
        metadata: ModelMetadata,
        *,
        device: str = "auto",
        inference: InferenceConfig | None = None,
        preprocessing: PreprocessConfig | None = None,
        subregions: nn.Module | None = None,
    ) -> None:
        if metadata.kind is ModelKind.METASTASIS_TWO_STAGE:
            raise ModelError("The two-stage metastasis model is served by its own pipeline, not by Segmenter.")
        self.metadata = metadata
        self.inference = inference or InferenceConfig()
        self.preprocessing = preprocessing or metadata.preprocess_config
        if self.inference.mode is InferenceMode.REFERENCE:
            # The published protocol slides windows over the whole grid, without a foreground crop.
            self.preprocessing = PreprocessConfig.from_dict({**self.preprocessing.to_dict(), "crop_foreground": False})
        #: Brain extraction for raw exams (default: deepbet); tests inject a known mask function.
        self.extract_brain = None
        #: The ``--disease auto`` classifier of the bundle (None: the model has none; auto is then refused).
        self.router = DiseaseRouter.from_json(metadata.router) if metadata.router else None
        self.predictor = Predictor(
            network,
            activation=metadata.output.get("activation", "softmax"),
            lesion_channel=int(metadata.output.get("lesion_channel", 1)),
            device=device,
            config=self.inference,
        )
        self.subregions = None if subregions is None else SubregionModel(
            Predictor(subregions, activation="softmax", lesion_channel=None, device=device,
                      config=self.inference).predict, metadata.channel_order)

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, **kwargs) -> Segmenter:
        if SUBREGION_COMPONENT in bundle.metadata.architecture and "subregions" not in kwargs:
            kwargs["subregions"] = bundle.build(SUBREGION_COMPONENT)
        return cls(bundle.build(), bundle.metadata, **kwargs)

    @classmethod
    def from_registry(
        cls, registry: ModelRegistry | None = None, version: str | None = None, **kwargs
    ) -> Segmenter:
        """The given version, or the registry's active segmentation model."""
        registry = registry or ModelRegistry()
        return cls.from_bundle(registry.get(version), **kwargs)

    @property
    def device(self) -> str:
        return str(self.predictor.device)

    def check_disease(self, disease: Disease | str) -> Disease:
        """Resolve a tag and make sure this model can take it (before any heavy work)."""
        tag = resolve_disease(disease)
        if tag is Disease.AUTO:
            if self.router is None:
                raise DiseaseNotSupportedError(
                    f"Model {self.metadata.version or self.metadata.name} has no disease router, so it cannot choose "
                    "the disease itself: pick the disease (or 'unknown' for a neutral mix), or use a model that has "
                    "one (the shipped braincl-demo models do; see `brainlesioncl models list`).")
            missing = [c for c in self.router.classes if c not in self.metadata.disease_slots]
            if missing:
                raise DiseaseNotSupportedError(
                    f"The disease router chooses among {list(self.router.classes)} but the model has no slot for "
                    f"{missing}; the bundle is inconsistent: re-install or re-import it, or pick the disease.")
            return tag
        build_context([True] * len(self.metadata.channels), tag, self.metadata.disease_slots)
        if not self.metadata.disease_slots and tag not in (Disease.UNKNOWN,):
            logger.info("model %s has no disease input; the %s tag does not change its output",
                        self.metadata.version, tag.value)
        return tag

    def segment(
        self,
        inputs: Mapping[str | Modality, ImageInput],
        disease: Disease | str = Disease.UNKNOWN,
        *,
        reference: str | Modality | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
        prepare: str = "auto",
        register: bool = True,
        uncertainty: bool = False,
        bias_correction: bool = False,
        tta: bool = False,
    ) -> SegmentationResult:
        """Segment one case.

        Args:
            inputs: ``{modality name or alias: image or path}``; names are validated against the model's channels.
            disease: disease tag (see :func:`~brainlesioncl.modalities.disease_context` for routing).
            reference: the input whose grid the outputs take; default: the first input.
            progress: called with (fraction 0..1, stage text).
            cancel: polled between steps; return True to stop with :class:`CancelledError`.
            prepare: ``auto`` (raw exams are co-registered and brain-extracted, curated inputs used as given), ``on``
                or ``off``; see :mod:`brainlesioncl.preparation`.
            register: False skips co-registration (sequences known to be aligned).
            bias_correction: N4 bias-field correction of every input first (see :mod:`brainlesioncl.preparation`).
            uncertainty: also compute the voxel-wise uncertainty map from mirrored views (4 network passes instead
                of 1). The segmentation stays exactly the one-pass result: the map explains it, it does not change it.
            tta: segment the mean of the mirrored views instead (test-time augmentation; 4 passes). Its effect on
                real cases is measured in docs/BENCHMARKS.md.

        Raises:
            ChannelMappingError, InvalidImageError, GeometryError, DiseaseNotSupportedError, CancelledError.
        """
        timings: dict[str, float] = {}
        report = progress or (lambda _f, _s: None)

        def check_cancel() -> None:
            if cancel is not None and cancel():
                raise CancelledError("Segmentation cancelled; nothing was written.")

        mapped = map_channels(inputs, self.metadata.channels)
        tag = self.check_disease(disease)
        preparation, prepared = self.prepare(inputs, reference=reference, prepare=prepare, register=register,
                                             bias_correction=bias_correction, progress=report, cancel=cancel,
                                             timings=timings)
        routing = None
        if tag is Disease.AUTO:
            t0 = time.perf_counter()
            report(0.1, "choosing the disease routing from the image")
            check_cancel()
            routing = self.route(prepared)
            context = build_context(prepared.present, Disease.UNKNOWN, self.metadata.disease_slots,
                                    disease_vector=routing.disease_vector(self.metadata.disease_slots))
            timings["routing"] = time.perf_counter() - t0
            logger.info("%s", routing.describe())
        else:
            context = build_context(prepared.present, tag, self.metadata.disease_slots)

        t0 = time.perf_counter()

        def inference_progress(fraction: float, stage: str) -> None:
            report(0.15 + 0.75 * fraction, stage)

        check_cancel()
        entropy = None
        if uncertainty or tta:
            views = self.predictor.predict_mirrored(prepared.array, context, progress=inference_progress,
                                                    cancel=cancel)
            probability = views.mean if tta else views.identity
            entropy = views.entropy if uncertainty else None
        else:
            probability = self.predictor.predict(prepared.array, context, progress=inference_progress, cancel=cancel)
        if prepared.brain is not None:  # nothing outside the (dilated) brain of a raw exam
            probability = probability * prepared.brain
            entropy = entropy * prepared.brain if entropy is not None else None
        timings["inference"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report(0.9, "mapping back to the reference grid")
        check_cancel()
        probability_image = prepared.restore(probability)
        uncertainty_image = prepared.restore(entropy) if entropy is not None else None
        label = sitk.Cast(probability_image >= self.inference.threshold, sitk.sitkUInt8)
        label.CopyInformation(probability_image)
        if self.inference.min_lesion_mm3 > 0:
            label = remove_small_lesions(label, self.inference.min_lesion_mm3)
        volume_ml, count = label_statistics(label)
        timings["restore"] = time.perf_counter() - t0
        disease_used = routing.disease if routing is not None else tag.value
        classes = {1: "lesion"}
        if self.subregions is not None and disease_used == Disease.TUMOUR.value and count:
            t0 = time.perf_counter()
            label, classes = self._split_subregions(prepared, label, preparation.qc, report, cancel)
            timings["subregions"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        warnings = plausibility_of(label, disease_used, preparation)
        timings["plausibility"] = time.perf_counter() - t0
        report(1.0, "done")
        return SegmentationResult(
            label=label,
            probability=probability_image,
            model_version=self.metadata.version or self.metadata.name,
            disease=disease_used,
            channels_used=[m.value for m in mapped],
            context=[float(v) for v in context[0].tolist()],
            lesion_volume_ml=volume_ml,
            lesion_count=count,
            timings=timings,
            quality=preparation.qc,
            preparation=preparation,
            uncertainty=uncertainty_image,
            routing=routing,
            warnings=warnings,
            classes=classes,
        )

    def _split_subregions(self, prepared: PreparedCase, whole_tumour: sitk.Image, quality: dict,
                          report: ProgressCallback, cancel: CancelCheck | None) -> tuple[sitk.Image, dict[int, str]]:
        """The whole tumour split into its sub-regions (:mod:`brainlesioncl.subregions`) when the exam has T1c; the
        whole tumour unchanged otherwise. The region volumes, or why there are none, go to ``quality``."""
        assert self.subregions is not None
        if not self.subregions.can_split(prepared.present):
            quality["subregions"] = {"given": False, "why": "tumour sub-regions need T1c (enhancement is read on "
                                                            "post-contrast T1); only the whole tumour is given"}
            return whole_tumour, {1: "lesion"}
        report(0.92, "tumour sub-regions")
        probabilities = self.subregions.class_probabilities(prepared.array, cancel=cancel)
        if prepared.brain is not None:
            probabilities = probabilities * prepared.brain[None]
        label = split_whole_tumour([prepared.restore(p) for p in probabilities], whole_tumour)
        quality["subregions"] = {"given": True, **{f"{region}_ml": round(volume, 3)
                                                   for region, volume in region_volumes(label).items()}}
        return label, dict(SUBREGION_CLASSES)

    def prepare(
        self,
        inputs: Mapping[str | Modality, ImageInput],
        *,
        reference: str | Modality | None = None,
        prepare: str = "auto",
        register: bool = True,
        bias_correction: bool = False,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[Preparation, PreparedCase]:
        """What :meth:`segment` gives the network: read, prepare (raw exams), resample and normalise the inputs.
        Returns the preparation (transforms, brain mask, QC) and the network input. ``timings`` collects the stages."""
        timings = timings if timings is not None else {}
        report = progress or (lambda _f, _s: None)

        def check_cancel() -> None:
            if cancel is not None and cancel():
                raise CancelledError("Segmentation cancelled; nothing was written.")

        mapped = map_channels(inputs, self.metadata.channels)
        if reference is not None:
            reference = next((m for m in mapped if m.value.lower() == str(reference).lower()), reference)
        t0 = time.perf_counter()
        report(0.0, "reading images")
        check_cancel()
        images = read_inputs(mapped)
        timings["read"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report(0.03, "checking whether the exam needs preparation (skull, co-registration)")
        check_cancel()
        ordered_inputs = {m: images[m] for m in inputs_order(inputs, mapped)}
        reference_modality = resolve_modality(reference) if reference is not None else next(iter(ordered_inputs))
        preparation = prepare_inputs(ordered_inputs, reference_modality, mode=prepare, register=register,
                                     extract_brain=self.extract_brain, bias_correction=bias_correction)
        timings["prepare"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        report(0.05, "resampling and normalising")
        check_cancel()
        prepared = preparation.network_input(self.metadata.channels, self.preprocessing)
        timings["preprocess"] = time.perf_counter() - t0
        return preparation, prepared

    def signature(self, prepared: PreparedCase) -> np.ndarray:
        """What the disease router reads from a prepared case: one encoder pass with the neutral context (fp32,
        as the router was fitted), then the brain-intensity statistics."""
        neutral = build_context(prepared.present, Disease.UNKNOWN, self.metadata.disease_slots)
        with torch.autocast(device_type=self.predictor.device.type, enabled=False):
            return case_signature(self.predictor.network, prepared.array, list(prepared.present), neutral)

    def route(self, prepared: PreparedCase) -> RoutingDecision:
        """The ``auto`` decision for a prepared case."""
        if self.router is None:
            raise DiseaseNotSupportedError("this model has no disease router; pick the disease")
        decision = self.router.decide(self.signature(prepared))
        fitted = self.router.fitted_on.get("version")
        if fitted and fitted != self.metadata.version:
            decision = replace(decision, note=f"The router was fitted on {fitted}; episodes since then changed the "
                                              "network, so its choice is less certain than it says.")
        return decision


def read_inputs(mapped: Mapping[Modality, ImageInput]) -> dict[Modality, sitk.Image]:
    """Validated float images of mapped inputs (paths are read, images checked); channels are read in parallel,
    since decompression and parsing release the GIL."""

    def load(item: tuple[Modality, ImageInput]) -> sitk.Image:
        modality, source = item
        if isinstance(source, sitk.Image):
            return image_from_memory(source, modality.value)
        if not isinstance(source, (str, os.PathLike)):
            what = "a numpy array" if isinstance(source, np.ndarray) else f"a {type(source).__name__}"
            raise InvalidImageError(
                f"{modality.value}: got {what}; give a file path or a SimpleITK image. "
                + ("An array has no spacing, origin or orientation, which the segmentation needs to land on the right "
                   "voxels: wrap it with sitk.GetImageFromArray(array) (array indexed z, y, x) and SetSpacing / "
                   "SetOrigin / SetDirection from your scan." if isinstance(source, np.ndarray) else "")
            )
        return read_image(source, name=modality.value)

    with ThreadPoolExecutor(max_workers=min(4, len(mapped))) as pool:
        return dict(zip(mapped, pool.map(load, mapped.items()), strict=True))


def image_from_memory(source: sitk.Image, name: str) -> sitk.Image:
    """A caller's in-memory image as a validated float32 3-D scalar volume, or a clear refusal."""
    if source.GetNumberOfComponentsPerPixel() != 1:
        raise InvalidImageError(
            f"{name}: is a vector image with {source.GetNumberOfComponentsPerPixel()} components per voxel (RGB or "
            "multi-channel). Give one scalar volume per modality, e.g. sitk.VectorIndexSelectionCast(image, 0) for "
            "the first component."
        )
    image = squeeze_to_3d(source, name)
    image = sitk.Cast(image, sitk.sitkFloat32)
    validate_image(image, name)
    return image


def inputs_order(inputs: Mapping, mapped: Mapping[Modality, object]) -> list[Modality]:
    """The mapped modalities in the order the user gave them (the first one is the default reference)."""
    return [resolve_modality(k) for k in inputs if resolve_modality(k) in mapped]


def resolve_disease_model(registry: ModelRegistry, disease: Disease | str, version: str | None) -> str:
    """Which version serves a disease: the explicit one, the active metastasis pipeline for metastasis, else the
    active segmentation model."""
    if version is not None:
        return version
    tag = resolve_disease(disease)
    if tag is Disease.METASTASIS and (metastasis := registry.active_or_none("metastasis")):
        return metastasis
    return registry.active("segmentation")
