"""What an identification says: the contrast (or none), how sure, from which evidence, and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..modalities import Modality

__all__ = ["Identification", "ImageScores"]


@dataclass(frozen=True)
class ImageScores:
    """What the image classifier saw in one volume, answered or not: every contrast's probability and the
    tissue-order features. Kept so an exam's volumes can be read together (:mod:`.exam`): one image alone often
    cannot tell T1 from T1c, two images of one exam side by side can."""

    probabilities: Mapping[str, float]
    features: Mapping[str, float]

    def probability(self, *contrasts: str) -> float:
        """The probability that the volume is any one of ``contrasts``."""
        return float(sum(self.probabilities.get(name, 0.0) for name in contrasts))


@dataclass(frozen=True)
class Identification:
    """One answer to "which contrast is this series?".

    Attributes:
        modality: the contrast, or None (unknown, ambiguous, or refused).
        confidence: 0..1; auto-mapping fills a channel only above its threshold.
        evidence: ``"dicom"``, ``"name"``, ``"image"`` or ``"hand"`` (the user's own choice).
        reason: a sentence for the user (shown next to the channel selector and by ``brainlesioncl identify``).
        refused: True when the series must never be mapped (a localizer, perfusion, a derived map, T2*...).
        notes: disagreements between kinds of evidence, for the user to check.
        image_scores: the image classifier's view when the image was read (see :class:`ImageScores`), else None.
    """

    modality: Modality | None
    confidence: float
    evidence: str
    reason: str
    refused: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)
    image_scores: ImageScores | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        what = self.modality.value if self.modality is not None else ("refused" if self.refused else "unknown")
        return f"{what} ({self.evidence}, {self.confidence:.0%})"
