"""Raw clinical exams in, what the models were trained on out: detection, co-registration, brain extraction, QC."""

from .registration import RegistrationResult, register_rigid
from .stage import PREPARE_MODES, Preparation, is_brain_extracted, prepare_inputs, quality_lines

__all__ = ["PREPARE_MODES", "Preparation", "RegistrationResult", "is_brain_extracted", "prepare_inputs",
           "quality_lines", "register_rigid"]
