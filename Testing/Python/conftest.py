"""Shared fixtures: tiny models, registries, synthetic cases, and the optional ../shared folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from synthetic import make_grid, two_object_image
from torch import nn

from brainlesioncl.modalities import BRAINCL_CHANNEL_ORDER, BRAINCL_DISEASE_SLOTS
from brainlesioncl.models import ModelKind, MoEUNet, MoEUNetConfig
from brainlesioncl.registry import ModelMetadata, ModelRegistry

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
TINY_CHANNELS = (8, 8, 16, 16, 32)


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with the reason when it is absent (a user's fresh clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available (../shared is only beside the project on the development machines)")
    return path


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def tiny_config() -> MoEUNetConfig:
    return MoEUNetConfig(channels=TINY_CHANNELS)


def tiny_metadata(name: str = "tiny") -> ModelMetadata:
    return ModelMetadata(
        name=name,
        kind=ModelKind.MOE_UNET,
        channels=[m.value for m in BRAINCL_CHANNEL_ORDER],
        disease_slots=[d.value for d in BRAINCL_DISEASE_SLOTS],
        architecture={"network": MoEUNetConfig(channels=TINY_CHANNELS).to_dict()},
        description="tiny random model for tests",
    )


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    """An empty registry with no shipped models (so tests do not depend on the package's default model)."""
    return ModelRegistry(tmp_path / "registry", builtin_dirs=[])


@pytest.fixture
def tiny_version(registry: ModelRegistry) -> str:
    network = MoEUNet(MoEUNetConfig(channels=TINY_CHANNELS))
    version = registry.add(tiny_metadata(), {"network": network.state_dict()})
    registry.activate(version)
    return version


class ThresholdNet(nn.Module):
    """A 'network' that labels the brightest object of one channel: a known, geometry-only predictor.

    Lesion logit = 40 * (x_c / max(x_c) - 0.5), so the boundary sits at half the maximum intensity, which after
    partial-volume rasterisation and linear resampling is where the object's surface physically is.
    """

    def __init__(self, channel: int) -> None:
        super().__init__()
        self.channel = channel
        self.calls = 0

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        c = x[:, self.channel : self.channel + 1]
        peak = c.amax(dim=(2, 3, 4), keepdim=True).clamp_min(1e-6)
        lesion = 40.0 * (c / peak - 0.5)
        return torch.cat([torch.zeros_like(lesion), lesion], dim=1)


def sphere_case(grid: sitk.Image, centre=(0.0, 0.0, 0.0), radius: float = 12.0, brain=(40.0, 45.0, 35.0)):
    """Brain ellipsoid + bright sphere, both centred near the physical origin."""
    return two_object_image(
        grid, brain_centre=(0.0, 0.0, 0.0), brain_radii=brain, lesion_centre=centre, lesion_radius=radius
    )


@pytest.fixture
def flair_t1_files(tmp_path: Path) -> dict[str, Path]:
    """Two small co-registered volumes on different grids, written as NIfTI."""
    flair_grid = make_grid((48, 52, 20), (2.0, 2.0, 4.0), origin=(-47.0, -51.0, -38.0))
    t1_grid = make_grid((40, 44, 36), (2.4, 2.4, 2.2), origin=(-47.0, -51.0, -38.0))
    paths = {}
    for name, grid in (("flair", flair_grid), ("t1", t1_grid)):
        path = tmp_path / f"{name}.nii.gz"
        sitk.WriteImage(sphere_case(grid, centre=(5.0, -4.0, 3.0), radius=10.0), str(path))
        paths[name] = path
    return paths


# -- headless Slicer (slicer-core wheel) ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def slicer_core():
    """Slicer's real MRML core without the application: scene, logics and the slicer.modules entries the module uses.

    Skipped with the reason when the slicer-core wheel is not installed (pip install -e ".[slicer-test]").
    """
    import sys

    pytest.importorskip("slicer", reason="slicer-core is not installed: pip install -e '.[slicer-test]'")
    module_dir = str(REPO / "BrainLesionCL")
    if module_dir not in sys.path:
        sys.path.insert(0, module_dir)
    from BrainLesionCLLib.headless import headless_core

    return headless_core()


@pytest.fixture
def mrml_scene(slicer_core):
    """A cleared scene per test (Slicer's 'Close scene')."""
    slicer_core.scene.Clear(0)
    yield slicer_core.scene
    slicer_core.scene.Clear(0)


@pytest.fixture
def two_contrast_classifier(monkeypatch) -> dict:
    """Install a FLAIR-vs-T1 image classifier made from two clean phantoms, so a test of the image evidence's
    plumbing does not depend on the shipped classifier; returns a third phantom's ``{"FLAIR": ..., "T1": ...}``."""
    from brainlesioncl.identification import image as image_module
    from brainlesioncl.phantoms import PhantomConfig, generate_case

    cases = [dict(generate_case(PhantomConfig(disease="none", modalities=("FLAIR", "T1"), size=(88, 104, 80),
                                              spacing=1.8, seed=seed, noise=0.01, bias=0.0)).images)
             for seed in (11, 12, 13)]
    features = np.stack([image_module.image_features(case[m]) for case in cases[:2] for m in ("FLAIR", "T1")])
    model = image_module.train_classifier(features, ["FLAIR", "T1"] * 2)
    monkeypatch.setattr(image_module, "_load", lambda: model)
    return cases[2]
