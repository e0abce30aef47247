"""Multi-contrast brain phantoms with known lesion truth, deterministic by seed.

``generate_case`` builds one case (anatomy -> pathology -> one image per modality); ``write_case`` saves it as NIfTI
with a label and a JSON sidecar; ``generate_dataset`` writes many cases with a ``manifest.json`` and ``cases.csv``
(the CSV is directly usable by ``brainlesioncl segment --cases``). Dataset presets mimic the modality sets of the
public databases the published models were trained on.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..io.atomic import StagedOutputs
from ..io.image_io import stage_image
from ..modalities import resolve_disease, resolve_modality
from ..preprocessing.geometry import RAS_DIRECTION
from .anatomy import build_anatomy
from .clinical_lesions import clinical_multiple_sclerosis, clinical_stroke, clinical_white_matter_hyperintensities
from .contrast import MODALITIES, render
from .fields import Coordinates, smooth_noise
from .lesion_library import open_library
from .lesions import LESION_BUILDERS, Lesions
from .preview import save_preview

__all__ = ["PhantomConfig", "PhantomCase", "DATASET_PRESETS", "generate_case", "write_case", "generate_dataset"]

#: Modality sets of the public databases (MultiUnet/BrainCL), by the name used in the papers.
DATASET_PRESETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "BRATS": ("tumour", ("FLAIR", "T1", "T1c", "T2")),
    "ATLAS": ("stroke", ("T1",)),
    "MSSEG": ("MS", ("FLAIR", "T1", "T1c", "T2", "PD")),
    "ISLES": ("stroke", ("FLAIR", "T1", "T2", "DWI")),
    "WMH": ("WMH", ("FLAIR", "T1")),
    "TBI": ("TBI", ("FLAIR", "T1", "T2", "SWI")),
    "METS": ("metastasis", ("FLAIR", "T1", "T1c", "T2")),
}

_DEFAULT_MODALITIES = ("FLAIR", "T1", "T1c", "T2", "PD", "DWI", "SWI")

#: ``classic``: the original shapes and contrasts; ``clinical``: MS, WMH and stroke as on real scans.
LESION_STYLES = ("classic", "clinical")
CLINICAL_BUILDERS = {"MS": clinical_multiple_sclerosis, "WMH": clinical_white_matter_hyperintensities}


@dataclass(frozen=True)
class PhantomConfig:
    """What to generate.

    Args:
        disease: tumour, MS, stroke, WMH, metastasis, TBI, or ``none`` (healthy).
        modalities: which sequences to render (FLAIR, T1, T1c, T2, PD, DWI, SWI, ADC).
        size: grid size in voxels (RAS, isotropic ``spacing``); the brain is about 140 x 170 x 125 mm.
        spacing: voxel size in mm.
        seed: everything random derives from it; the same config gives the same case, bit for bit.
        stroke_stage: ``acute``, ``chronic`` or None (random) for stroke.
        noise: Rician noise level relative to white matter.
        bias: bias-field strength (log-amplitude).
        elastic_mm: amplitude of the random elastic deformation.
        skull: render a raw exam: skull, scalp and a noisy air background (``brain_mask`` is the true brain).
        misalign: ``(mm, degrees)``: every sequence after the first is moved by a random rigid motion of that size
            (the head moved between acquisitions); the exact motion is in ``info["misalignment"]``.
        slice_thickness: every sequence after the first is acquired with axial slices this thick (mm), as clinical
            2D sequences are; the first keeps the isotropic grid.
        lesion_style: ``classic`` (the shapes and contrasts every recorded benchmark used) or ``clinical``
            (MS, WMH and acute stroke as subtle and small as on real scans: :mod:`.clinical_lesions`).
        lesion_library: folder of real lesion masks in MNI152 space for the clinical style's acute strokes
            (:class:`.lesion_library.LesionLibrary`); without it the shapes are procedural.
    """

    disease: str = "tumour"
    modalities: tuple[str, ...] = _DEFAULT_MODALITIES
    size: tuple[int, int, int] = (160, 192, 144)
    spacing: float = 1.0
    seed: int = 0
    stroke_stage: str | None = None
    noise: float = 0.03
    bias: float = 0.15
    elastic_mm: float = 4.0
    skull: bool = False
    misalign: tuple[float, float] | None = None
    slice_thickness: float | None = None
    lesion_style: str = "classic"
    lesion_library: str | None = None

    def __post_init__(self) -> None:
        disease = "none" if self.disease == "none" else (
            "TBI" if str(self.disease).upper() == "TBI" else resolve_disease(self.disease).value
        )
        if disease not in LESION_BUILDERS and disease != "none":
            raise ValueError(f"no phantom for disease {self.disease!r}; use one of {[*LESION_BUILDERS, 'none']}")
        object.__setattr__(self, "disease", disease)
        object.__setattr__(self, "modalities", tuple(resolve_modality(m).value for m in self.modalities))
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown or not self.modalities:
            raise ValueError(f"cannot render {unknown or 'no modality'}; phantoms support {MODALITIES}")
        object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if self.lesion_style not in LESION_STYLES:
            raise ValueError(f"lesion_style must be one of {LESION_STYLES}, not {self.lesion_style!r}")
        if self.lesion_library is not None:  # checked now, not when the first acute stroke is drawn
            object.__setattr__(self, "lesion_library", str(open_library(str(self.lesion_library)).folder))
        if self.stroke_stage not in (None, "acute", "chronic"):
            raise ValueError(f"stroke_stage must be acute, chronic or None, not {self.stroke_stage!r}")


@dataclass
class PhantomCase:
    """A generated case. ``label`` is the binary lesion mask; ``classes`` has 1 core/necrosis, 2 oedema, 3 enhancing
    (1 for the whole lesion of MS, stroke and WMH); ``tissue`` has 1 CSF, 2 GM, 3 WM, 4 vessel."""

    config: PhantomConfig
    images: dict[str, sitk.Image]
    label: sitk.Image
    classes: sitk.Image
    tissue: sitk.Image
    info: dict = field(default_factory=dict)
    brain_mask: sitk.Image | None = None


def _grid_image(array: np.ndarray, spacing: float) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
    image.SetSpacing((spacing,) * 3)
    image.SetDirection(RAS_DIRECTION)
    size = array.shape
    # Centre the grid on physical (0, 0, 0); axis 0 runs to the right (decreasing LPS x).
    image.SetOrigin(((size[0] - 1) / 2 * spacing, (size[1] - 1) / 2 * spacing, -(size[2] - 1) / 2 * spacing))
    return image


def generate_case(config: PhantomConfig) -> PhantomCase:
    """Generate one phantom case (see :class:`PhantomConfig`)."""
    rng = np.random.default_rng(config.seed)
    coords = Coordinates(config.size, config.spacing)
    coords.deform(
        rng,
        scale=tuple(rng.uniform(0.9, 1.08, 3)),
        rotation_deg=tuple(rng.normal(0.0, 4.0, 3)),
        elastic_mm=config.elastic_mm,
    )
    anatomy = build_anatomy(coords, rng)
    lesions = _build_lesions(config, anatomy, rng)

    classes = np.zeros(config.size, np.uint8)
    for compartment in lesions.compartments:
        classes[compartment.membership > 0.5] = compartment.label_class
    classes[anatomy.intracranial < 0.5] = 0
    label = (classes > 0).astype(np.uint8)
    tissue = np.argmax(np.stack([0.5 * np.ones(config.size, np.float32) * (anatomy.intracranial < 0.5),
                                 anatomy.csf, anatomy.gm, anatomy.wm]), axis=0).astype(np.uint8)
    tissue[(anatomy.vessels > 0.75) & (tissue > 0)] = 4  # mostly-vessel voxels

    texture = smooth_noise(config.size, rng, 2.0 * config.spacing, config.spacing)
    head = _head_layers(anatomy, config.spacing) if config.skull else None
    images = {}
    motion: dict[str, dict] = {}
    thick_mask: sitk.Image | None = None  # the thick-slice series share one grid, so one mask
    for index, modality in enumerate(config.modalities):
        array = render(modality, anatomy, lesions, rng, texture=texture, noise=config.noise, bias=config.bias,
                       head=head)
        image = _grid_image(array, config.spacing)
        if index > 0 and config.slice_thickness:
            image = _thick_slices(image, config.slice_thickness)
            if head is None:  # skull stripping runs on the acquired series: its background is exactly 0 again
                if thick_mask is None:
                    thick_mask = _mask_on(image, anatomy.intracranial, config.spacing)
                image = sitk.Mask(image, thick_mask)
        if index > 0 and config.misalign:
            image, motion[modality] = _move(image, *config.misalign, rng)
        images[modality] = image
    voxel_ml = config.spacing**3 / 1000.0
    info = {
        "disease": config.disease,
        "modalities": list(config.modalities),
        "seed": config.seed,
        "lesion_volume_ml": round(float(label.sum()) * voxel_ml, 3),
        "lesion_count": int(lesions.count),
        "label_classes": {"1": "necrosis / non-enhancing core (whole lesion for MS, stroke, WMH)", "2": "oedema",
                          "3": "enhancing"},
        **{k: v for k, v in lesions.notes.items()},
    }
    if motion:
        info["misalignment"] = motion
    return PhantomCase(
        config=config,
        images=images,
        label=_grid_image(label, config.spacing),
        classes=_grid_image(classes, config.spacing),
        tissue=_grid_image(tissue, config.spacing),
        info=info,
        brain_mask=_grid_image((anatomy.intracranial >= 0.5).astype(np.uint8), config.spacing),
    )


def _build_lesions(config: PhantomConfig, anatomy, rng: np.random.Generator) -> Lesions:
    if config.disease == "none":
        return Lesions()
    clinical = config.lesion_style == "clinical"
    if config.disease == "stroke" and clinical:
        library = open_library(config.lesion_library) if config.lesion_library else None
        return clinical_stroke(anatomy, rng, stage=config.stroke_stage, library=library)
    if config.disease == "stroke":
        return LESION_BUILDERS["stroke"](anatomy, rng, stage=config.stroke_stage)
    if clinical and config.disease in CLINICAL_BUILDERS:
        return CLINICAL_BUILDERS[config.disease](anatomy, rng)
    return LESION_BUILDERS[config.disease](anatomy, rng)


def _head_layers(anatomy, spacing: float) -> np.ndarray:
    """0 inside the skull and in the air, 1 skull (the first ~6 mm outside the intracranial volume), 2 scalp (the
    next ~5 mm)."""
    from scipy import ndimage

    distance = ndimage.distance_transform_edt(anatomy.intracranial < 0.5) * spacing
    head = np.zeros(distance.shape, np.uint8)
    head[(distance > 0) & (distance <= 6.0)] = 1
    head[(distance > 6.0) & (distance <= 11.0)] = 2
    return head


def _thick_slices(image: sitk.Image, thickness: float) -> sitk.Image:
    """The same anatomy acquired with thick axial slices: each slice averages its slab (partial volume)."""
    spacing = image.GetSpacing()
    smoothed = sitk.SmoothingRecursiveGaussian(image, (1e-3, 1e-3, thickness / 2.355))
    size = list(image.GetSize())
    size[2] = max(2, int(round(size[2] * spacing[2] / thickness)))
    grid = sitk.Image(size, sitk.sitkFloat32)
    new_spacing = np.array([spacing[0], spacing[1], thickness])
    grid.SetSpacing(tuple(new_spacing))
    grid.SetDirection(image.GetDirection())
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()]))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    grid.SetOrigin(tuple(centre - direction @ ((np.array(size) - 1) / 2 * new_spacing)))
    return sitk.Resample(smoothed, grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)


def _mask_on(image: sitk.Image, intracranial: np.ndarray, spacing: float) -> sitk.Image:
    """The intracranial volume carried onto ``image``'s grid: what skull stripping that series keeps."""
    inside = sitk.Resample(_grid_image(intracranial.astype(np.float32), spacing), image, sitk.Transform(),
                           sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.Cast(inside >= 0.5, sitk.sitkUInt8)


def _move(image: sitk.Image, mm: float, degrees: float, rng: np.random.Generator) -> tuple[sitk.Image, dict]:
    """The head moved by a rigid motion of about ``mm`` and ``degrees``: the voxels stay, the grid moves in space.

    Returns the moved image and the motion as the 4x4 matrix that maps a physical point of the reference space to
    where the same anatomy now lies (LPS, mm)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.deg2rad(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    rotation = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    direction_of_translation = rng.normal(size=3)
    translation = mm * direction_of_translation / np.linalg.norm(direction_of_translation)
    centre = np.array(image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()]))
    moved = sitk.Image(image)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    moved.SetDirection(tuple((rotation @ direction).flatten()))
    origin = np.array(image.GetOrigin())
    moved.SetOrigin(tuple(rotation @ (origin - centre) + centre + translation))
    matrix = np.eye(4)
    matrix[:3, :3] = rotation
    matrix[:3, 3] = centre + translation - rotation @ centre
    return moved, {"translation_mm": float(mm), "rotation_deg": float(degrees), "matrix": matrix.tolist()}


def write_case(case: PhantomCase, folder: str | os.PathLike) -> Path:
    """Write ``<folder>/<modality>.nii.gz``, ``label.nii.gz``, ``classes.nii.gz`` and ``case.json``, verified and
    all-or-nothing (a full disk leaves no half case behind)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = {**{f"{m}.nii.gz": image for m, image in case.images.items()},
              "label.nii.gz": case.label, "classes.nii.gz": case.classes}
    text = json.dumps({**case.info, "config": asdict(case.config)}, indent=2) + "\n"
    with StagedOutputs() as outputs:
        for file_name, image in images.items():
            stage_image(outputs, image, folder / file_name, overwrite=True)
        outputs.add(folder / "case.json", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return folder


def generate_dataset(
    out_dir: str | os.PathLike,
    *,
    count: int,
    disease: str | None = None,
    modalities: Sequence[str] | None = None,
    preset: str | None = None,
    seed: int = 0,
    size: Sequence[int] = (160, 192, 144),
    spacing: float = 1.0,
    prefix: str | None = None,
    preview: bool = False,
    progress=None,
    lesion_style: str = "classic",
    lesion_library: str | os.PathLike | None = None,
    stroke_stage: str | None = None,
) -> list[Path]:
    """Write ``count`` cases (seeds ``seed .. seed+count-1``) plus ``manifest.json`` and ``cases.csv``;
    with ``preview``, also each case's ``preview.png``."""
    if preset is not None:
        key = preset.upper()
        if key not in DATASET_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; use one of {list(DATASET_PRESETS)}")
        preset_disease, preset_modalities = DATASET_PRESETS[key]
        disease = disease or preset_disease
        modalities = modalities or preset_modalities
    disease = disease or "tumour"
    modalities = tuple(modalities or _DEFAULT_MODALITIES)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prefix = prefix or (preset.upper() if preset else str(disease))
    folders, records = [], []
    for i in range(count):
        config = PhantomConfig(disease=disease, modalities=modalities, size=(size[0], size[1], size[2]),
                               spacing=spacing, seed=seed + i, lesion_style=lesion_style,
                               lesion_library=None if lesion_library is None else str(lesion_library),
                               stroke_stage=stroke_stage)
        case = generate_case(config)
        folder = write_case(case, out / f"{prefix}_{seed + i:04d}")
        if preview:
            save_preview(case.images, folder / "preview.png", label=case.label, title=folder.name)
        folders.append(folder)
        records.append({"case": folder.name, **case.info})
        if progress is not None:
            progress((i + 1) / count, f"generated {folder.name}")
    (out / "manifest.json").write_text(json.dumps(records, indent=2) + "\n")
    with open(out / "cases.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case", *modalities, "label", "disease"])
        for folder, record in zip(folders, records, strict=True):
            writer.writerow([folder.name, *[f"{folder.name}/{m}.nii.gz" for m in modalities],
                             f"{folder.name}/label.nii.gz", record["disease"]])
    return folders
