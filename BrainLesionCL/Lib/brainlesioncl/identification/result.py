"""What an identification says: the contrast (or none), how sure, from which evidence, and why."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..modalities import Modality

__all__ = ["Identification"]


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
    """

    modality: Modality | None
    confidence: float
    evidence: str
    reason: str
    refused: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        what = self.modality.value if self.modality is not None else ("refused" if self.refused else "unknown")
        return f"{what} ({self.evidence}, {self.confidence:.0%})"
