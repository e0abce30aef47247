"""Reading one exam's volumes together, as a radiologist compares the T1 before and after contrast.

One image alone often cannot tell T1 from T1c: what gadolinium adds (enhancing vessels, choroid plexus, lesions) is a
thin bright end of the histogram that a scanner's or a preprocessing's own habits can mimic or hide, so the image
classifier withholds most of those answers (:func:`.image.decide`). Two T1-weighted volumes of one exam share the
scanner, the patient and the preprocessing, so what differs between them is the contrast agent: the post-contrast
volume is the one whose brightest voxels stand clearly higher above white matter (the ``brain_bright_end`` feature).

:func:`read_together` applies this only when it knows what it compares:

* exactly two volumes of the exam were read from the image, and each is T1-weighted (T1 and T1c together at least
  :data:`T1_FAMILY_MIN`), and no other volume was named, tagged or chosen by hand as T1 or T1c;
* their bright ends differ by at least :data:`ENHANCEMENT_MARGIN`, so two T1c (a 3D and a 2D series) or two T1 are
  left as they are;
* it agrees with what each image said alone: where it does not, neither volume is answered and the user is asked.

Measured (docs/BENCHMARKS.md): on the four real exams of ../shared/data with both, the post-contrast volume's bright
end is 0.71-0.89 higher; the project's phantoms, whose T1c barely enhances, mostly stay below the margin (0.38 at most
in eight pairs; one of ten held-out phantom exams is answered, rightly).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ..modalities import Modality
from .result import Identification

__all__ = ["ENHANCEMENT_MARGIN", "T1_FAMILY_MIN", "read_together"]

#: Probability of "T1 or T1c" a volume needs for the pair rule to treat it as T1-weighted.
T1_FAMILY_MIN = 0.8
#: How much higher (in ``brain_bright_end`` units) the post-contrast volume's bright end must stand.
ENHANCEMENT_MARGIN = 0.4
_BRIGHT_END = "brain_bright_end"
_T1_PAIR = (Modality.T1, Modality.T1C)


def read_together(found: Sequence[Identification], *,
                  chosen: Iterable[Modality] = ()) -> list[Identification]:
    """``found`` (one exam's volumes, in any order) with a pre/post-contrast T1 pair told apart where the image of
    each alone could not (see the module docstring). ``chosen``: contrasts the user mapped by hand in this exam."""
    result = list(found)
    decided_elsewhere = [f.modality for f in result if f.image_scores is None] + list(chosen)
    if any(modality in _T1_PAIR for modality in decided_elsewhere):
        return result
    weighted = [i for i, f in enumerate(result)
                if f.image_scores is not None and f.image_scores.probability("T1", "T1c") >= T1_FAMILY_MIN]
    if len(weighted) != 2:
        return result
    first, second = weighted
    gap = _bright_end(result[first]) - _bright_end(result[second])
    if abs(gap) < ENHANCEMENT_MARGIN:
        return result
    post, pre = (first, second) if gap > 0 else (second, first)
    if result[post].modality is Modality.T1 or result[pre].modality is Modality.T1C:
        why = ("read with this exam's other T1-weighted volume, the contrast agent points the other way than the "
               "image alone did; map T1 and T1c by hand")
        for index in (post, pre):
            result[index] = replace(result[index], modality=None, reason=why)
        return result
    result[post] = _paired(result[post], Modality.T1C, abs(gap))
    result[pre] = _paired(result[pre], Modality.T1, abs(gap))
    return result


def _bright_end(found: Identification) -> float:
    assert found.image_scores is not None
    return float(found.image_scores.features[_BRIGHT_END])


def _paired(found: Identification, modality: Modality, gap: float) -> Identification:
    """``found`` answered as ``modality`` by the pair rule (a volume that already said so keeps its own reason)."""
    scores = found.image_scores
    assert scores is not None
    agreement = (f"read with this exam's other T1-weighted volume, its brightest voxels (vessels, enhancement) stand "
                 f"{'higher' if modality is Modality.T1C else 'lower'} by {gap:.2f}: T1 "
                 f"{'after' if modality is Modality.T1C else 'before'} contrast")
    if found.modality is modality:
        return replace(found, notes=(*found.notes, agreement))
    return replace(found, modality=modality, confidence=scores.probability("T1", "T1c"), reason=agreement)
