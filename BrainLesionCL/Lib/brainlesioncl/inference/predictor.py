"""Running a network over a prepared volume: device choice, context vector, single pass or sliding window.

Two protocols:

* ``reference``: what the BrainCL evaluation does. MONAI sliding window, ROI 128^3, overlap 0.5, sw_batch 8,
  constant blending, fp32, over the whole working grid (no foreground crop).
* ``fast`` (default): the caller crops to the brain box (see :class:`~brainlesioncl.preprocessing.PreprocessConfig`),
  and the whole box goes through the network in **one pass** when it fits the memory budget: no overlapping windows
  computed twice, no window seams, and InstanceNorm statistics taken over the whole brain. Larger boxes fall back to a
  sliding window with big windows and Gaussian blending. Experts run fused (one conv per MoE layer). Precision
  ``auto`` runs float16 autocast on CUDA (as the published evaluation did with AMP) and bfloat16 autocast on CPUs with
  native bfloat16 matrix units (Intel AMX), fp32 elsewhere; ``fp32`` forces full precision.

The device code path is the same on CPU and CUDA; only the device and autocast differ.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np
import torch
from torch import nn

from ..errors import CancelledError, SettingsError
from ..modalities import Disease, disease_context
from ..models.blocks import NETWORK_STRIDE

__all__ = [
    "InferenceMode",
    "InferenceConfig",
    "ProgressCallback",
    "CancelCheck",
    "select_device",
    "build_context",
    "Predictor",
    "MirroredViews",
]

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, str], None]
CancelCheck = Callable[[], bool]


@dataclass(frozen=True)
class MirroredViews:
    """What :meth:`Predictor.predict_mirrored` returns: the plain prediction (``identity``), the mean over the mirrored
    views (test-time augmentation) and the predictive entropy of that mean (the uncertainty map)."""

    identity: np.ndarray
    mean: np.ndarray
    entropy: np.ndarray


class InferenceMode(str, Enum):
    FAST = "fast"
    REFERENCE = "reference"


@dataclass(frozen=True)
class InferenceConfig:
    """Inference settings.

    Args:
        mode: ``fast`` or ``reference`` (see the module docstring).
        roi_size: sliding-window ROI edge (voxels) of the reference protocol.
        overlap: sliding-window overlap of the reference protocol.
        sw_batch_size: windows per forward pass in the reference protocol.
        max_single_pass_voxels: the fast path runs the whole box at once up to this many voxels.
        fast_roi_size: window edge when the fast path must fall back to a sliding window.
        threshold: lesion probability at or above which a voxel is labelled lesion.
        min_lesion_mm3: connected lesions smaller than this are removed from the label (0: keep everything).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see the module docstring). The reference protocol is
            always fp32.
    """

    mode: InferenceMode | str = InferenceMode.FAST
    roi_size: int = 128
    overlap: float = 0.5
    sw_batch_size: int = 8
    max_single_pass_voxels: int = 9_000_000
    fast_roi_size: int = 160
    threshold: float = 0.5
    precision: str = "auto"
    min_lesion_mm3: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", InferenceMode(self.mode))
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, not {self.precision!r}")
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must be in [0, 1), got {self.overlap}")
        if self.roi_size % NETWORK_STRIDE or self.fast_roi_size % NETWORK_STRIDE:
            raise ValueError(f"ROI sizes must be multiples of {NETWORK_STRIDE}")
        if self.min_lesion_mm3 < 0:
            raise ValueError(f"min_lesion_mm3 must be >= 0, got {self.min_lesion_mm3}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mode"] = InferenceMode(self.mode).value
        return d


def _padded(spatial: Sequence[int]) -> tuple[int, ...]:
    """Each size rounded up to the next multiple of 16 (four poolings by two)."""
    return tuple(-(-int(s) // NETWORK_STRIDE) * NETWORK_STRIDE for s in spatial)


def select_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU. Asking for CUDA where there is none is an error, not a fallback."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise SettingsError(
            f"--device {device!r} is not a device BrainLesionCL can use; give auto (CUDA when present), cpu, cuda or "
            "cuda:N."
        ) from err
    if resolved.type not in ("cpu", "cuda"):
        raise SettingsError(f"--device {device!r}: BrainLesionCL runs on cpu or cuda[:N]; use auto to pick.")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(
            "CUDA was requested but PyTorch sees no CUDA device (a CPU-only PyTorch build, or no NVIDIA driver). "
            "Use --device cpu (or auto), or install a CUDA build of PyTorch."
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise SettingsError(
            f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s), numbered from 0."
        )
    return resolved


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 matrix units (Intel AMX), where bf16 convolutions are about twice as fast."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "amx_bf16" in flags and bool(torch.backends.mkldnn.is_available())


def autocast_dtype(precision: str, device: torch.device, mode: InferenceMode) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device, or None for fp32."""
    if mode is InferenceMode.REFERENCE or precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_native_bf16() else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def build_context(
    present: Sequence[bool], disease: Disease | str, disease_slots: Sequence[str], *,
    disease_vector: Sequence[float] | None = None,
) -> torch.Tensor:
    """The MoE gate input: modality-present flags in channel order, then the disease vector. Shape (1, C + S).

    ``disease_vector`` (one number per slot) replaces the tag's one-hot, e.g. the router's mix for ``auto``."""
    flags = [1.0 if p else 0.0 for p in present]
    if disease_vector is not None:
        if len(disease_vector) != len(disease_slots):
            raise ValueError(f"disease_vector has {len(disease_vector)} numbers for {len(disease_slots)} slots")
        disease_part = [float(v) for v in disease_vector]
    else:
        disease_part = disease_context(disease, disease_slots) if disease_slots else []
    return torch.tensor([flags + disease_part], dtype=torch.float32)


