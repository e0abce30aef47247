"""Which contrast a volume is, from the image alone (a NIfTI called ``img1.nii.gz``): the order of brightness of the
brain's tissues, and a small multinomial logistic regression on it.

Why tissue order: what tells MRI contrasts apart is how white matter, grey matter and CSF compare, not the numbers a
scanner or a preprocessing writes. Histogram shapes (the first version of this module) moved more with the source's
preprocessing (z-scoring, N4, MNI registration, thick clinical slices) than with the contrast. So the tissues are
located by where they sit, without a template:

* **white matter** is the mode of the tissue deeper than 18 mm under the brain surface (the centrum semiovale);
* **cortex** is the mode of a shell 1.5-6 mm under the surface;
* **CSF** shows as the tails of the deep tissue: the ventricles are the deep tissue furthest from white matter,
  bright on T2 and ADC, dark on T1, FLAIR and DWI; enhancing vessels and lesions make T1c's bright end.

Every feature is a difference of two intensities divided by the brain's interquartile range, so it does not change
when the image is scaled or shifted (raw scanner units, z-scored, N4-corrected); a signed log keeps tails of very
different sizes comparable. The image is first binned to about 2 mm, which makes this about 0.2 s per volume.

For an image that is not skull-stripped, the brain is taken as the head minus 12 mm (scalp and skull): crude, and
the cases it was checked on are few (docs/BENCHMARKS.md).

The classifier (``image_classifier.json``, rebuilt by ``python benchmarks/sequence_identification.py --train``) is
trained on the project's phantoms of every sequence and on the real images of ``../shared/data``; leave-one-source-out
on those real images (a classifier that never saw the held-out source) answers 17 of 46 and is right on all 17
(20 of 46, all right, when each exam's volumes are then read together, :mod:`.exam`). An
answer below ``min_confidence``, or a T1/T1c/DWI/ADC answer that does not rule out its dangerous partner
(:func:`decide`), is not given: the channel stays empty and the reason says why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..modalities import Modality
from .result import Identification, ImageScores

__all__ = ["CLASSIFIER_FILE", "FEATURE_NAMES", "IMAGE_ANSWERS_TRUSTED", "image_features", "identify_image",
           "decide", "identification_from_scores", "image_scores", "probabilities", "train_classifier",
           "save_classifier"]

CLASSIFIER_FILE = Path(__file__).with_name("image_classifier.json")
#: Whether an image-only answer may fill a channel. True since the tissue-order features: ≥ 95 % right among the
#: answers given, leave-one-source-out on the real images (docs/BENCHMARKS.md). False turns answers into hints.
IMAGE_ANSWERS_TRUSTED = True
FEATURE_NAMES = ("cortex_minus_white_matter", "shell_minus_deep_median", "deep_bright_tail", "deep_dark_tail",
                 "brain_bright_end", "brain_dark_end", "white_matter_minus_brain_median")

#: Pairs where a wrong channel misleads most: an answer needs its partner ruled out (:func:`decide`).
DANGEROUS_PARTNERS = {"T1": "T1c", "T1c": "T1", "DWI": "ADC", "ADC": "DWI"}
MAX_PARTNER_PROBABILITY = 0.05

_WORKING_SPACING_MM = 2.0
_SKULL_AND_SCALP_MM = 12.0
_SHELL_MM = (1.5, 6.0)
_DEEP_MM = 18.0


def _working_image(image: sitk.Image | np.ndarray) -> sitk.Image:
    """Float32, binned to about :data:`_WORKING_SPACING_MM` (thick slices are kept as they are)."""
    working = image if isinstance(image, sitk.Image) else sitk.GetImageFromArray(np.asarray(image, np.float32))
    working = sitk.Cast(working, sitk.sitkFloat32)
    factors = [max(1, int(round(_WORKING_SPACING_MM / s))) for s in working.GetSpacing()]
    return sitk.BinShrink(working, factors) if any(f > 1 for f in factors) else working


def _brain_depth(image: sitk.Image, array: np.ndarray) -> np.ndarray:
    """Depth under the brain surface in mm (positive inside the brain) for every voxel.

    A skull-stripped image's brain is what differs from its background value (0, or the constant a z-scoring left);
    a whole head's is its Otsu foreground less :data:`_SKULL_AND_SCALP_MM`."""
    from ..preparation.stage import background_value, is_brain_extracted

    background = background_value(array)
    stripped, _ = is_brain_extracted(image, background=background)
    if stripped:
        value, _, tolerance = background
        mask = sitk.GetImageFromArray((np.abs(array - value) > tolerance).astype(np.uint8))
        mask.CopyInformation(image)
    else:
        mask = sitk.OtsuThreshold(image, 0, 1)
    largest = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True) == 1
    depth = sitk.SignedMaurerDistanceMap(sitk.BinaryFillhole(largest), insideIsPositive=True, squaredDistance=False,
                                         useImageSpacing=True)
    return sitk.GetArrayFromImage(depth) - (0.0 if stripped else _SKULL_AND_SCALP_MM)


