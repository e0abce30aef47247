"""Where BrainLesionCL keeps a small hand-written version of a MONAI transform, it must give MONAI's answer.

Kept ours (each says why in its docstring): the non-zero z-score (one float64 pass, no tensor round trip), the
foreground box with a margin (clipped to the volume, as the resampled grid needs) and the pad to a multiple of 16
(amounts, not a padded copy: the inverse mapping back to the patient grid needs them). These tests pin each to
MONAI's ``NormalizeIntensity(nonzero=True)``, ``generate_spatial_bounding_box`` and ``DivisiblePad``; and the networks'
conv block (kept ours so that segmenting does not import all of MONAI) to MONAI's ``Convolution``; the metastasis
pipeline's patch grid (start corners, which the stitching needs as numbers) to MONAI's ``dense_patch_slices``.
"""

from __future__ import annotations

import numpy as np
import pytest

monai_transforms = pytest.importorskip("monai.transforms")

from brainlesioncl.preprocessing.intensity import zscore_nonzero  # noqa: E402
from brainlesioncl.preprocessing.pipeline import PreprocessConfig, _foreground_box, _pad_amounts  # noqa: E402


def _brain(seed: int, shape=(30, 34, 26)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    lo = rng.integers(2, 8, 3)
    hi = np.array(shape) - rng.integers(2, 8, 3)
    image[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = rng.gamma(4.0, 60.0, size=tuple(hi - lo)).astype(np.float32)
    return image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zscore_nonzero_is_monais_nonzero_normalisation(seed: int) -> None:
    image = _brain(seed)
    theirs = monai_transforms.NormalizeIntensity(nonzero=True)(image[None])[0]
    np.testing.assert_allclose(zscore_nonzero(image), np.asarray(theirs), rtol=1e-4, atol=1e-5)
    assert np.all(zscore_nonzero(image)[image == 0] == 0)


@pytest.mark.parametrize("margin", [0, 3, 9])
def test_foreground_box_is_monais_bounding_box_with_margin(margin: int) -> None:
    from monai.transforms.utils import generate_spatial_bounding_box

    image = _brain(5)
    start, stop = _foreground_box(image > 0, PreprocessConfig(margin=margin))
    # allow_smaller=True: MONAI clips the margined box to the volume, as ours does (the resampled grid has no more)
    theirs_start, theirs_stop = generate_spatial_bounding_box(image[None], margin=margin, allow_smaller=True)
    assert start == [int(v) for v in theirs_start] and stop == [int(v) for v in theirs_stop]


@pytest.mark.parametrize("length", [17, 32, 33, 47, 48, 63, 100])
def test_pad_amounts_are_monais_divisible_pad(length: int) -> None:
    array = np.ones((1, length, 16, 16), np.float32)
    padded = np.asarray(monai_transforms.DivisiblePad(k=16)(array))[0]
    before, after = _pad_amounts(length, 16, 0)
    assert padded.shape[0] == length + before + after
    assert np.all(padded[before:before + length] == 1)
    assert not padded[:before].any() and not padded[before + length:].any()


@pytest.mark.parametrize(("strides", "conv_only"), [(1, False), (2, False), (1, True)])
def test_conv_block_is_monais_convolution(strides: int, conv_only: bool) -> None:
    import torch
    from monai.networks.blocks import Convolution

    from brainlesioncl.models.blocks import conv_block

    torch.manual_seed(strides)
    theirs = Convolution(spatial_dims=3, in_channels=3, out_channels=5, strides=strides, kernel_size=3, act="PRELU",
                         norm="INSTANCE", dropout=0.2, adn_ordering="NDA", conv_only=conv_only).eval()
    ours = conv_block(3, 5, strides=strides, conv_only=conv_only).eval()
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 12, 8)
    torch.testing.assert_close(ours(x), theirs(x))
    def leaves(module):
        return [(name, m) for name, m in module.named_modules() if not list(m.children())]

    # Same layers (incl. the parameter-free norm and dropout) in the same order; ours may be a subclass (the dropout
    # draws its mask more cheaply on the CPU, same distribution: models.blocks.dropout).
    assert [name for name, _ in leaves(ours)] == [name for name, _ in leaves(theirs)]
    assert all(isinstance(mine, type(their)) for (_, mine), (_, their) in zip(leaves(ours), leaves(theirs),
                                                                                 strict=True))


@pytest.mark.parametrize("shape", [(100, 70, 64), (64, 64, 64), (129, 96, 200), (65, 130, 97)])
@pytest.mark.parametrize("overlap", [0.5, 0.25])
def test_patch_grid_is_monais_dense_patch_slices(shape, overlap: float) -> None:
    from monai.data.utils import dense_patch_slices

    from brainlesioncl.metastasis.patches import patch_starts

    size = 64
    interval = [int(round(size * (1 - overlap)))] * 3
    theirs = {tuple(int(s.start) for s in patch) for patch in dense_patch_slices(shape, (size,) * 3, interval)}
    assert set(patch_starts(shape, size, overlap)) == theirs
