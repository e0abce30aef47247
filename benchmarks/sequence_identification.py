"""Identifying the MRI contrast from the image alone: how often the answer is right on real images the classifier
never saw, and how long it takes.

The shipped classifier (``identification/image_classifier.json``) learns from the project's phantoms of every
sequence and from every real image of ../shared/data whose contrast is known (from its file name, which the classifier
never sees). Real images it trained on cannot judge it, so the real measure is **leave one source out**: for each
source folder of ../shared/data (a site, a scanner, a preprocessing), a classifier made by the same recipe from the
phantoms and the *other* folders' images is scored on that folder's images. A second row scores a classifier made from
phantoms alone (nothing real at all), and held-out phantoms are scored too.

Usage (from the repository root)::

    python benchmarks/sequence_identification.py --train    # rebuild identification/image_classifier.json, then measure
    python benchmarks/sequence_identification.py            # measure only

Without ../shared/data, ``--train`` makes a phantom-only classifier and only the phantom rows are measured.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DISEASES = ("tumour", "MS", "stroke", "WMH", "metastasis", "none")
MODALITIES = ("FLAIR", "T1", "T1c", "T2", "PD", "DWI", "SWI", "ADC")
#: real file stems -> contrast (the file names of ../shared/data)
REAL_NAMES = {"flair": "FLAIR", "t1": "T1", "t1c": "T1c", "t2": "T2", "dwi": "DWI", "adc": "ADC", "ch2": "T1"}
#: confusions a wrong channel makes dangerous (a T1 read as contrast-enhanced, an ADC map read as DWI)
DANGEROUS = ({"T1", "T1c"}, {"DWI", "ADC"})
TRAIN_SEED, TEST_SEED = 7000, 90000
#: training phantoms of the shipped recipe (each has every sequence)
TRAIN_CASES = 12


def phantom_features(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Features and contrasts of ``count`` phantoms with every sequence (diseases, noise and bias fields vary)."""
    from brainlesioncl.identification.image import image_features
    from brainlesioncl.phantoms import PhantomConfig, generate_case

    rng = np.random.default_rng(seed)
    rows, labels = [], []
    for i in range(count):
        config = PhantomConfig(disease=DISEASES[i % len(DISEASES)], modalities=MODALITIES, size=(88, 104, 80),
                               spacing=1.8, seed=seed + i, noise=float(rng.uniform(0.01, 0.08)),
                               bias=float(rng.uniform(0.0, 0.3)))
        case = generate_case(config)
        for modality, image in case.images.items():
            rows.append(image_features(image))
            labels.append(modality)
        print(f"phantom {i + 1}/{count}", flush=True)
    return np.stack(rows), labels


def real_images() -> list[tuple[Path, str]]:
    found = []
    for path in sorted(DATA.rglob("*.nii.gz")):
        stem = path.name[: -len(".nii.gz")].lower()
        if stem in REAL_NAMES and "lesions" not in path.parts:
            found.append((path, REAL_NAMES[stem]))
    return found


def _source(path: Path) -> str:
    """The source folder of a real image: its dataset, or ``unlabeled/<set>`` / ``templates/<set>``."""
    parts = path.relative_to(DATA).parts
    return "/".join(parts[:2]) if parts[0] in ("unlabeled", "templates") else parts[0]


def real_features() -> list[dict[str, Any]]:
    """Every real image of known contrast: file, source folder, contrast, features, seconds to compute them."""
    from brainlesioncl.identification.image import image_features
    from brainlesioncl.io import read_image

    rows = []
    for path, truth in real_images():
        image = read_image(path, validate=False)
        start = time.perf_counter()
        features = image_features(image)
        rows.append({"file": str(path.relative_to(DATA)), "source": _source(path),
                     "exam": str(path.parent.relative_to(DATA)), "truth": truth,
                     "features": features, "seconds": time.perf_counter() - start})
    return rows


def identifications(scores: list[Any], min_confidence: float) -> list[Any]:
    """Each volume's answer by the product's own decision (:func:`identification_from_scores`), image answers on."""
    from brainlesioncl.identification.image import identification_from_scores

    return [identification_from_scores(one, min_confidence=min_confidence, trusted=True) for one in scores]


def read_as_exams(rows: list[dict[str, Any]], found: list[Any]) -> list[Any]:
    """``found`` after each exam's volumes are read together (:func:`read_together`); an exam is one folder (one
    phantom)."""
    from brainlesioncl.identification import read_together

    together = list(found)
    for exam in sorted({row["exam"] for row in rows}):
        members = [i for i, row in enumerate(rows) if row["exam"] == exam]
        for i, answer in zip(members, read_together([found[i] for i in members]), strict=True):
            together[i] = answer
    return together


def score(rows: list[dict[str, Any]], found: list[Any]) -> dict[str, Any]:
    """Answered, right among answered, dangerous confusions answered, and every row's answer."""
    table = []
    for row, answer in zip(rows, found, strict=True):
        probability = answer.image_scores.probabilities
        closest = answer.modality.value if answer.modality else max(probability, key=probability.get)
        table.append({"file": row["file"], "truth": row["truth"], "closest": closest,
                      "confidence": round(answer.confidence, 3), "answered": answer.modality is not None,
                      "why_not": "" if answer.modality else answer.reason})
    answered = [r for r in table if r["answered"]]
    return {
        "volumes": len(table), "answered": len(answered),
        "correct": sum(r["closest"] == r["truth"] for r in answered),
        "dangerous": sum({r["closest"], r["truth"]} in DANGEROUS for r in answered),
        "answered_per_contrast": dict(Counter(r["truth"] for r in answered)),
        "volumes_per_contrast": dict(Counter(r["truth"] for r in table)),
        "rows": table,
    }


