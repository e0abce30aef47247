"""``--disease auto``: which disease routing fits a case, read from the image by the network's own encoder.

The MoE gates take a disease one-hot; a clinician does not always know the disease (an incidental finding, an
unlabelled referral). The router decides from the case itself:

1. **Signature**: one encoder pass with the neutral ``unknown`` context; every encoder stage's output is pooled over
   space (mean and maximum per channel), giving a short vector (2 x 248 numbers for the demonstration width); plus,
   per channel, where the brain's z-scored intensities lie (quantiles, the share of voxels beyond 2, 3 and 4 SD:
   lesions are the bright or dark tail). The encoder is the cheap half of the network: its first unit already halves
   the resolution, while the decoder's last stages run at full resolution.
2. **Classifier**: a multinomial logistic regression on the standardised signature, fitted on procedural phantoms of
   every disease (varied scanners, random modality subsets) and on annotated cases, and stored in the model bundle
   (``bundle.json`` key ``router``): a few thousand numbers, no image.
3. **Decision**: the most probable disease when its probability reaches the router's ``threshold``; otherwise the
   gates get the probability vector itself (they are linear in the context, so that mixes the candidate routings in
   proportion, the same principle as ``unknown``'s uniform mix) and the case is reported as unsure.

Why not "run every disease and keep the most confident output": measured on held-out phantoms, a wrong routing is
often as confident as the right one (a tumour routed as WMH is segmented as sharply), and it costs one full network
pass per disease. Why pooled encoder features and not a separate image classifier: the encoder already learnt what
lesions look like on every sequence, and the signature costs one encoder pass, no second model to ship. Measured
(benchmarks/disease_routing.py): encoder features alone identify 67 % of held-out phantoms, intensity statistics
alone 83 %, both together 83 % and the most real cases; a lesion map from a full extra pass added nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import ModelError
from ..models.blocks import NETWORK_STRIDE

__all__ = ["ROUTER_FEATURES", "DiseaseRouter", "RoutingDecision", "case_signature", "encoder_signature",
           "fit_router", "intensity_signature"]

#: Name of the signature the router was fitted on; a router for another signature is refused, not misread.
ROUTER_FEATURES = "encoder-mean-max+intensity-v1"
_QUANTILES = (0.5, 0.75, 0.9, 0.95, 0.99, 0.999)
#: Numbers per channel in :func:`intensity_signature`.
INTENSITY_FEATURES = 1 + len(_QUANTILES) + 4


@dataclass(frozen=True)
class RoutingDecision:
    """What ``auto`` chose for one case.

    Attributes:
        disease: the chosen tag, or ``"unknown"`` when no disease reached the threshold (then the mix is used).
        probabilities: ``{disease: probability}`` over the router's classes, summing to 1.
        confident: the top probability reached the router's threshold.
    """

    disease: str
    probabilities: dict[str, float]
    confident: bool
    #: A caveat for the user (e.g. the router was fitted on an earlier version of the network).
    note: str = ""

    def disease_vector(self, slots: Sequence[str]) -> list[float]:
        """The disease part of the gate context, in slot order: one-hot on the choice, or the probability mix."""
        if self.confident:
            return [1.0 if slot == self.disease else 0.0 for slot in slots]
        mix = [self.probabilities.get(slot, 0.0) for slot in slots]
        total = sum(mix)
        return [p / total for p in mix] if total > 0 else [1.0 / len(slots)] * len(slots)

    def describe(self) -> str:
        ranked = sorted(self.probabilities.items(), key=lambda item: -item[1])
        odds = ", ".join(f"{d} {p:.0%}" for d, p in ranked)
        text = (f"disease auto: {self.disease} ({odds})" if self.confident else
                f"disease auto: unsure ({odds}); the routings were mixed in those proportions")
        return f"{text}. {self.note}" if self.note else text

    def to_json(self) -> dict[str, Any]:
        return {"disease": self.disease, "confident": self.confident,
                "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
                **({"note": self.note} if self.note else {})}


@dataclass(frozen=True)
class DiseaseRouter:
    """A fitted router (see the module docstring). Build with :func:`fit_router`; store with :meth:`to_json`."""

    classes: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    threshold: float = 0.6
    features: str = ROUTER_FEATURES
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dim, k = len(self.center), len(self.classes)
        if k < 2:
            raise ModelError(f"a disease router needs at least two diseases, got {list(self.classes)}")
        shapes_ok = (np.shape(self.scale) == (dim,) and np.shape(self.weights) == (dim, k)
                     and np.shape(self.bias) == (k,))
        if not shapes_ok:
            raise ModelError(
                f"the disease router's arrays do not fit together (center {np.shape(self.center)}, scale "
                f"{np.shape(self.scale)}, weights {np.shape(self.weights)}, bias {np.shape(self.bias)}); the bundle is "
                "damaged: re-install or re-import this version.")
        arrays = (self.center, self.scale, self.weights, self.bias)
        if not all(np.isfinite(np.asarray(a, dtype=np.float64)).all() for a in arrays) or np.any(self.scale <= 0):
            raise ModelError("the disease router holds non-finite numbers or a non-positive scale; re-install or "
                             "re-import this version.")
        if not 0 < self.threshold <= 1:
            raise ModelError(f"the disease router's threshold must be in (0, 1], got {self.threshold}")

    @property
    def dimension(self) -> int:
        return len(self.center)

    def probabilities(self, signature: np.ndarray) -> np.ndarray:
        """Class probabilities of one signature (features,) -> (classes,)."""
        signature = np.asarray(signature, dtype=np.float64)
        if signature.shape != (self.dimension,):
            raise ModelError(
                f"the case's encoder signature has {signature.size} numbers but the router was fitted on "
                f"{self.dimension}: the router belongs to a network of another width. Refit it (benchmarks/"
                "disease_routing.py --fit) or pick the disease.")
        logits = ((signature - self.center) / self.scale) @ self.weights + self.bias
        logits = logits - logits.max()
        odds = np.exp(logits)
        return odds / odds.sum()

    def decide(self, signature: np.ndarray) -> RoutingDecision:
        p = self.probabilities(signature)
        best = int(np.argmax(p))
        confident = bool(p[best] >= self.threshold)
        return RoutingDecision(self.classes[best] if confident else "unknown",
                               {c: float(v) for c, v in zip(self.classes, p, strict=True)}, confident)

    def to_json(self) -> dict[str, Any]:
        return {
            "features": self.features, "classes": list(self.classes), "threshold": self.threshold,
            "center": [float(v) for v in self.center], "scale": [float(v) for v in self.scale],
            "weights": [[float(v) for v in row] for row in self.weights], "bias": [float(v) for v in self.bias],
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DiseaseRouter:
        try:
            features = str(data["features"])
            if features != ROUTER_FEATURES:
                raise ModelError(
                    f"the bundle's disease router reads {features!r} signatures; this BrainLesionCL computes "
                    f"{ROUTER_FEATURES!r}. Update BrainLesionCL, or pick the disease instead of auto.")
            return cls(
                classes=tuple(str(c) for c in data["classes"]),
                center=np.asarray(data["center"], dtype=np.float64),
                scale=np.asarray(data["scale"], dtype=np.float64),
                weights=np.asarray(data["weights"], dtype=np.float64),
                bias=np.asarray(data["bias"], dtype=np.float64),
                threshold=float(data.get("threshold", 0.6)),
                features=features,
                fitted_on=dict(data.get("fitted_on", {})),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"the bundle's disease router is malformed ({type(err).__name__}: {err}); re-install "
                             "or re-import this version.") from err


@torch.inference_mode()
def encoder_signature(network: nn.Module, array: np.ndarray, context: torch.Tensor) -> np.ndarray:
    """Mean and maximum of every encoder stage's output over space, for a prepared (C, X, Y, Z) array.

    ``network`` must have an ``encoder`` (a sequence of units called as ``unit(h, context)``), as the MoE U-Net has;
    ``context`` should be the neutral one (modality flags + ``unknown``) so that the signature does not presuppose a
    disease. Zero padding to the network's multiple of 16 is the z-scored background, as in :class:`Predictor`.
    """
    encoder = getattr(network, "encoder", None)
    if encoder is None:
        raise ModelError("this model has no MoE encoder to read a disease from; pick the disease instead of auto.")
    parameter = next(network.parameters())
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None].to(parameter.device)
    spatial = x.shape[2:]
    padded = [math.ceil(s / NETWORK_STRIDE) * NETWORK_STRIDE for s in spatial]
    pad = [p for s, t in zip(reversed(spatial), reversed(padded), strict=True) for p in (0, t - s)]
    h = torch.nn.functional.pad(x, pad)
    context = context.to(parameter.device)
    pooled = []
    for unit in encoder:
        h = unit(h, context)
        pooled += [h.float().mean(dim=(2, 3, 4))[0], h.float().amax(dim=(2, 3, 4))[0]]
    return torch.cat(pooled).cpu().numpy().astype(np.float64)


def intensity_signature(array: np.ndarray, present: list[bool]) -> np.ndarray:
    """Per channel of a prepared (z-scored in the brain) array: present flag, brain-intensity quantiles, and the
    shares of voxels above 2, 3 and 4 and below -2 (zeros for an absent channel)."""
    brain = np.any(array != 0, axis=0)
    out: list[float] = []
    for channel, there in zip(array, present, strict=True):
        values = channel[brain].astype(np.float32)
        if not there or values.size == 0:
            out += [0.0] * INTENSITY_FEATURES
            continue
        out += [1.0, *np.quantile(values, _QUANTILES).tolist(), float((values > 2).mean()),
                float((values > 3).mean()), float((values > 4).mean()), float((values < -2).mean())]
    return np.asarray(out, dtype=np.float64)


def case_signature(network: nn.Module, array: np.ndarray, present: list[bool], context: torch.Tensor) -> np.ndarray:
    """What the router reads: :func:`encoder_signature` then :func:`intensity_signature`."""
    return np.concatenate([encoder_signature(network, array, context), intensity_signature(array, present)])


def fit_router(signatures: np.ndarray, labels: Sequence[str], classes: Sequence[str], *, l2: float = 0.3,
               threshold: float = 0.6, fitted_on: dict[str, Any] | None = None) -> DiseaseRouter:
    """Fit the router's logistic regression (L-BFGS, L2 penalty on the weights) on signatures (N, features).

    Every class must have at least one example: a router that has never seen a disease cannot choose it. The
    default penalty (0.3) is the one that generalised best from phantoms to real cases of 0.003, 0.03 and 0.3.
    """
    x = np.asarray(signatures, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != len(labels):
        raise ValueError(f"signatures {x.shape} do not match {len(labels)} labels")
    missing = [c for c in classes if c not in set(labels)]
    if missing:
        raise ValueError(f"no example of {missing}: the router cannot learn a disease it has not seen")
    center, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = torch.from_numpy((x - center) / scale)
    y = torch.tensor([list(classes).index(label) for label in labels])
    generator = torch.Generator().manual_seed(0)
    weights = (0.01 * torch.randn(x.shape[1], len(classes), generator=generator, dtype=torch.float64)).requires_grad_()
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weights, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = torch.nn.functional.cross_entropy(z @ weights + bias, y) + l2 * (weights ** 2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    counts = {c: int(sum(1 for label in labels if label == c)) for c in classes}
    return DiseaseRouter(tuple(classes), center, scale, weights.detach().numpy(), bias.detach().numpy(),
                         threshold=threshold, fitted_on={"cases_per_disease": counts, "l2": l2, **(fitted_on or {})})
