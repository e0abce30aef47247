"""Image input/output."""

from .image_io import SUPPORTED_EXTENSIONS, check_output_path, from_xyz, read_image, to_xyz, validate_image, write_image

__all__ = [
    "SUPPORTED_EXTENSIONS",
    "check_output_path",
    "from_xyz",
    "read_image",
    "to_xyz",
    "validate_image",
    "write_image",
]
