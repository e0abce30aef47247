"""Which contrast a volume is, from the image alone (a NIfTI called ``img1.nii.gz``): intensity statistics that do not
depend on scanner units, and a small multinomial logistic regression trained on the project's phantoms.

Why these features: what tells the contrasts apart is where the tissues sit relative to each other, not the numbers
the scanner writes. So every feature is computed on the image divided by its foreground median: the quantiles of that
ratio (CSF is bright on T2/ADC, dark on T1/FLAIR/DWI), the share of very dark and very bright voxels, skewness and
spread, and the centre-to-whole ratio (the ventricles are central: bright centre on T2/ADC, dark on T1/FLAIR). The
weights are a small JSON shipped in the package (``image_classifier.json``), rebuilt by
``python benchmarks/sequence_identification.py --train``.

An answer below ``min_confidence`` is not given (the channel stays empty and the reason says why): identifying from
the image is the weakest evidence and only used when there is neither a telling name nor DICOM.

**Not trusted yet** (:data:`IMAGE_ANSWERS_TRUSTED` is False): trained on phantoms only, the classifier is right on
held-out phantoms but not on real scans (3 of 11 confident answers right on the real images of ../shared/data, and a T2
taken for an ADC map with high confidence; docs/BENCHMARKS.md). Until it is, its best guess is shown as a hint and never
fills a channel.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..modalities import Modality
from .result import Identification

__all__ = ["CLASSIFIER_FILE", "FEATURE_NAMES", "IMAGE_ANSWERS_TRUSTED", "image_features", "identify_image",
           "train_classifier", "save_classifier"]

CLASSIFIER_FILE = Path(__file__).with_name("image_classifier.json")
#: Whether an image-only answer may fill a channel (see the module docstring: not yet).
IMAGE_ANSWERS_TRUSTED = False
_QUANTILES = (0.02, 0.05, 0.1, 0.25, 0.4, 0.6, 0.75, 0.9, 0.95, 0.98, 0.995)
FEATURE_NAMES = (*(f"q{q:g}" for q in _QUANTILES), "dark_share", "bright_share", "very_bright_share", "skewness",
                 "log_kurtosis", "spread", "centre_ratio", "centre_dark_share", "centre_bright_share")


def _foreground(array: np.ndarray) -> np.ndarray:
    """Voxels of the head: nonzero for skull-stripped images, above an Otsu threshold otherwise."""
    nonzero = array > 0
    if nonzero.mean() < 0.9:  # background already 0 (skull-stripped or masked)
        return nonzero
    image = sitk.GetImageFromArray(array.astype(np.float32))
    return sitk.GetArrayFromImage(sitk.OtsuThreshold(image, 0, 1)) > 0


def image_features(image: sitk.Image | np.ndarray) -> np.ndarray:
    """The scale-free intensity features of one volume (see the module docstring), in :data:`FEATURE_NAMES` order."""
    array = sitk.GetArrayFromImage(image) if isinstance(image, sitk.Image) else np.asarray(image)
    array = np.nan_to_num(array.astype(np.float32))
    array = array - min(0.0, float(array.min()))  # images exported with negative values
    mask = _foreground(array)
    values = array[mask]
    if values.size < 100:
        raise ValueError("the image has almost no foreground")
    ratio = values / max(float(np.median(values)), 1e-6)
    quantiles = np.quantile(ratio, _QUANTILES)
    centred = ratio - ratio.mean()
    std = float(ratio.std()) + 1e-6
    # The central box (the middle fifth of every axis of the foreground's extent): where the ventricles are.
    index = np.argwhere(mask)
    lo, hi = index.min(axis=0), index.max(axis=0) + 1
    centre = tuple(slice(int(a + 0.4 * (b - a)), int(a + 0.6 * (b - a)) + 1) for a, b in zip(lo, hi, strict=True))
    centre_values = array[centre][mask[centre]] / max(float(np.median(values)), 1e-6)
    if centre_values.size == 0:
        centre_values = ratio
    return np.array([
        *quantiles,
        float((ratio < 0.5).mean()), float((ratio > 1.5).mean()), float((ratio > 2.5).mean()),
        float((centred**3).mean() / std**3), float(np.log((centred**4).mean() / std**4)), std,
        float(np.median(centre_values)), float((centre_values < 0.5).mean()), float((centre_values > 1.5).mean()),
    ], dtype=np.float64)


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


def save_classifier(model: dict, path: Path = CLASSIFIER_FILE) -> Path:
    path.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    return path


def _load(path: Path = CLASSIFIER_FILE) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def identify_image(image: sitk.Image | np.ndarray, *, min_confidence: float = 0.8,
                   model: dict | None = None, trusted: bool | None = None) -> Identification:
    """The contrast the image looks like, or None below ``min_confidence`` (with the best guess in the reason).

    ``trusted`` (default :data:`IMAGE_ANSWERS_TRUSTED`): False turns every answer into a hint (modality None)."""
    trusted = IMAGE_ANSWERS_TRUSTED if trusted is None else trusted
    model = model or _load()
    if model is None:
        return Identification(None, 0.0, "image", "no image classifier is installed")
    try:
        features = image_features(image)
    except ValueError as err:
        return Identification(None, 0.0, "image", f"cannot read the contrast from the image: {err}")
    x = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
    probability = _softmax(x @ np.asarray(model["weights"]) + np.asarray(model["bias"]))
    best = int(np.argmax(probability))
    name, confidence = model["classes"][best], float(probability[best])
    if confidence < min_confidence:
        return Identification(None, confidence, "image", f"the image alone is not conclusive (closest: {name}, "
                              f"{confidence:.0%}); map this volume by hand")
    if not trusted:
        return Identification(None, confidence, "image", f"the image looks most like {name} ({confidence:.0%}), but "
                              "identification from the image alone is not yet reliable on real scans; map this volume "
                              "by hand")
    return Identification(Modality(name), confidence, "image", f"the image's tissue contrast looks like {name}")
