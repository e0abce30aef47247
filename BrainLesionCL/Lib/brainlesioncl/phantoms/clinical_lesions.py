"""The ``clinical`` lesion style: MS, WMH and acute stroke drawn as they look on real scans, not as textbook icons.

The ``classic`` builders (:mod:`.lesions`) draw a few large, bright lesions: on FLAIR their median is 1.6-1.9 times
the brain's, MS phantoms carry 8-15 lesions of median 0.24-0.31 mL, and one WMH rim holds 90 % of the load. Measured
the same way on the real *training* cases of ``benchmarks/real_split.json`` (``benchmarks/phantom_realism.py``), real
lesions are subtle and small:

* MS (one case): FLAIR 1.32 x brain, T2 1.38, T1 0.97; 37 lesions of median 0.017 mL, 89 % under 0.1 mL.
* WMH (two cases): FLAIR 1.29-1.34 x brain; 53-77 components of median 0.02 mL, the largest only 20-30 % of the load.
* Acute stroke (no real training case: the one labelled stroke only evaluates) follows the published appearance:
  DWI about 1.8 times, ADC about 0.6 times normal tissue (the usual rADC < 0.62 core threshold), FLAIR and T2 only
  slightly bright in the first hours; territorial infarcts, embolic showers of small lesions in one territory, and
  lacunes in the deep grey matter and corona radiata. With a :class:`.lesion_library.LesionLibrary` (real lesion
  masks in MNI space) the shapes and places are real ones.

Every lesion also gets its own strength (a partial blend towards the lesion signal), so the phantoms span the range
of contrasts a model meets instead of one value per kind.
"""

from __future__ import annotations

import numpy as np

from .anatomy import Anatomy
from .fields import smooth_noise, soft_inside
from .lesion_library import LesionLibrary
from .lesions import _TERRITORIES, Lesions, _blob, _deep_wm, _pick, _radial_axes, stroke

__all__ = ["clinical_multiple_sclerosis", "clinical_stroke", "clinical_white_matter_hyperintensities"]


def _equivalent_radius(volume_ml: float) -> float:
    return float((3.0 * volume_ml * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0))


def _small_lesion_radius(rng: np.random.Generator, median_ml: float, spread: float, largest_mm: float) -> float:
    """Radius (mm) of a lesion whose volume is log-normal around ``median_ml`` (the real cases' size distribution)."""
    volume = float(np.exp(rng.normal(np.log(median_ml), spread)))
    return float(np.clip(_equivalent_radius(volume), 1.0, largest_mm))


def _infratentorial(anatomy: Anatomy) -> np.ndarray:
    """White matter below the tentorium: the cerebellar white matter and the midline base (pons, peduncles)."""
    c = anatomy.coords
    return (anatomy.wm > 0.6) & (c.z < -22.0) & (c.y < -15.0) & (anatomy.surface_distance < -4.0)