def leave_one_source_out(real: list[dict[str, Any]], phantom_x: np.ndarray, phantom_y: list[str],
                         min_confidence: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each source folder scored by a classifier made (shipped recipe) without it: each image alone, and each
    exam's images read together."""
    from brainlesioncl.identification.image import image_scores, train_classifier

    answers: dict[str, Any] = {}
    for held in sorted({row["source"] for row in real}):
        train = [row for row in real if row["source"] != held]
        model = train_classifier(np.concatenate([np.stack([r["features"] for r in train]), phantom_x]),
                                 [r["truth"] for r in train] + phantom_y)
        for row in real:
            if row["source"] == held:
                answers[row["file"]] = image_scores(model, row["features"])
    found = identifications([answers[row["file"]] for row in real], min_confidence)
    return score(real, found), score(real, read_as_exams(real, found))


def pre_post_gaps(real: list[dict[str, Any]]) -> dict[str, float]:
    """For every real exam with both a T1 and a T1c: how much higher the T1c's bright end stands (the pair rule's
    measure, :mod:`brainlesioncl.identification.exam`)."""
    from brainlesioncl.identification.image import FEATURE_NAMES

    bright = FEATURE_NAMES.index("brain_bright_end")
    by_exam: dict[str, dict[str, float]] = {}
    for row in real:
        by_exam.setdefault(row["exam"], {})[row["truth"]] = float(row["features"][bright])
    return {exam: round(values["T1c"] - values["T1"], 3) for exam, values in sorted(by_exam.items())
            if {"T1", "T1c"} <= values.keys()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="store_true", help="train and save the shipped classifier first")
    parser.add_argument("--train-cases", type=int, default=TRAIN_CASES,
                        help="training phantoms (each has every sequence)")
    parser.add_argument("--test-cases", type=int, default=10, help="held-out phantoms")
    parser.add_argument("--min-confidence", type=float, default=0.8)
    parser.add_argument("--output", type=Path, default=REPO / "docs" / "identification" / "results.json")
    args = parser.parse_args()

    from brainlesioncl.identification.image import _load, image_scores, save_classifier, train_classifier

    real = real_features() if DATA.is_dir() else []
    phantom_x, phantom_y = phantom_features(args.train_cases, seed=TRAIN_SEED)
    if args.train:
        x = np.concatenate([np.stack([r["features"] for r in real]), phantom_x]) if real else phantom_x
        model = train_classifier(x, [r["truth"] for r in real] + phantom_y)
        model["trained_on"] = (f"{args.train_cases} phantoms x {len(MODALITIES)} sequences (seeds {TRAIN_SEED}+)"
                               + (f" and {len(real)} real images of ../shared/data" if real else ""))
        print(f"classifier written to {save_classifier(model)}")
    shipped = _load()
    assert shipped is not None, "no classifier: run with --train"

    test_x, test_y = phantom_features(args.test_cases, seed=TEST_SEED)
    test_rows = [{"file": f"phantom {i // len(MODALITIES)} {label}", "exam": f"phantom {i // len(MODALITIES)}",
                  "truth": label, "features": x} for i, (label, x) in enumerate(zip(test_y, test_x, strict=True))]
    test_found = identifications([image_scores(shipped, x) for x in test_x], args.min_confidence)
    results: dict[str, Any] = {
        "min_confidence": args.min_confidence, "trained_on": shipped.get("trained_on"),
        "held_out_phantoms": score(test_rows, test_found),
        "held_out_phantom_exams": score(test_rows, read_as_exams(test_rows, test_found)),
    }
    if real:
        phantom_only = train_classifier(phantom_x, phantom_y)
        results["real_phantom_only"] = score(real, identifications(
            [image_scores(phantom_only, r["features"]) for r in real], args.min_confidence))
        (results["real_leave_one_source_out"],
         results["real_leave_one_source_out_exams"]) = leave_one_source_out(real, phantom_x, phantom_y,
                                                                            args.min_confidence)
        results["pre_post_contrast_gaps"] = pre_post_gaps(real)
        results["seconds_per_volume"] = {"median": float(np.median([r["seconds"] for r in real])),
                                         "max": float(max(r["seconds"] for r in real))}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")

    print("\n| classifier | scored on | answered | right among answered | T1<->T1c or DWI<->ADC answered |")
    print("|---|---|---|---|---|")
    for key, who, what in (("held_out_phantoms", "shipped", "held-out phantoms"),
                           ("held_out_phantom_exams", "shipped", "held-out phantoms, each exam read together"),
                           ("real_phantom_only", "phantoms only", "all real images"),
                           ("real_leave_one_source_out", "shipped recipe, without the scored source",
                            "each real source folder"),
                           ("real_leave_one_source_out_exams", "shipped recipe, without the scored source",
                            "each real source folder, each exam read together")):
        if key in results:
            r = results[key]
            print(f"| {who} | {what} | {r['answered']}/{r['volumes']} | {r['correct']}/{r['answered']} | "
                  f"{r['dangerous']} |")
    if real:
        print(f"\nseconds per volume: median {results['seconds_per_volume']['median']:.2f}, "
              f"max {results['seconds_per_volume']['max']:.2f}")
        print(f"T1c bright end above its exam's T1: {results['pre_post_contrast_gaps']}")
        for row in results["real_leave_one_source_out_exams"]["rows"]:
            mark = "" if row["closest"] == row["truth"] else "  <- wrong"
            print(f"  {row['file']:<72} {row['truth']:<6} {'->' if row['answered'] else '~ '} {row['closest']:<6} "
                  f"{row['confidence']:.2f}{mark}")
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
