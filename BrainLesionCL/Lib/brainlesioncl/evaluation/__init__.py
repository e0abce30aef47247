"""How good a segmentation or a sequence of models is: every score BrainLesionCL reports comes from here.

* :mod:`.segmentation`: per case, voxel-wise (Dice, sensitivity, precision, HD95, ASSD); the one Dice of the project;
* :mod:`.lesions`: lesion-wise scores by the official BraTS 2023 rules, and panoptica's instance scores;
* :mod:`.continual`: Acc / ILM / BWT / FWT on a continual-learning accuracy matrix R.
"""

from .continual import CLMetrics, cl_metrics
from .lesions import LesionScores, lesion_scores, lesion_wise_metrics, panoptica_scores
from .segmentation import CaseMetrics, case_metrics, dice, hd95_mm

__all__ = ["CLMetrics", "CaseMetrics", "LesionScores", "case_metrics", "cl_metrics", "dice", "hd95_mm",
           "lesion_scores", "lesion_wise_metrics", "panoptica_scores"]