def clinical_multiple_sclerosis(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Many small ovoid lesions, subtle on FLAIR: periventricular (Dawson's fingers), juxtacortical, deep and
    infratentorial; a few larger periventricular plaques."""
    lesions = Lesions(notes={"style": "clinical"})
    n = int(np.clip(np.exp(rng.normal(np.log(22.0), 0.5)), 6, 60))
    wm = anatomy.wm > 0.7
    regions = {
        "periventricular": wm & (anatomy.ventricle_distance > 0.5) & (anatomy.ventricle_distance < 6.0),
        "juxtacortical": wm & (anatomy.surface_distance > -8.0) & (anatomy.surface_distance < -3.5),
        "deep": _deep_wm(anatomy, 10.0) & (anatomy.ventricle_distance > 6.0),
        "infratentorial": _infratentorial(anatomy),
    }
    shares = {"periventricular": 0.40, "juxtacortical": 0.25, "deep": 0.22, "infratentorial": 0.13}
    names = [k for k in shares if regions[k].any()]
    weights = np.array([shares[k] for k in names]) / sum(shares[k] for k in names)
    placed = dict.fromkeys(names, 0)
    tissue = np.clip(anatomy.wm + 0.5 * anatomy.gm, 0, 1)
    for _ in range(n):
        where = str(rng.choice(names, p=weights))
        index = _pick(regions[where], rng)
        if where == "periventricular":
            r = _small_lesion_radius(rng, 0.05, 1.0, 6.0)
            elongation = float(rng.uniform(1.3, 2.4))  # ovoid, long axis perpendicular to the ventricle
            radii = (r * elongation ** (2 / 3), r / elongation ** (1 / 3), r / elongation ** (1 / 3))
            blob = _blob(anatomy, index, radii, rng, roughness=0.12, axes=_radial_axes(anatomy, index))
        else:
            r = _small_lesion_radius(rng, 0.02, 0.9, 4.0)
            radii = (r * rng.uniform(0.8, 1.3), r, r * rng.uniform(0.8, 1.3))
            blob = _blob(anatomy, index, radii, rng, roughness=0.1)
        kind = "ms_black_hole_subtle" if rng.random() < 0.15 else (
            "ms_active_subtle" if rng.random() < 0.1 else "ms_lesion_subtle")
        lesions.add(kind, 1, blob * tissue, strength=float(rng.uniform(0.7, 1.0)))
        lesions.count += 1
        placed[where] += 1
    lesions.notes["regions"] = placed
    return lesions


def clinical_white_matter_hyperintensities(anatomy: Anatomy, rng: np.random.Generator) -> Lesions:
    """Patchy periventricular caps and bands (broken, not a closed rim) plus many punctate deep and subcortical
    foci that become confluent with severity (Fazekas-like 1-3)."""
    severity = int(rng.integers(1, 4))
    lesions = Lesions(notes={"style": "clinical", "severity": severity})
    c = anatomy.coords
    wm = np.clip(anatomy.wm, 0, 1)
    width = 0.8 + 1.6 * severity + 2.0 * smooth_noise(c.size, rng, 10.0, c.spacing)
    band = soft_inside(anatomy.ventricle_distance - width, c.spacing) * (anatomy.ventricle_distance > -0.5)
    patches = soft_inside(0.25 * (3 - severity) - smooth_noise(c.size, rng, 9.0, c.spacing), c.spacing * 0.3)
    caps = np.zeros(c.size, np.float32)
    for side in (-1.0, 1.0):
        for y_tip, z_tip in ((33.0, 10.0), (-30.0, 6.0)):  # frontal and occipital horns
            r = 2.5 + 2.5 * severity * float(rng.uniform(0.6, 1.3))
            caps = np.maximum(caps, _blob(anatomy, _nearest_index(anatomy, (side * 10.0, y_tip, z_tip)),
                                          (r * 0.8, r, r * 0.8), rng, roughness=0.35))
    lesions.add("wmh_subtle", 1, np.maximum(band * patches, caps) * wm, strength=float(rng.uniform(0.8, 1.0)))
    lesions.count = 4
    foci = (_deep_wm(anatomy, 6.0) | ((anatomy.wm > 0.8) & (anatomy.surface_distance > -9.0))) & (
        anatomy.ventricle_distance > 6.0)
    for _ in range(int(rng.integers(10, 18 * severity + 12))):
        index = _pick(foci, rng)
        r = _small_lesion_radius(rng, 0.02 * severity, 0.9, 3.0 + 2.5 * severity)
        blob = _blob(anatomy, index, (r, r, r * rng.uniform(0.8, 1.5)), rng, roughness=0.25)
        lesions.add("wmh_subtle", 1, blob * wm, strength=float(rng.uniform(0.65, 1.0)))
        lesions.count += 1
    return lesions


def _nearest_index(anatomy: Anatomy, point: tuple[float, float, float]) -> tuple[int, int, int]:
    """The voxel whose (deformed) template coordinates are closest to ``point``."""
    c = anatomy.coords
    d = (c.x - point[0]) ** 2 + (c.y - point[1]) ** 2 + (c.z - point[2]) ** 2
    x, y, z = np.unravel_index(int(np.argmin(d)), d.shape)
    return int(x), int(y), int(z)


def clinical_stroke(anatomy: Anatomy, rng: np.random.Generator, stage: str | None = None,
                    library: LesionLibrary | None = None) -> Lesions:
    """Acute: a real lesion shape from ``library`` when given, else a territorial infarct (45 %), an embolic shower
    in one territory (30 %) or a lacune (25 %), with the acute contrast of real scans. Chronic: the classic
    builder's tissue loss and gliotic rim."""
    stage = stage or ("acute" if rng.random() < 0.5 else "chronic")
    if stage == "chronic":
        chronic = stroke(anatomy, rng, stage="chronic")
        chronic.notes["style"] = "clinical"
        return chronic
    brain = np.clip(anatomy.gm + anatomy.wm, 0, 1)
    lesions = Lesions(count=1, notes={"style": "clinical", "stage": "acute"})
    strength = float(rng.uniform(0.75, 1.0))
    if library is not None and len(library):
        membership, source = library.sample(anatomy.coords, rng)
        lesions.add("stroke_acute_subtle", 1, membership * brain, strength=strength)
        lesions.notes.update(pattern="library", source=source)
        return lesions
    pattern = str(rng.choice(["territorial", "embolic", "lacunar"], p=[0.45, 0.30, 0.25]))
    lesions.notes["pattern"] = pattern
    if pattern == "territorial":
        territorial = stroke(anatomy, rng, stage="acute")
        lesions.notes["territory"] = territorial.notes["territory"]
        lesions.add("stroke_acute_subtle", 1, territorial.compartments[0].membership, strength=strength)
        return lesions
    if pattern == "lacunar":
        deep = ((anatomy.gm > 0.6) & (anatomy.surface_distance < -25.0)) | _deep_wm(anatomy, 18.0)
        r = _small_lesion_radius(rng, 0.4, 0.7, 9.0)
        lesions.add("stroke_acute_subtle", 1, _blob(anatomy, _pick(deep, rng), (r, r * 0.9, r * 1.3), rng,
                                                    roughness=0.2) * brain, strength=strength)
        return lesions
    territory = str(rng.choice(list(_TERRITORIES)))
    side = float(rng.choice([-1.0, 1.0]))
    (ax, ay, az), (vx, vy, vz) = _TERRITORIES[territory]
    c = anatomy.coords
    px, py, pz = c.x - side * ax, c.y - ay, c.z - az
    along = px * side * vx + py * vy + pz * vz
    region = (along > 10.0) & (np.sqrt(np.maximum(px**2 + py**2 + pz**2 - along**2, 0)) < 0.5 * along) & (brain > 0.6)
    count = int(rng.integers(2, 10))
    for _ in range(count):
        r = _small_lesion_radius(rng, 0.15, 1.0, 8.0)
        lesions.add("stroke_acute_subtle", 1, _blob(anatomy, _pick(region, rng), (r,) * 3, rng, roughness=0.25)
                    * brain, strength=strength)
    lesions.count = count
    lesions.notes["territory"] = territory
    return lesions
