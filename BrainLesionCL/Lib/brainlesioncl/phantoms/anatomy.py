"""Procedural brain anatomy: tissue fractions of CSF, grey matter and white matter, plus vessels.

The template is built from implicit surfaces evaluated at (deformed) physical coordinates:

* brain: an ellipsoid with a noisy surface, inside an intracranial volume with a 2-4 mm rim of outer CSF;
* cortex: a 2.5-3.5 mm grey-matter shell, folded by **sulci**, which are the zero-crossing sheets of a smooth random
  field (CSF inside, grey matter lining them), and an interhemispheric fissure;
* deep grey matter: thalami and lentiform/caudate nuclei; a GM-rich cerebellum with fine folia;
* ventricles: curved lateral ventricles (size varies: atrophy) and a thin third ventricle;
* vessels: tubes where two random sheets cross near the surface, and the superior sagittal sinus.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fields import Coordinates, ellipsoid_distance, smooth_noise, soft_inside

__all__ = ["Anatomy", "build_anatomy"]


@dataclass
class Anatomy:
    """Tissue fractions on the grid (each in [0, 1]; csf + gm + wm = intracranial membership)."""

    csf: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    vessels: np.ndarray  # arterial/venous tubes (enhance on T1c, dark on SWI)
    intracranial: np.ndarray
    surface_distance: np.ndarray  # signed distance to the brain surface, mm (negative inside)
    ventricle_distance: np.ndarray  # signed distance to the lateral ventricles, mm
    coords: Coordinates
    brain_radii: tuple[float, float, float]


def build_anatomy(coords: Coordinates, rng: np.random.Generator) -> Anatomy:
    x, y, z = coords.x, coords.y, coords.z
    h = coords.spacing
    size = coords.size
    radii = (68.0, 84.0, 60.0)

    # Brain surface: noisy ellipsoid, slightly flattened at the base.
    surface_noise = 2.5 * smooth_noise(size, rng, 25.0, h)
    d_brain = ellipsoid_distance(x, y, z, (0.0, 0.0, 0.0), radii) + surface_noise
    d_brain = np.where(z < -35, d_brain + 0.25 * (-35 - z), d_brain)
    brain = soft_inside(d_brain, h)
    outer_csf_width = float(rng.uniform(2.0, 4.0))
    intracranial = soft_inside(d_brain - outer_csf_width, h)

    # Sulci: thin sheets where a smooth field crosses zero, deeper than the cortex; grey matter lines them.
    sulcal_field = smooth_noise(size, rng, 9.0, h)
    sheet = np.abs(sulcal_field)
    depth = 12.0 + 6.0 * smooth_noise(size, rng, 30.0, h)
    near_surface = soft_inside(-(d_brain + depth), h * 3)  # 1 within `depth` mm of the surface
    sulcal_csf = near_surface * soft_inside((sheet - 0.06) * 20.0, h)
    sulcal_gm = near_surface * soft_inside((sheet - 0.30) * 12.0, h)
    thickness = 3.0 + 0.5 * smooth_noise(size, rng, 20.0, h)
    cortex = soft_inside(-(d_brain + thickness), h)

    # Interhemispheric fissure (upper brain) lined by cortex.
    fissure_depth = np.clip(z + 15.0, 0, None) * 0.8
    upper = soft_inside(-(d_brain + fissure_depth), h * 2)
    fissure_csf = upper * soft_inside(np.abs(x) - 1.2, h)
    fissure_gm = upper * soft_inside(np.abs(x) - 4.0, h)

    # Deep grey matter.
    deep = np.zeros(size, np.float32)
    for side in (-1.0, 1.0):
        deep = np.maximum(deep, soft_inside(ellipsoid_distance(x, y, z, (side * 11, -10, 4), (8, 13, 9)), h))
        deep = np.maximum(deep, soft_inside(ellipsoid_distance(x, y, z, (side * 23, 4, 2), (6, 15, 10)), h))
        deep = np.maximum(deep, soft_inside(ellipsoid_distance(x, y, z, (side * 13, 16, 12), (4, 10, 6)), h))

    # Cerebellum: GM-rich with fine folia.
    d_cerebellum = ellipsoid_distance(x, y, z, (0, -52, -38), (48, 24, 18))
    cerebellum = soft_inside(d_cerebellum, h) * brain
    folia = soft_inside((np.abs(smooth_noise(size, rng, 4.0, h)) - 0.5) * 6.0, h)

    # Lateral ventricles: bananas bending down posteriorly; size varies (atrophy).
    ventricle_scale = float(rng.uniform(0.8, 1.5))
    d_vent = np.full(size, 1e3, np.float32)
    for side in (-1.0, 1.0):
        zc = 14.0 - 0.010 * y**2
        xc = side * (8.0 + 0.03 * np.clip(-y, 0, None))
        d = ellipsoid_distance(x - xc, y, z - zc, (0, 0, 0), (5.5 * ventricle_scale, 32, 6.5 * ventricle_scale))
        d_vent = np.minimum(d_vent, d)
    d_third = ellipsoid_distance(x, y, z, (0, -4, 2), (1.5 * ventricle_scale, 11, 7))
    ventricles = np.maximum(soft_inside(d_vent, h), soft_inside(d_third, h))

    csf_in = np.maximum.reduce([ventricles, sulcal_csf * (1 - cerebellum), fissure_csf]) * brain
    cerebellar_gm = cerebellum * (0.9 * folia + 0.1)
    gm = np.maximum.reduce([cortex, sulcal_gm * (1 - cerebellum), fissure_gm, deep, cerebellar_gm])
    gm = np.clip(gm, 0, 1) * brain * (1 - csf_in)
    wm = np.clip(brain - csf_in - gm, 0, 1)
    csf = np.clip(intracranial - brain, 0, 1) + csf_in

    # Vessels: lines where two sheets cross near the surface, plus the superior sagittal sinus.
    v1, v2 = smooth_noise(size, rng, 14.0, h), smooth_noise(size, rng, 14.0, h)
    tubes = soft_inside((np.abs(v1) + np.abs(v2) - 0.10) * 15.0, h) * soft_inside(-(d_brain + 10.0), h * 2)
    sinus = soft_inside(np.sqrt(x**2 + (d_brain - outer_csf_width / 2) ** 2) - 2.5, h) * (z > 0)
    vessels = np.clip(np.maximum(tubes, sinus) * intracranial, 0, 1).astype(np.float32)

    return Anatomy(
        csf=csf.astype(np.float32),
        gm=gm.astype(np.float32),
        wm=wm.astype(np.float32),
        vessels=vessels,
        intracranial=intracranial,
        surface_distance=d_brain.astype(np.float32),
        ventricle_distance=d_vent.astype(np.float32),
        coords=coords,
        brain_radii=radii,
    )
