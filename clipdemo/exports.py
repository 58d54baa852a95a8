"""Results as files to download: a prediction or an evaluation as CSV and JSON, in a self-cleaning folder.

Holds `results_dir` (a temp folder whose files older than ten minutes are removed), `prediction_files` and
`evaluation_files`. Text cells that a spreadsheet would run as formulas are defused. No gradio here.
"""

from __future__ import annotations

import csv
import json
import tempfile
import time
import uuid
from pathlib import Path

from .evaluate import EvalResult
from .janitor import sweep
from .prediction import Prediction

__all__ = ["results_dir", "label_file", "prediction_files", "evaluation_files", "batch_files"]

RESULTS_DIR_NAME = "clipdemo-results"
RESULTS_MAX_AGE_S = 600  # Gradio copies each file into its own cache as the answer is sent; ten minutes is ample
PRUNE_EVERY_S = 60


def _cell(text: str) -> str:
    """Defuse spreadsheet formulas in exported text cells."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


_last_prune = [0.0]  # when results_dir last looked for old files (monotonic seconds)


def results_dir() -> Path:
    """The folder for files offered as downloads; files older than ten minutes are removed (looked for at
    most once a minute, so a busy Space does not stat the whole folder on every prediction)."""
    folder = Path(tempfile.gettempdir()) / RESULTS_DIR_NAME
    folder.mkdir(exist_ok=True)
    if time.monotonic() - _last_prune[0] >= PRUNE_EVERY_S:
        _last_prune[0] = time.monotonic()
        sweep(folder, RESULTS_MAX_AGE_S)  # bounded: files older than ten minutes are removed
    return folder


def _stem(kind: str) -> Path:
    return results_dir() / f"{kind}-{uuid.uuid4().hex[:12]}"


def label_file(text: str) -> str:
    """A label set's text as `labels.txt` (in a folder of its own, so the download keeps that name)."""
    folder = _stem("labels")
    folder.mkdir()
    path = folder / "labels.txt"
    path.write_text(text, encoding="utf-8")
    return str(path)


def prediction_files(pred: Prediction, what: str) -> list[str]:
    """Write the prediction as CSV (rank, label, probability) and JSON; returns the two paths."""
    stem = _stem("prediction")
    csv_path, json_path = stem.with_suffix(".csv"), stem.with_suffix(".json")
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "label", "probability"])
        for rank, (lab, p) in enumerate(pred.top, start=1):
            w.writerow([rank, _cell(lab), f"{p:.6f}"])
    json_path.write_text(json.dumps({**pred.as_dict(), "image": what}, indent=2, ensure_ascii=False), encoding="utf-8")
    return [str(csv_path), str(json_path)]


def evaluation_files(results: list[EvalResult]) -> list[str]:
    """Write evaluation results: a CSV row per (setting, image) and a JSON with everything; returns the two paths."""
    stem = _stem("evaluation")
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["setting", "index", "true", "predicted", "probability"])
        for r in results:
            for i, t, p, q in zip(r.indices.tolist(), r.targets.tolist(), r.predicted.tolist(), r.confidence.tolist()):
                w.writerow([r.setting, i, _cell(r.classes[t]), _cell(r.classes[p]), f"{q:.6f}"])
    stem.with_suffix(".json").write_text(json.dumps([r.as_dict() for r in results], indent=1), encoding="utf-8")
    return [str(stem.with_suffix(".csv")), str(stem.with_suffix(".json"))]


def batch_files(items: list, labels_count: int) -> list[str]:
    """Write a batch's results (`batch.BatchItem`s): a CSV row per (image, rank) and a JSON; returns the paths."""
    stem = _stem("batch")
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "rank", "label", "probability", "cosine"])
        for item in items:
            for rank, (lab, p, c) in enumerate(item.top, start=1):
                w.writerow([_cell(item.name), rank, _cell(lab), f"{p:.6f}", f"{c:.6f}"])
    stem.with_suffix(".json").write_text(json.dumps(
        {"labels": labels_count, "images": [{"image": item.name, "predictions": item.predictions()}
                                            for item in items]},
        indent=1, ensure_ascii=False), encoding="utf-8")
    return [str(stem.with_suffix(".csv")), str(stem.with_suffix(".json"))]