class _Windows:
    """Counts forward calls for progress and checks for cancellation between windows."""

    def __init__(
        self, network: nn.Module, total: int, progress: ProgressCallback | None, cancel: CancelCheck | None
    ) -> None:
        self.network, self.total, self.progress, self.cancel = network, max(total, 1), progress, cancel
        self.done = 0
        self.started = time.perf_counter()

    def __call__(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if self.cancel is not None and self.cancel():
            raise CancelledError("Segmentation cancelled; nothing was written.")
        out = self.network(x, context)
        self.done += 1
        if self.progress is not None:
            fraction = min(self.done / self.total, 1.0)
            elapsed = time.perf_counter() - self.started
            eta = elapsed / fraction * (1 - fraction) if fraction > 0 else float("nan")
            self.progress(fraction, f"inference {self.done}/{self.total} (ETA {eta:.0f} s)")
        return out


def _num_windows(shape: Sequence[int], roi: int, overlap: float) -> int:
    interval = max(int(roi * (1 - overlap)), 1)
    count = 1
    for size in shape:
        count *= 1 if size <= roi else math.ceil((size - roi) / interval) + 1
    return count


class Predictor:
    """Turns a prepared (C, X, Y, Z) array into a lesion-probability array of the same spatial shape.

    Args:
        network: any module called as ``network(x, context)`` returning logits (B, K, X, Y, Z).
        activation: ``softmax`` (K >= 2 classes) or ``sigmoid``.
        lesion_channel: which output channel is the lesion; ``None`` gives every class's probability (softmax).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``...
        config: :class:`InferenceConfig`.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        activation: str = "softmax",
        lesion_channel: int | None = 1,
        device: str | torch.device | None = "auto",
        config: InferenceConfig | None = None,
    ) -> None:
        if activation not in ("softmax", "sigmoid"):
            raise ValueError(f"activation must be 'softmax' or 'sigmoid', not {activation!r}")
        self.config = config or InferenceConfig()
        self.device = select_device(device)
        self.network = network.to(self.device).eval()
        self.activation = activation
        self.lesion_channel = lesion_channel

    def _probability(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.lesion_channel is None:
            return torch.softmax(logits, dim=1) if self.activation == "softmax" else torch.sigmoid(logits)
        if self.activation == "softmax" and logits.shape[1] == 2:
            # Two-class softmax = sigmoid of the logit difference: same values, half the work.
            other = 1 - self.lesion_channel
            return torch.sigmoid(logits[:, self.lesion_channel] - logits[:, other])
        if self.activation == "softmax":
            return torch.softmax(logits, dim=1)[:, self.lesion_channel]
        return torch.sigmoid(logits[:, self.lesion_channel])

    @torch.inference_mode()
    def predict(
        self,
        array: np.ndarray,
        context: torch.Tensor,
        *,
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> np.ndarray:
        """Lesion probability (X, Y, Z), float32 in [0, 1]; every class's, (K, X, Y, Z), when ``lesion_channel`` is
        None."""
        if array.ndim != 4:
            raise ValueError(f"expected a (C, X, Y, Z) array, got shape {array.shape}")
        cfg = self.config
        x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None].to(self.device)
        ctx = context.to(self.device)
        spatial = x.shape[2:]
        mode = InferenceMode(cfg.mode)  # already one after __post_init__; this tells the type checker
        dtype = autocast_dtype(cfg.precision, self.device, mode)
        with torch.autocast(device_type=self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            if mode is InferenceMode.REFERENCE:
                logits = self._sliding(
                    x, ctx, cfg.roi_size, cfg.overlap, cfg.sw_batch_size, "constant", progress, cancel
                )
            elif math.prod(_padded(spatial)) <= cfg.max_single_pass_voxels:
                # Zero-pad to the network's multiple of 16 (zero = the z-scored background), run once, crop back.
                padded = _padded(spatial)
                pad = [p for s, t in zip(reversed(spatial), reversed(padded), strict=True) for p in (0, t - s)]
                runner = _Windows(self.network, 1, progress, cancel)
                logits = runner(torch.nn.functional.pad(x, pad), ctx)
                logits = logits[:, :, : spatial[0], : spatial[1], : spatial[2]]
            else:
                logger.info(
                    "box %s exceeds the single-pass budget; using %d^3 windows", tuple(spatial), cfg.fast_roi_size
                )
                logits = self._sliding(x, ctx, cfg.fast_roi_size, 0.25, 1, "gaussian", progress, cancel)
        return self._probability(logits)[0].cpu().numpy().astype(np.float32, copy=False)

    def predict_mirrored(
        self,
        array: np.ndarray,
        context: torch.Tensor,
        *,
        flips: Sequence[tuple[int, ...]] = ((), (0,), (1,), (2,)),
        progress: ProgressCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> MirroredViews:
        """Predict the input and its mirror images (test-time flips): each view's lesion probability mapped back, their
        mean, and the predictive entropy of the mean (bits, 0 = certain, 1 = a coin toss); all (X, Y, Z) float32.

        Why flips: the brain is nearly left-right symmetric and the network was trained with flips, so a flipped input
        is as valid as the original; where the predictions of the flipped copies disagree, or all hover near 0.5, the
        model is unsure. Each flip costs one more network pass (default: the identity and three flips). The identity
        view is kept apart so an uncertainty map can explain the plain segmentation without changing it.
        """
        if not flips or tuple(flips[0]) != ():
            raise ValueError("the first view must be the identity (flips[0] == ())")
        samples = []
        for index, axes in enumerate(flips):
            def step(fraction: float, stage: str, index=index) -> None:
                if progress is not None:
                    progress((index + fraction) / len(flips), f"{stage} (view {index + 1}/{len(flips)})")

            dims = [a + 1 for a in axes]  # (C, X, Y, Z): spatial axes are 1..3
            flipped = np.flip(array, axis=dims) if dims else array
            probability = self.predict(np.ascontiguousarray(flipped), context, progress=step, cancel=cancel)
            samples.append(np.flip(probability, axis=list(axes)) if axes else probability)
        mean = np.mean(samples, axis=0).astype(np.float32)
        clipped = np.clip(mean, 1e-6, 1 - 1e-6)
        entropy = -(clipped * np.log2(clipped) + (1 - clipped) * np.log2(1 - clipped))
        return MirroredViews(identity=samples[0], mean=mean, entropy=entropy.astype(np.float32))

    def _sliding(
        self,
        x: torch.Tensor,
        ctx: torch.Tensor,
        roi: int,
        overlap: float,
        batch: int,
        blend: str,
        progress: ProgressCallback | None,
        cancel: CancelCheck | None,
    ) -> torch.Tensor:
        from monai.inferers import sliding_window_inference  # here: importing MONAI costs seconds a single pass skips

        total = math.ceil(_num_windows(x.shape[2:], roi, overlap) / batch)
        runner = _Windows(self.network, total, progress, cancel)
        logits = sliding_window_inference(
            x, (roi,) * 3, batch, runner, overlap=overlap, mode=blend, context=ctx
        )
        assert isinstance(logits, torch.Tensor)  # one tensor in, one out (MONAI also allows tuples and dicts)
        return logits