def _mode(values: np.ndarray, bins: int = 200) -> float:
    """The most common intensity (smoothed histogram between the 1st and 99th percentiles): a tissue's typical value,
    not pulled by the lesions and CSF that share its region as a median is."""
    low, high = np.quantile(values, [0.01, 0.99])
    counts, edges = np.histogram(values, bins=bins, range=(float(low), float(high) + 1e-6))
    counts = np.convolve(counts, np.ones(7) / 7, mode="same")
    peak = int(np.argmax(counts))
    return float(0.5 * (edges[peak] + edges[peak + 1]))


def image_features(image: sitk.Image | np.ndarray) -> np.ndarray:
    """The tissue-order features of one volume (see the module docstring), in :data:`FEATURE_NAMES` order."""
    working = _working_image(image)
    array = np.nan_to_num(sitk.GetArrayFromImage(working))
    depth = _brain_depth(working, array)
    brain = array[depth > 0]
    if brain.size < 100:
        raise ValueError("the image has almost no brain in it")
    q25, median, q75 = np.quantile(brain, [0.25, 0.5, 0.75])
    scale = max(float(q75 - q25), 1e-6 * max(abs(float(median)), 1.0))
    deep = array[depth > _DEEP_MM]
    if deep.size < 200:  # a small or thin brain: its deepest 30 %
        deep = array[depth > np.quantile(depth[depth > 0], 0.7)]
    shell = array[(depth > _SHELL_MM[0]) & (depth < _SHELL_MM[1])]
    if shell.size < 200:
        shell = array[(depth > 0) & (depth < np.quantile(depth[depth > 0], 0.2))]
    white_matter, cortex = _mode(deep), _mode(shell)
    deep_low, deep_high = np.quantile(deep, [0.03, 0.97])
    brain_low, brain_high = np.quantile(brain, [0.005, 0.995])
    raw = np.array([
        cortex - white_matter, float(np.median(shell) - np.median(deep)), deep_high - white_matter,
        white_matter - deep_low, brain_high - white_matter, white_matter - brain_low, white_matter - median,
    ], dtype=np.float64) / scale
    return np.sign(raw) * np.log1p(np.abs(raw))


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True)
    exp = np.exp(scores)
    return exp / exp.sum(axis=-1, keepdims=True)


def train_classifier(features: np.ndarray, labels: Sequence[str], *, l2: float = 1e-2,
                     iterations: int = 3000) -> dict:
    """Multinomial logistic regression (standardised features, L2), fitted by gradient descent; returns the JSON
    the identification reads."""
    classes = sorted(set(labels))
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-8
    x = (features - mean) / scale
    y = np.zeros((len(labels), len(classes)))
    y[np.arange(len(labels)), [classes.index(label) for label in labels]] = 1.0
    weights, bias = np.zeros((x.shape[1], len(classes))), np.zeros(len(classes))
    rate = 0.5
    for _ in range(iterations):
        probability = _softmax(x @ weights + bias)
        error = (probability - y) / len(x)
        weights -= rate * (x.T @ error + l2 * weights)
        bias -= rate * error.sum(axis=0)
    return {"classes": classes, "features": list(FEATURE_NAMES), "mean": mean.tolist(), "scale": scale.tolist(),
            "weights": weights.tolist(), "bias": bias.tolist()}


