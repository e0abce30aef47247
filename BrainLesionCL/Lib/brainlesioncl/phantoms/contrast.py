"""MRI signal model: tissue and lesion intensities per sequence, texture, bias field and Rician noise.

Relative intensities follow the usual appearance of each sequence (white matter brightest on T1, CSF brightest on T2
and dark on FLAIR, enhancement on T1c, veins and blood products dark on SWI, restricted diffusion bright on DWI and
dark on ADC). Every case jitters them by a few percent so a model cannot learn one fixed contrast.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .fields import smooth_noise
from .lesions import Lesions

__all__ = ["HEAD_SIGNAL", "TISSUE_SIGNAL", "LESION_SIGNAL", "MODALITIES", "render"]

MODALITIES = ("FLAIR", "T1", "T1c", "T2", "PD", "DWI", "SWI", "ADC")

#: sequence -> (CSF, GM, WM, vessel)
TISSUE_SIGNAL: dict[str, tuple[float, float, float, float]] = {
    "T1": (0.25, 0.62, 0.90, 0.50),
    "T1c": (0.25, 0.64, 0.92, 1.90),
    "T2": (1.00, 0.58, 0.42, 0.20),
    "FLAIR": (0.08, 0.62, 0.48, 0.30),
    "PD": (0.90, 0.82, 0.68, 0.40),
    "DWI": (0.18, 0.58, 0.50, 0.30),
    "SWI": (0.85, 0.62, 0.72, 0.12),
    "ADC": (1.00, 0.28, 0.24, 0.50),
}

#: sequence -> (skull, scalp) signal for raw, skull-on phantoms
HEAD_SIGNAL: dict[str, tuple[float, float]] = {
    "T1": (0.08, 1.05), "T1c": (0.08, 1.08), "T2": (0.06, 0.75), "FLAIR": (0.06, 0.85), "PD": (0.10, 0.80),
    "DWI": (0.04, 0.15), "SWI": (0.05, 0.60), "ADC": (0.05, 0.25),
}

_ORDER = ("T1", "T1c", "T2", "FLAIR", "PD", "DWI", "SWI", "ADC")
#: lesion kind -> signal per sequence in _ORDER
LESION_SIGNAL: dict[str, dict[str, float]] = {
    kind: dict(zip(_ORDER, values, strict=True))
    for kind, values in {
        "oedema": (0.58, 0.60, 0.88, 0.95, 0.90, 0.60, 0.80, 0.45),
        "enhancing": (0.55, 1.55, 0.70, 0.80, 0.85, 0.75, 0.60, 0.35),
        "necrosis": (0.30, 0.32, 1.05, 0.55, 0.90, 0.30, 0.70, 0.80),
        "nonenhancing_core": (0.48, 0.50, 0.85, 0.90, 0.88, 0.62, 0.70, 0.40),
        "ms_lesion": (0.70, 0.72, 0.85, 0.95, 0.95, 0.62, 0.70, 0.35),
        "ms_black_hole": (0.40, 0.42, 0.92, 0.85, 0.95, 0.50, 0.72, 0.45),
        "ms_active": (0.68, 1.25, 0.88, 1.00, 0.95, 0.70, 0.70, 0.35),
        "stroke_acute": (0.55, 0.58, 0.80, 0.85, 0.88, 1.35, 0.68, 0.12),
        "stroke_chronic": (0.28, 0.28, 0.98, 0.15, 0.88, 0.20, 0.85, 0.95),
        "gliosis": (0.55, 0.56, 0.80, 0.95, 0.88, 0.50, 0.70, 0.45),
        "wmh": (0.72, 0.73, 0.78, 0.92, 0.88, 0.58, 0.72, 0.33),
        "haemorrhage": (0.70, 0.72, 0.35, 0.70, 0.60, 0.50, 0.08, 0.30),
        # The clinical style (clinical_lesions.py): set so that, blended by each lesion's strength, the median
        # lesion/brain ratio matches the real training cases (MS, WMH) or the published acute appearance (stroke).
        "ms_lesion_subtle": (0.72, 0.74, 0.74, 0.74, 0.90, 0.58, 0.70, 0.33),
        "ms_black_hole_subtle": (0.50, 0.52, 0.78, 0.70, 0.92, 0.52, 0.72, 0.40),
        "ms_active_subtle": (0.72, 1.10, 0.76, 0.76, 0.90, 0.62, 0.70, 0.32),
        "wmh_subtle": (0.74, 0.75, 0.74, 0.66, 0.88, 0.56, 0.70, 0.32),
        "stroke_acute_subtle": (0.70, 0.72, 0.62, 0.60, 0.84, 0.90, 0.68, 0.14),
    }.items()
}


def render(
    modality: str,
    anatomy: Anatomy,
    lesions: Lesions,
    rng: np.random.Generator,
    *,
    texture: np.ndarray | None = None,
    noise: float = 0.03,
    bias: float = 0.15,
    head: np.ndarray | None = None,
) -> np.ndarray:
    """One image of ``modality`` (float32): skull-stripped (background exactly 0), or, with ``head`` (0 brain and
    air, 1 skull, 2 scalp), a raw exam with skull, scalp and a noisy air background, as a scanner delivers it.

    ``texture`` is a unit-variance field shared by all sequences of a case (the tissue is the same tissue).
    """

    def jitter(value: float) -> float:
        return value * float(1.0 + rng.normal(0.0, 0.05))
    csf, gm, wm, vessel = (jitter(v) for v in TISSUE_SIGNAL[modality])
    h, size = anatomy.coords.spacing, anatomy.coords.size
    image = anatomy.csf * csf + anatomy.gm * gm + anatomy.wm * wm
    vessel_weight = anatomy.vessels
    image = image * (1 - vessel_weight) + vessel_weight * vessel * anatomy.intracranial
    if head is not None:  # compact bone gives almost no signal; scalp fat is bright on T1, moderate elsewhere
        skull_signal, scalp_signal = HEAD_SIGNAL[modality]
        outside = anatomy.intracranial < 0.5
        image = np.where(outside & (head == 1), jitter(skull_signal), image)
        image = np.where(outside & (head == 2), jitter(scalp_signal), image)
    for compartment in lesions.compartments:
        value = jitter(LESION_SIGNAL[compartment.kind][modality])
        m = compartment.membership if compartment.strength == 1.0 else compartment.membership * compartment.strength
        image = image * (1 - m) + m * value
    if texture is not None:
        image *= 1.0 + 0.03 * texture
    image *= np.exp(bias * smooth_noise(size, rng, 80.0, h))  # coil bias field
    sigma = noise * wm
    real = image + rng.normal(0.0, sigma, size).astype(np.float32)
    imaginary = rng.normal(0.0, sigma, size).astype(np.float32)
    image = np.sqrt(real**2 + imaginary**2)  # Rician magnitude noise
    image *= float(rng.uniform(200.0, 1200.0))  # arbitrary scanner units
    if head is None:
        image[anatomy.intracranial < 0.5] = 0.0  # skull-stripped
    return image.astype(np.float32)
