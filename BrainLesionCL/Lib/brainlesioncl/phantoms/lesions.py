"""Pathologies placed in the procedural anatomy, each as soft compartments with a kind and a class.

Compartment kinds select the signal per sequence (see :mod:`.contrast`); classes build the label maps:
1 = necrosis / non-enhancing core (or the whole lesion for MS, stroke, WMH), 2 = oedema, 3 = enhancing tissue.
Shapes are defined in template coordinates, so they follow the case's deformation like the anatomy does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .anatomy import Anatomy
from .fields import ellipsoid_distance, smooth_noise, soft_inside

__all__ = ["Compartment", "Lesions", "LESION_BUILDERS"]

NECROSIS, OEDEMA, ENHANCING = 1, 2, 3


@dataclass
class Compartment:
    kind: str
    label_class: int
    membership: np.ndarray  # full-grid soft membership
    strength: float = 1.0  # how far the signal moves from the tissue's towards the kind's (a lesion's own contrast)


@dataclass
class Lesions:
    """The compartments of a case's pathology, in painting order (later ones cover earlier ones)."""

    compartments: list[Compartment] = field(default_factory=list)
    count: int = 0
    notes: dict = field(default_factory=dict)

    def add(self, kind: str, label_class: int, membership: np.ndarray, *, strength: float = 1.0) -> None:
        self.compartments.append(Compartment(kind, label_class, membership.astype(np.float32), strength))


