"""What a site may say when it fails: a fixed code and a generic sentence, never the error's own text.

A site's error messages are written for the person at that site: they name case folders, file paths and image
details. None of that may leave the hospital. So a failing site keeps the detailed message in its own log and
sends only ``"<site label>: <code>: <generic text>"`` with a code from :data:`SITE_ERRORS` (an allow-list); the
server records that text in its round log and the new version's history. The site label is the name the site's
operator chose with ``--label`` (e.g. ``north``), never derived from data.
"""

from __future__ import annotations

import re

from ..errors import (
    ChannelMappingError,
    DiseaseNotSupportedError,
    GeometryError,
    InvalidImageError,
    NoCasesError,
    SettingsError,
    UnlabelledCasesError,
)

__all__ = ["SITE_ERRORS", "error_code", "parse_public_reason", "public_reason"]

#: Every code a site may send, with the only text that goes with it.
SITE_ERRORS = {
    "no-cases": "the site found no case in its case folder or manifest",
    "unlabelled": "some of the site's cases have no label",
    "unreadable": "an image or label of the site's cases could not be used (unreadable, wrong channel or geometry)",
    "no-parent": "the site does not hold the federation's parent model version",
    "other-parent": "the site's copy of the parent model differs from the server's",
    "foreign-weights": "the global weights do not fit the site's model",
    "settings": "the site cannot train with the federation's settings",
    "training-failed": "the site's training failed",
}
_REASON = re.compile(r"^(?P<label>[\w.-]{1,64}): (?P<code>[a-z-]+): ")


def error_code(error: BaseException) -> str:
    """The code of an exception raised while a site opened its cases or trained a round."""
    code = getattr(error, "code", None)
    if code in SITE_ERRORS:
        return str(code)
    if isinstance(error, NoCasesError):
        return "no-cases"
    if isinstance(error, UnlabelledCasesError):
        return "unlabelled"
    if isinstance(error, (InvalidImageError, GeometryError, ChannelMappingError)):
        return "unreadable"
    if isinstance(error, (SettingsError, DiseaseNotSupportedError)):
        return "settings"
    return "training-failed"


def public_reason(label: str | None, code: str) -> str:
    """The whole text a failing site sends: its label, the code, the code's generic sentence."""
    name = label if label and re.fullmatch(r"[\w.-]{1,64}", label) else "site"
    return f"{name}: {code}: {SITE_ERRORS[code]} (the details are in the site's own log)"


def parse_public_reason(reason: str) -> tuple[str, str] | None:
    """``(label, code)`` of a reason :func:`public_reason` wrote, or None for any other text (which the server then
    does not record: an error text it did not allow may carry what must not leave a site)."""
    match = _REASON.match(reason or "")
    if match is None or match["code"] not in SITE_ERRORS or reason != public_reason(match["label"], match["code"]):
        return None
    return match["label"], match["code"]