def probabilities(model: dict, features: np.ndarray) -> dict[str, float]:
    """Every contrast's probability under ``model`` (a :func:`train_classifier` JSON)."""
    x = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
    probability = _softmax(x @ np.asarray(model["weights"]) + np.asarray(model["bias"]))
    return {name: float(p) for name, p in zip(model["classes"], probability, strict=True)}


def decide(probability: Mapping[str, float], min_confidence: float) -> tuple[str | None, str, float, str]:
    """``(answer or None, closest contrast, its probability, why there is no answer)``.

    No answer below ``min_confidence``, and none for a contrast whose dangerous partner (:data:`DANGEROUS_PARTNERS`)
    keeps :data:`MAX_PARTNER_PROBABILITY` or more: telling T1 from T1c, or DWI from ADC, needs the image to rule the
    other out, because that wrong channel is the one that misleads (enhancement that is not there, an inverted
    stroke signal)."""
    closest = max(probability, key=lambda name: probability[name])
    confidence = probability[closest]
    if confidence < min_confidence:
        return None, closest, confidence, f"the image alone is not conclusive (closest: {closest}, {confidence:.0%})"
    partner = DANGEROUS_PARTNERS.get(closest)
    if partner is not None and probability.get(partner, 0.0) >= MAX_PARTNER_PROBABILITY:
        return None, closest, confidence, (f"the image looks like {closest} ({confidence:.0%}) but does not rule out "
                                           f"{partner} ({probability[partner]:.0%})")
    return closest, closest, confidence, ""


def save_classifier(model: dict, path: Path = CLASSIFIER_FILE) -> Path:
    """Write the classifier JSON atomically (a half-written file would disable identification)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _load(path: Path = CLASSIFIER_FILE) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def identify_image(image: sitk.Image | np.ndarray, *, min_confidence: float = 0.8,
                   model: dict | None = None, trusted: bool | None = None) -> Identification:
    """The contrast the image looks like, or None below ``min_confidence`` (with the best guess in the reason).

    ``trusted`` (default :data:`IMAGE_ANSWERS_TRUSTED`): False turns every answer into a hint (modality None)."""
    model = model or _load()
    if model is None:
        return Identification(None, 0.0, "image", "no image classifier is installed")
    if tuple(model.get("features", ())) != FEATURE_NAMES:
        return Identification(None, 0.0, "image", "the installed image classifier was made for other image features; "
                              "rebuild it with `python benchmarks/sequence_identification.py --train`")
    try:
        features = image_features(image)
    except ValueError as err:
        return Identification(None, 0.0, "image", f"cannot read the contrast from the image: {err}")
    return identification_from_scores(image_scores(model, features), min_confidence=min_confidence, trusted=trusted)


def image_scores(model: dict, features: np.ndarray) -> ImageScores:
    """The classifier's view of a volume with these :func:`image_features`: its probabilities, and the features by
    name (what :mod:`.exam` compares between the volumes of one exam)."""
    return ImageScores(probabilities(model, features),
                       {name: float(value) for name, value in zip(FEATURE_NAMES, features, strict=True)})


def identification_from_scores(scores: ImageScores, *, min_confidence: float = 0.8,
                               trusted: bool | None = None) -> Identification:
    """The answer :func:`identify_image` gives for a volume the classifier scored ``scores`` (:func:`decide`), with
    the scores kept on it; split out so the benchmark scores exactly the product's decision."""
    trusted = IMAGE_ANSWERS_TRUSTED if trusted is None else trusted
    answer, name, confidence, why_not = decide(scores.probabilities, min_confidence)
    if answer is None:
        return Identification(None, confidence, "image", f"{why_not}; map this volume by hand", image_scores=scores)
    if not trusted:
        return Identification(None, confidence, "image", f"the image looks most like {name} ({confidence:.0%}); "
                              "identification from the image alone is switched off, map this volume by hand",
                              image_scores=scores)
    return Identification(Modality(name), confidence, "image",
                          f"the order of brightness of white matter, cortex and CSF looks like {name}",
                          image_scores=scores)
