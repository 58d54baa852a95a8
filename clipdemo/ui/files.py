"""Results as files to download: a prediction, a batch or an evaluation as CSV and JSON, and a label set.

The app's janitor removes them after ten minutes: Gradio copies each file into its own cache as the answer is sent.
Text cells that a spreadsheet would run as formulas are defused. No gradio here.
"""

from __future__ import annotations

import csv
import json
import tempfile
import uuid
from pathlib import Path

from ..core.search import SearchQuery
from ..core.zeroshot import Prediction
from ..tasks.evaluate import EvalResult
from ..tasks.search import SearchResult
from ..tasks.yourdata import LabelledReport

__all__ = ["RESULTS_MAX_AGE_S", "results_dir", "label_file", "prediction_files", "evaluation_files",
           "batch_files", "search_files"]

RESULTS_MAX_AGE_S = 600  # Gradio copies each file into its own cache as the answer is sent; ten minutes is ample


def _cell(text: str) -> str:
    """Defuse spreadsheet formulas in exported text cells."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def results_dir() -> Path:
    """The folder for files offered as downloads, in the temporary folder (made when missing)."""
    folder = Path(tempfile.gettempdir()) / "clipdemo-results"
    folder.mkdir(exist_ok=True)
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


def batch_files(names: list[str], preds: list[Prediction], threshold: float | None = None) -> list[str]:
    """Write a batch's results: a CSV row per (image, rank) and a JSON (with a threshold, each row says whether its
    label fits); returns the two paths."""
    stem = _stem("batch")
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["image", "rank", "label", "probability", "cosine", *(["fits"] if threshold is not None else [])])
        for name, pred in zip(names, preds):
            for rank, row in enumerate(pred.rows(threshold), start=1):
                w.writerow([_cell(name), rank, _cell(row["label"]), f"{row['score']:.6f}", f"{row['cosine']:.6f}",
                            *([row["fits"]] if threshold is not None else [])])
    labels = len(preds[0].labels) if preds else 0
    stem.with_suffix(".json").write_text(json.dumps(
        {"labels": labels, "threshold": threshold,
         "images": [{"image": name, "predictions": pred.rows(threshold)} for name, pred in zip(names, preds)]},
        indent=1, ensure_ascii=False), encoding="utf-8")
    return [str(stem.with_suffix(".csv")), str(stem.with_suffix(".json"))]


def search_files(result: SearchResult, query: SearchQuery) -> list[str]:
    """Write a search's results: a CSV row per result (rank, index, label or name, cosine) and a JSON with the
    query; returns the two paths."""
    stem = _stem("search")
    rows = result.rows()
    key = "true_label" if result.source == "cifar" else "name"
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["rank", "index", key, "cosine"])
        for rank, row in enumerate(rows, start=1):
            w.writerow([rank, row["index"], _cell(row[key]), f"{row['cosine']:.6f}"])
    stem.with_suffix(".json").write_text(json.dumps(
        {"query": query.text, "negative": query.negative, "prompt": query.prompt, "source": result.source,
         "covered": result.covered, "total": result.total, "results": rows}, indent=1, ensure_ascii=False),
        encoding="utf-8")
    return [str(stem.with_suffix(".csv")), str(stem.with_suffix(".json"))]


def labelled_files(report: LabelledReport, names: tuple[str, ...]) -> list[str]:
    """Write a labelled-images report: a CSV row per scored image (`LabelledReport.rows`) and a JSON with
    everything; returns the two paths."""
    stem = _stem("labelled")
    rows = report.rows(names)
    with open(stem.with_suffix(".csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({k: _cell(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows)
    stem.with_suffix(".json").write_text(json.dumps(report.as_dict(), indent=1, ensure_ascii=False), encoding="utf-8")
    return [str(stem.with_suffix(".csv")), str(stem.with_suffix(".json"))]
