"""The two-stage metastasis pipeline: a patch detector picks where to look, a patch segmentor segments there.

Many small, scattered metastases are what single-pass models miss; classifying every 64^3 patch first and segmenting
only the accepted ones keeps the segmentor's attention on them (Met-Seg, MICCAI 2024 PRIME). The result is a label
map on the reference volume's grid: 3 enhancing, 1 necrotic/non-enhancing core, 2 oedema.

It serves ``segment --disease metastasis`` whenever a model of kind ``metastasis_two_stage`` is active for the
metastasis role, with the same inputs, progress, cancel and result type as :class:`~brainlesioncl.inference.Segmenter`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

from ..errors import CancelledError, ModelError
from ..inference.predictor import InferenceMode, autocast_dtype, select_device
from ..inference.segmenter import SegmentationResult, inputs_order, label_statistics, plausibility_of, read_inputs
from ..modalities import Disease, map_channels
from ..models import ModelKind
from ..registry import ModelBundle, ModelMetadata
from ..subregions import CLASS_NAMES
from .labels import regions_to_classes
from .networks import DetectorConfig, SegmentorConfig, build_detector, build_segmentor, load_segmentor_state
from .patches import pad_to_patches, patch_starts, stitch

__all__ = ["MetastasisPipeline"]


class MetastasisPipeline:
    """Detector + segmentor with the bundle's channel order and preprocessing."""

    def __init__(self, detector: nn.Module, segmentor: nn.Module, metadata: ModelMetadata, *, device: str = "auto",
                 patch_size: int = 64, overlap: float = 0.5, batch: int = 4) -> None:
        if metadata.kind is not ModelKind.METASTASIS_TWO_STAGE:
            raise ModelError(f"{metadata.version or metadata.name} is not a two-stage metastasis model.")
        self.metadata = metadata
        self.device = select_device(device)
        self.detector = detector.to(self.device).eval()
        self.segmentor = segmentor.to(self.device).eval()
        self.patch_size, self.overlap, self.batch = patch_size, overlap, batch
        self.preprocessing = metadata.preprocess_config

    @classmethod
    def from_bundle(cls, bundle: ModelBundle, **kwargs) -> MetastasisPipeline:
        meta = bundle.metadata
        detector = build_detector(DetectorConfig.from_dict(meta.architecture["detector"]))
        segmentor = build_segmentor(SegmentorConfig.from_dict(meta.architecture["segmentor"]))
        from ..models import load_strict

        load_strict(detector, bundle.state_dict("detector"))
        load_segmentor_state(segmentor, bundle.state_dict("segmentor"))
        return cls(detector, segmentor, meta, **kwargs)

    @torch.inference_mode()
    def predict_regions(self, array: np.ndarray, progress=None, cancel=None) -> tuple[np.ndarray, dict]:
        """(3, X, Y, Z) region probabilities [WT, TC, ET] for a prepared (C, X, Y, Z) array, and patch counts."""
        size = self.patch_size
        pad = pad_to_patches(array.shape[1:], size)
        padded = np.pad(array, [(0, 0), *pad])
        starts = patch_starts(padded.shape[1:], size, self.overlap)
        dtype = autocast_dtype("auto", self.device, InferenceMode.FAST)
        accepted: list[tuple[tuple[int, int, int], np.ndarray]] = []
        for first in range(0, len(starts), self.batch):
            if cancel is not None and cancel():
                raise CancelledError("Segmentation cancelled; nothing was written.")
            chunk = starts[first:first + self.batch]
            x = torch.from_numpy(np.stack([padded[:, a:a + size, b:b + size, c:c + size] for a, b, c in chunk]))
            x = x.to(self.device)
            with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                keep = self.detector(x).float()[:, 0] > 0
                if keep.any():
                    logits = self.segmentor(x[keep]).float().cpu().numpy()
                    for start, patch_logits in zip([s for s, k in zip(chunk, keep.tolist(), strict=True) if k],
                                                   logits, strict=True):
                        accepted.append((start, patch_logits))
            if progress is not None:
                done = min(first + self.batch, len(starts))
                progress(done / len(starts), f"patches {done}/{len(starts)} ({len(accepted)} with a lesion)")
        logits = stitch(padded.shape[1:], size, 3, accepted)
        logits = logits[(slice(None), *(slice(0, s) for s in array.shape[1:]))]
        probabilities = torch.sigmoid(torch.from_numpy(logits)).numpy()
        return probabilities, {"patches": len(starts), "accepted": len(accepted)}

    def segment(self, inputs: Mapping, disease: Disease | str = Disease.METASTASIS, *, reference=None,
                progress=None, cancel=None, prepare: str = "auto", register: bool = True,
                uncertainty: bool = False, bias_correction: bool = False, tta: bool = False) -> SegmentationResult:
        """Segment one case; ``prepare``/``register``/``bias_correction`` run the raw-exam preparation stage as for
        :meth:`brainlesioncl.inference.Segmenter.segment`."""
        from ..errors import SettingsError
        from ..modalities import resolve_modality
        from ..preparation import prepare_inputs

        if uncertainty or tta:
            raise SettingsError("The uncertainty map and mirrored views (--uncertainty, --tta) are not available for "
                                "the two-stage metastasis model yet; segment without them.")
        report = progress or (lambda _f, _s: None)
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        mapped = map_channels(inputs, self.metadata.channels)
        report(0.0, "reading images")
        images = read_inputs(mapped)
        ordered = {m: images[m] for m in inputs_order(inputs, mapped)}
        reference_modality = resolve_modality(reference) if reference is not None else next(iter(ordered))
        preparation = prepare_inputs(ordered, reference_modality, mode=prepare, register=register,
                                     bias_correction=bias_correction)
        prepared = preparation.network_input(self.metadata.channels, self.preprocessing)
        timings["preprocess"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        regions, counts = self.predict_regions(
            prepared.array, progress=lambda f, s: report(0.1 + 0.8 * f, s), cancel=cancel)
        if prepared.brain is not None:
            regions = regions * prepared.brain[None]
        timings["inference"] = time.perf_counter() - t0
        report(0.9, "mapping back to the reference grid")
        restored = [sitk.GetArrayFromImage(prepared.restore(regions[i])) >= 0.5 for i in range(3)]
        classes = regions_to_classes(np.stack(restored))
        probability = prepared.restore(regions[0])
        label = sitk.GetImageFromArray(classes)
        label.CopyInformation(probability)
        volume_ml, count = label_statistics(sitk.Cast(label > 0, sitk.sitkUInt8))
        warnings = plausibility_of(label, Disease.METASTASIS.value, preparation)  # as for every result
        report(1.0, "done")
        return SegmentationResult(
            label=label, probability=probability, model_version=self.metadata.version or self.metadata.name,
            disease=Disease.METASTASIS.value, channels_used=[m.value for m in mapped], context=[],
            lesion_volume_ml=volume_ml, lesion_count=count, timings={**timings, **counts},
            quality=preparation.qc, preparation=preparation, warnings=warnings, classes=dict(CLASS_NAMES),
        )
