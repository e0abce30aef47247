"""Identifying the MRI contrast from the image alone: train the classifier on phantoms, then measure it on held-out
phantoms and on every real image of ../shared/data whose contrast is known (from its file name, which the
classifier never sees). Also times the identification per volume.

Usage (from the repository root)::

    python benchmarks/sequence_identification.py --train          # rebuild identification/image_classifier.json
    python benchmarks/sequence_identification.py                  # measure the shipped classifier
    python benchmarks/sequence_identification.py --cross-validate # could real images teach it? leave-one-source-out

Nothing real is used for training the shipped classifier: the real cases are all held out. ``--cross-validate`` asks
whether real images would help: for every source folder of ../shared/data (a scanner, a site, a preprocessing), a
classifier trained on the other folders' images (with or without the phantoms) is scored on that folder's images.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DISEASES = ("tumour", "MS", "stroke", "WMH", "metastasis", "none")
MODALITIES = ("FLAIR", "T1", "T1c", "T2", "PD", "DWI", "SWI", "ADC")
#: real file stems -> contrast (the file names of ../shared/data)
REAL_NAMES = {"flair": "FLAIR", "t1": "T1", "t1c": "T1c", "t2": "T2", "dwi": "DWI", "adc": "ADC", "ch2": "T1"}


def phantom_features(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
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


def cross_validate(min_confidence: float) -> int:
    """Leave one source folder out: train on the other folders (alone, or with the phantoms), score the held-out one."""
    from brainlesioncl.identification.image import _softmax, image_features, train_classifier
    from brainlesioncl.io import read_image

    if not DATA.is_dir():
        print(f"{DATA} is not available")
        return 0
    real = [(path, _source(path), truth, image_features(read_image(path, validate=False)))
            for path, truth in real_images()]
    phantom_x, phantom_y = phantom_features(36, seed=7000)
    print("| training data | L2 | answered | correct among answered | T1<->T1c or DWI<->ADC answered |")
    print("|---|---|---|---|---|")
    for with_phantoms in (False, True):
        for l2 in (1e-2, 1e-1):
            answered = correct = dangerous = 0
            for held in sorted({source for _, source, _, _ in real}):
                train = [(f, t) for _, source, t, f in real if source != held]
                x = [f for f, _ in train] + (list(phantom_x) if with_phantoms else [])
                y = [t for _, t in train] + (list(phantom_y) if with_phantoms else [])
                model = train_classifier(np.stack(x), y, l2=l2)
                for _, source, truth, features in real:
                    if source != held:
                        continue
                    z = (features - np.asarray(model["mean"])) / np.asarray(model["scale"])
                    probability = _softmax(z @ np.asarray(model["weights"]) + np.asarray(model["bias"]))
                    best = int(np.argmax(probability))
                    if probability[best] >= min_confidence:
                        answer = model["classes"][best]
                        answered += 1
                        correct += answer == truth
                        dangerous += {answer, truth} in ({"T1", "T1c"}, {"DWI", "ADC"})
            print(f"| real{' + phantoms' if with_phantoms else ''} (other folders) | {l2:g} | {answered}/{len(real)} | "
                  f"{correct}/{answered} | {dangerous} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", action="store_true", help="train and save the shipped classifier first")
    parser.add_argument("--train-cases", type=int, default=36)
    parser.add_argument("--test-cases", type=int, default=12)
    parser.add_argument("--min-confidence", type=float, default=0.8)
    parser.add_argument("--output", default="sequence_identification.json")
    parser.add_argument("--cross-validate", action="store_true",
                        help="leave-one-source-out on the real images instead (nothing is saved)")
    args = parser.parse_args()
    if args.cross_validate:
        return cross_validate(args.min_confidence)

    from brainlesioncl.identification.image import (
        _load,
        identify_image,
        save_classifier,
        train_classifier,
    )
    from brainlesioncl.io import read_image

    if args.train:
        features, labels = phantom_features(args.train_cases, seed=7000)
        path = save_classifier(train_classifier(features, labels))
        print(f"classifier written to {path}")
    model = _load()
    results: dict = {}

    features, labels = phantom_features(args.test_cases, seed=90000)
    answered = correct = 0
    for row, label in zip(features, labels, strict=True):
        x = (row - np.asarray(model["mean"])) / np.asarray(model["scale"])
        scores = x @ np.asarray(model["weights"]) + np.asarray(model["bias"])
        probability = np.exp(scores - scores.max())
        probability /= probability.sum()
        best = int(np.argmax(probability))
        if probability[best] >= args.min_confidence:
            answered += 1
            correct += model["classes"][best] == label
    results["phantoms"] = {"volumes": len(labels), "answered": answered, "correct": correct}

    rows = []
    if DATA.is_dir():
        for path, truth in real_images():
            image = read_image(path, validate=False)
            start = time.perf_counter()
            found = identify_image(image, min_confidence=args.min_confidence, trusted=True)
            seconds = time.perf_counter() - start
            guess = found.reason.split("closest: ")[-1].split(",")[0] if found.modality is None else None
            rows.append({"file": str(path.relative_to(DATA)), "truth": truth,
                         "answer": found.modality.value if found.modality else None,
                         "closest": guess, "confidence": round(found.confidence, 3), "seconds": round(seconds, 2)})
        answered_rows = [r for r in rows if r["answer"]]
        results["real"] = {
            "volumes": len(rows), "answered": len(answered_rows),
            "correct": sum(r["answer"] == r["truth"] for r in answered_rows),
            "dangerous_confusions": [r for r in answered_rows if {r["answer"], r["truth"]} in ({"T1", "T1c"},
                                                                                                {"DWI", "ADC"})],
            "median_seconds": float(np.median([r["seconds"] for r in rows])) if rows else None,
            "rows": rows,
        }
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")
    phantoms = results["phantoms"]
    print(f"held-out phantoms: {phantoms['correct']}/{phantoms['answered']} correct among answered, "
          f"{phantoms['answered']}/{phantoms['volumes']} answered")
    if "real" in results:
        real = results["real"]
        print(f"real images: {real['correct']}/{real['answered']} correct among answered, {real['answered']}/"
              f"{real['volumes']} answered; T1<->T1c or DWI<->ADC confusions answered: "
              f"{len(real['dangerous_confusions'])}; median {real['median_seconds']:.2f} s per volume")
        for r in rows:
            print(f"  {r['file']:<70} {r['truth']:<6} -> {r['answer'] or '-':<6} (closest {r['closest'] or '-'}, "
                  f"{r['confidence']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
