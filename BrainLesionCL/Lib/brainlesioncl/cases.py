"""Finding cases on disk: a folder of case folders, or a CSV manifest.

Used by batch segmentation (and later by training episodes). A case is a name, ``{modality: path}`` and optionally a
label path and a disease tag.

* **Folder**: ``<root>/<case>/<file>``; each file's modality is guessed from its name through the alias registry
  (``flair.nii.gz``, ``BraTS-GLI-00001-000-t2f.nii.gz``...). ``label``/``seg`` files become the case label; masks
  and predictions are ignored.
* **CSV**: a header row with ``case``, one column per modality (any alias), optional ``label`` and ``disease``;
  relative paths are relative to the CSV's folder; empty cells mean the modality is absent.
* **JSON**: ``{"cases": [{"case": "...", "images": {"FLAIR": "...", "T1": "..."}, "label": "...", "disease": "..."}]}``
  (or the list alone); relative paths are relative to the JSON file's folder.
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ChannelMappingError, DuplicateChannelError, InvalidImageError, NoCasesError, UnlabelledCasesError
from .modalities import Modality, guess_modality, resolve_modality

__all__ = ["CaseSpec", "find_annotated_cases", "find_cases"]

_IMAGE_SUFFIX = re.compile(r"\.(nii\.gz|nii|nrrd|mha)$", re.IGNORECASE)
_LABEL_NAMES = {"label", "labels", "seg", "segmentation", "mask_lesion", "lesion", "gt", "groundtruth"}


@dataclass
class CaseSpec:
    name: str
    images: dict[Modality, Path]
    label: Path | None = None
    disease: str | None = None
    skipped: list[str] = field(default_factory=list)


def find_annotated_cases(source: str | os.PathLike) -> list[CaseSpec]:
    """The cases of :func:`find_cases`, every one with a label (what an episode or a federated site trains on).

    Raises:
        UnlabelledCasesError: some cases have no label (named, with the fix); and as :func:`find_cases`.
    """
    specs = find_cases(source)
    unlabelled = [s.name for s in specs if s.label is None]
    if unlabelled:
        raise UnlabelledCasesError(
            f"{len(unlabelled)} of {len(specs)} case(s) in {source} have no label ({', '.join(unlabelled[:5])}); "
            "training learns only from annotated cases. Add a label file (label.nii.gz) or a 'label' column, or "
            "remove those cases.")
    return specs


def find_cases(source: str | os.PathLike) -> list[CaseSpec]:
    """Cases from a folder or a CSV manifest (see the module docstring).

    Raises:
        InvalidImageError: the source does not exist or holds no case.
        DuplicateChannelError: a case has two files of one modality.
    """
    source = Path(source).expanduser()
    if source.is_file() and source.suffix.lower() == ".csv":
        cases = _from_csv(source)
    elif source.is_file() and source.suffix.lower() == ".json":
        cases = _from_json(source)
    elif source.is_dir():
        cases = _from_folder(source)
    else:
        raise InvalidImageError(f"{source} is neither a folder of cases nor a .csv/.json manifest.")
    if not cases:
        raise NoCasesError(
            f"No case found in {source}. Expected sub-folders with one image per modality (e.g. flair.nii.gz), or "
            "a CSV with a 'case' column and one column per modality."
        )
    return cases


def _from_folder(root: Path) -> list[CaseSpec]:
    cases = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        spec = CaseSpec(name=folder.name, images={})
        for file in sorted(folder.iterdir()):
            if not _IMAGE_SUFFIX.search(file.name):
                continue
            stem = _IMAGE_SUFFIX.sub("", file.name).lower()
            if stem in _LABEL_NAMES or stem.endswith(("_seg", "-seg", "_label", "-label")):
                spec.label = file
                continue
            modality = guess_modality(file.name)
            if modality is None:
                spec.skipped.append(file.name)
                continue
            if modality in spec.images:
                raise DuplicateChannelError(
                    f"Case {folder.name}: both {spec.images[modality].name} and {file.name} look like "
                    f"{modality.value}. Rename one, or list the case in a CSV manifest."
                )
            spec.images[modality] = file
        if spec.images:
            cases.append(spec)
    return cases


def _from_csv(path: Path) -> list[CaseSpec]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return []
    columns = list(rows[0])
    if "case" not in columns:
        raise ChannelMappingError(f"{path.name}: the header needs a 'case' column (found {columns}).")
    modality_columns = {c: resolve_modality(c) for c in columns if c not in ("case", "label", "disease")}
    if len(set(modality_columns.values())) != len(modality_columns):
        raise DuplicateChannelError(f"{path.name}: two columns name the same modality ({list(modality_columns)}).")
    cases = []
    for row in rows:
        images = {
            modality: (path.parent / row[column]).resolve()
            for column, modality in modality_columns.items()
            if row.get(column, "").strip()
        }
        label = row.get("label", "").strip()
        cases.append(
            CaseSpec(
                name=row["case"].strip(),
                images=images,
                label=(path.parent / label).resolve() if label else None,
                disease=(row.get("disease") or "").strip() or None,
            )
        )
    return cases


def _from_json(path: Path) -> list[CaseSpec]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidImageError(f"{path.name} is not a readable JSON manifest: {err}") from err
    entries = data.get("cases") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise InvalidImageError(f'{path.name}: expected {{"cases": [...]}} or a list of cases.')
    cases = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), dict):
            raise InvalidImageError(f'{path.name}: case #{index + 1} needs an "images" object {{modality: path}}.')
        images: dict[Modality, Path] = {}
        for column, file in entry["images"].items():
            modality = resolve_modality(column)
            if modality in images:
                raise DuplicateChannelError(f"{path.name}: case #{index + 1} names {modality.value} twice.")
            images[modality] = (path.parent / str(file)).resolve()
        label = entry.get("label")
        cases.append(CaseSpec(
            name=str(entry.get("case") or f"case{index + 1:03d}"),
            images=images,
            label=(path.parent / str(label)).resolve() if label else None,
            disease=entry.get("disease") or None,
        ))
    return cases