def _pick(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    candidates = np.flatnonzero(mask)
    if candidates.size == 0:
        raise RuntimeError("no valid location for a lesion in this phantom (grid too small?)")
    x, y, z = np.unravel_index(int(rng.choice(candidates)), mask.shape)
    return int(x), int(y), int(z)


def _box(anatomy: Anatomy, index: tuple[int, int, int], radius_mm: float) -> tuple[slice, ...]:
    half = int(np.ceil(radius_mm * 1.4 / anatomy.coords.spacing)) + 2
    return tuple(slice(max(0, i - half), min(n, i + half + 1)) for i, n in zip(index, anatomy.coords.size, strict=True))


def _blob(
    anatomy: Anatomy, index: tuple[int, int, int], radii: tuple[float, float, float], rng: np.random.Generator,
    *, roughness: float = 0.15, axes: np.ndarray | None = None,
) -> np.ndarray:
    """A soft, irregular ellipsoid around a voxel, on the full grid (computed only in its bounding box)."""
    c = anatomy.coords
    box = _box(anatomy, index, max(radii) * (1 + 2 * roughness))
    x, y, z = c.x[box], c.y[box], c.z[box]
    centre = (c.x[index], c.y[index], c.z[index])
    d = ellipsoid_distance(x, y, z, centre, radii, axes)
    if roughness > 0:
        shape = x.shape
        noise = smooth_noise(shape, rng, max(min(radii), 2.0), c.spacing)
        d = d + roughness * min(radii) * noise
    out = np.zeros(c.size, np.float32)
    out[box] = soft_inside(d, c.spacing)
    return out


def _deep_wm(anatomy: Anatomy, depth: float = 15.0) -> np.ndarray:
    return (anatomy.wm > 0.9) & (anatomy.surface_distance < -depth)


def _radial_axes(anatomy: Anatomy, index: tuple[int, int, int]) -> np.ndarray:
    """Rows: the direction away from the ventricles' midline, then two perpendicular axes (Dawson's fingers)."""
    c = anatomy.coords
    radial = np.array([c.x[index], 0.0, c.z[index] - 10.0])
    radial = radial / (np.linalg.norm(radial) + 1e-6)
    other = np.array([0.0, 1.0, 0.0])
    third = np.cross(radial, other)
    return np.stack([radial, other, third / (np.linalg.norm(third) + 1e-6)])


def glioma(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Necrotic core, enhancing rim, surrounding oedema spreading mostly in white matter; 20% non-enhancing."""
    lesions = Lesions(count=1)
    hemisphere = rng.choice([-1.0, 1.0])
    mask = _deep_wm(anatomy, 22.0) & (np.sign(anatomy.coords.x) == hemisphere) & (anatomy.ventricle_distance > 8)
    index = _pick(mask, rng)
    core_r = float(rng.uniform(8.0, 18.0))
    core = _blob(anatomy, index, tuple(core_r * rng.uniform(0.8, 1.2, 3)), rng, roughness=0.2)
    oedema_r = core_r + float(rng.uniform(5.0, 16.0))
    oedema = _blob(anatomy, index, tuple(oedema_r * rng.uniform(0.75, 1.25, 3)), rng, roughness=0.35)
    brain_tissue = np.clip(anatomy.wm + 0.35 * anatomy.gm, 0, 1)
    lesions.add("oedema", OEDEMA, oedema * brain_tissue)
    enhancing = rng.random() > 0.2
    if enhancing:
        lesions.add("enhancing", ENHANCING, core)
        if core_r > 10:
            necrosis_r = core_r * float(rng.uniform(0.4, 0.7))
            lesions.add("necrosis", NECROSIS, _blob(anatomy, index, (necrosis_r,) * 3, rng, roughness=0.2))
    else:
        lesions.add("nonenhancing_core", NECROSIS, core)
    lesions.notes = {"enhancing": bool(enhancing), "core_radius_mm": round(core_r, 1)}
    return lesions


def multiple_sclerosis(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Several ovoid WM lesions: periventricular (perpendicular to the ventricles), juxtacortical and deep."""
    lesions = Lesions()
    n = int(rng.integers(5, 19))
    wm = anatomy.wm > 0.8
    periventricular = wm & (anatomy.ventricle_distance > 1.0) & (anatomy.ventricle_distance < 7.0)
    juxtacortical = wm & (anatomy.surface_distance > -9.0) & (anatomy.surface_distance < -4.0)
    deep = _deep_wm(anatomy, 12.0)
    for _ in range(n):
        u = rng.random()
        if u < 0.55 and periventricular.any():
            index = _pick(periventricular, rng)
            radii = (float(rng.uniform(3.5, 8.0)), float(rng.uniform(2.0, 4.0)), float(rng.uniform(2.0, 4.0)))
            blob = _blob(anatomy, index, radii, rng, roughness=0.12, axes=_radial_axes(anatomy, index))
        else:
            index = _pick(juxtacortical if u < 0.85 else deep, rng)
            r = float(rng.uniform(1.8, 4.5))
            blob = _blob(anatomy, index, (r * rng.uniform(0.8, 1.3), r, r * rng.uniform(0.8, 1.3)), rng, roughness=0.1)
        kind = "ms_black_hole" if rng.random() < 0.25 else ("ms_active" if rng.random() < 0.2 else "ms_lesion")
        lesions.add(kind, 1, blob * np.clip(anatomy.wm + 0.5 * anatomy.gm, 0, 1))
        lesions.count += 1
    return lesions


_TERRITORIES = {
    # apex (deep origin of the wedge, x mirrored per hemisphere), direction towards the cortex
    "MCA": ((18.0, 2.0, 4.0), (1.0, 0.0, 0.15)),
    "ACA": ((6.0, 20.0, 10.0), (0.15, 0.55, 0.85)),
    "PCA": ((10.0, -30.0, 0.0), (0.2, -1.0, 0.1)),
}


def stroke(anatomy: Anatomy, rng: np.random.Generator, stage: str | None = None) -> Lesions:
    """A territorial infarct: a wedge from a deep apex through subcortex and cortex of one arterial territory.

    Acute: restricted diffusion (DWI bright, ADC dark), mild T2/FLAIR signal. Chronic: tissue loss (CSF-like on
    T1/T2, dark centre on FLAIR) with a gliotic rim.
    """
    stage = stage or ("acute" if rng.random() < 0.5 else "chronic")
    territory = str(rng.choice(list(_TERRITORIES)))
    side = float(rng.choice([-1.0, 1.0]))
    (ax, ay, az), (vx, vy, vz) = _TERRITORIES[territory]
    apex = np.array([side * ax, ay, az], np.float32)
    direction = np.array([side * vx, vy, vz], np.float32)
    direction += rng.normal(0, 0.2, 3).astype(np.float32)
    direction /= np.linalg.norm(direction)
    c = anatomy.coords
    px, py, pz = c.x - apex[0], c.y - apex[1], c.z - apex[2]
    along = px * direction[0] + py * direction[1] + pz * direction[2]
    radial = np.sqrt(np.maximum(px**2 + py**2 + pz**2 - along**2, 0))
    half_angle = np.deg2rad(rng.uniform(12.0, 32.0))
    start = float(rng.uniform(5.0, 35.0))
    irregular = 4.0 * smooth_noise(c.size, rng, 10.0, c.spacing)
    d = np.maximum(radial - np.tan(half_angle) * np.clip(along, 0, None), start - along) + irregular
    brain = np.clip(anatomy.gm + anatomy.wm, 0, 1)
    core = soft_inside(d, c.spacing) * brain
    lesions = Lesions(count=1, notes={"territory": territory, "stage": stage})
    if stage == "acute":
        lesions.add("stroke_acute", 1, core)
    else:
        rim = soft_inside(d - 2.5, c.spacing) * brain
        lesions.add("gliosis", 1, rim)
        lesions.add("stroke_chronic", 1, soft_inside(d + 1.0, c.spacing) * brain)
    return lesions


def white_matter_hyperintensities(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Periventricular caps and rims plus punctate deep lesions; severity (Fazekas-like 1-3) sets their extent."""
    severity = int(rng.integers(1, 4))
    lesions = Lesions(notes={"severity": severity})
    c = anatomy.coords
    wm = np.clip(anatomy.wm, 0, 1)
    rim_width = 0.5 + 1.2 * severity + 1.5 * smooth_noise(c.size, rng, 12.0, c.spacing)
    rim = soft_inside(anatomy.ventricle_distance - rim_width, c.spacing) * (anatomy.ventricle_distance > -0.5)
    caps = np.zeros(c.size, np.float32)
    for side in (-1.0, 1.0):
        for y_tip, z_tip in ((33.0, 10.0), (-30.0, 6.0)):
            r = 2.0 + 2.5 * severity * float(rng.uniform(0.7, 1.3))
            d = ellipsoid_distance(c.x, c.y, c.z, (side * 10.0, y_tip, z_tip), (r * 0.8, r, r * 0.8))
            caps = np.maximum(caps, soft_inside(d, c.spacing))
    lesions.add("wmh", 1, np.maximum(rim, caps) * wm)
    lesions.count = 4
    deep = _deep_wm(anatomy, 10.0) & (anatomy.ventricle_distance > 8)
    for _ in range(int(rng.integers(2, 8 * severity + 3))):
        index = _pick(deep, rng)
        r = float(rng.uniform(1.2, 3.0 + severity))
        lesions.add("wmh", 1, _blob(anatomy, index, (r, r, r * rng.uniform(0.8, 1.5)), rng, roughness=0.1) * wm)
        lesions.count += 1
    return lesions


def metastases(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Several small enhancing spheres at the grey-white junction, ring-enhancing when large, with oedema."""
    lesions = Lesions()
    junction = (anatomy.gm > 0.3) & (anatomy.wm > 0.3) & (anatomy.surface_distance < -4)
    n = int(rng.integers(1, 9))
    radii = []
    oedemas, cores = [], []
    for _ in range(n):
        index = _pick(junction, rng)
        r = float(np.exp(rng.uniform(np.log(1.5), np.log(11.0))))
        radii.append(round(r, 1))
        core = _blob(anatomy, index, (r, r, r), rng, roughness=0.1)
        if r > 3.0:
            oedema_r = r * float(rng.uniform(1.6, 3.2))
            spread = np.clip(anatomy.wm + 0.3 * anatomy.gm, 0, 1)  # vasogenic oedema runs in white matter
            oedema = _blob(anatomy, index, (oedema_r,) * 3, rng, roughness=0.3) * spread
            oedemas.append(oedema)
        necrosis = _blob(anatomy, index, (r * 0.55,) * 3, rng, roughness=0.1) if r > 5.0 else None
        cores.append((core, necrosis))
    for oedema in oedemas:
        lesions.add("oedema", OEDEMA, oedema)
    for core, necrosis in cores:
        lesions.add("enhancing", ENHANCING, core)
        if necrosis is not None:
            lesions.add("necrosis", NECROSIS, necrosis)
    lesions.count = n
    lesions.notes = {"radii_mm": radii}
    return lesions


def contusion(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Traumatic contusions: haemorrhagic foci (dark on SWI) in frontal/temporal cortex with surrounding oedema."""
    lesions = Lesions()
    c = anatomy.coords
    region = (anatomy.surface_distance > -10) & (anatomy.surface_distance < -2) & ((c.y > 25) | (c.z < -15))
    for _ in range(int(rng.integers(1, 4))):
        index = _pick(region & (anatomy.gm > 0.3), rng)
        r = float(rng.uniform(3.0, 9.0))
        lesions.add("oedema", OEDEMA, _blob(anatomy, index, (r * 1.8,) * 3, rng, roughness=0.3))
        lesions.add("haemorrhage", NECROSIS, _blob(anatomy, index, (r,) * 3, rng, roughness=0.3))
        lesions.count += 1
    return lesions


LESION_BUILDERS: dict[str, Callable[..., Lesions]] = {
    "tumour": glioma,
    "MS": multiple_sclerosis,
    "stroke": stroke,
    "WMH": white_matter_hyperintensities,
    "metastasis": metastases,
    "TBI": contusion,
}
