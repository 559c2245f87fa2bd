"""The class report: one PDF telling the instructor how the class did.

From the grader's report (``report.json``): the distribution of totals, each question's
mean and spread, its most common named mistakes, an item analysis per question and per
field, the files that could not be graded and why, and the students without a
submission. Plots are pgfplots, typeset with the report.

Item analysis, as in classical test theory: an item's *difficulty* is its mean score as
a share of its points (1: everyone got it); its *discrimination* is the correlation of
its score with the rest of the total (the total without this item), over the students
graded: near 0 or negative, the item does not separate stronger from weaker students.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from deepdrill.generator import latex
from deepdrill.generator.exercise import get
from deepdrill.generator.pdf import compile_tex
from deepdrill.generator.render import environment

BINS = 10
TOP_MISTAKES = 5
MIN_FOR_CORRELATION = 3  # students


def discrimination(item: np.ndarray, total: np.ndarray) -> float | None:
    """Correlation of an item's scores with the rest of the total (None when either does
    not vary, or too few students)."""
    rest = total - item
    if len(item) < MIN_FOR_CORRELATION or item.std() == 0 or rest.std() == 0:
        return None
    return float(np.corrcoef(item, rest)[0, 1])


def context(report: dict[str, Any]) -> dict[str, Any]:
    """Everything the report's template prints."""
    questions = report["assignment"]["questions"]
    max_score = float(report["summary"]["max_score"])
    graded_rows = [r for r in report["students"] if r["status"] == "graded"]
    by_file = {e["file"]: e for e in report["submissions"] if e["status"] == "graded"}
    entries = [by_file.get(r["file"], {}) for r in graded_rows]
    totals = np.array([r["total"] for r in graded_rows], dtype=float)
    hist = _histogram(totals, max_score)
    return {
        "title": report["assignment"]["title"],
        "course": report["assignment"].get("course", ""),
        "graded_at": report.get("graded_at", ""),
        "students": report["summary"]["students"],
        "graded": len(graded_rows),
        "max_score": max_score,
        "stats": _stats(totals),
        "histogram": hist,
        "questions": [_question(n, q, graded_rows, entries, totals)
                      for n, q in enumerate(questions, 1)],
        "count_step": _step(max((n for _, n in hist), default=1)),
        "problems": [{"file": breakable(e["file"]), "status": e["status"],
                      "why": "; ".join(e.get("messages", []))[:300]}
                     for e in report["submissions"] if e["status"] != "graded"],
        "missing": [{"id": r["id"], "name": r["name"]}
                    for r in report["students"] if r["status"] == "no_submission"],
    }


def _step(largest: int) -> int:
    """Tick spacing for counts: whole students, about five ticks."""
    return max(1, int(np.ceil(largest / 5)))


def breakable(path: str) -> latex.Tex:
    """A file name that may break after each / in a narrow column."""
    return latex.Tex(r"/\allowbreak{}".join(latex.escape(part) for part in path.split("/")))


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if not len(values):
        return None
    return {"mean": float(values.mean()), "median": float(np.median(values)),
            "sd": float(values.std()), "min": float(values.min()), "max": float(values.max())}


def _histogram(totals: np.ndarray, max_score: float) -> list[tuple[float, int]]:
    """Counts per tenth of the points, as pgfplots' ``ybar interval`` coordinates (each
    bin's left edge; the last coordinate closes the last bin)."""
    if not len(totals) or max_score <= 0:
        return []
    edges = np.linspace(0, max_score, BINS + 1)
    counts, _ = np.histogram(np.clip(totals, 0, max_score), bins=edges)
    return [(float(e), int(c)) for e, c in zip(edges, [*counts, counts[-1]])]


def _question(number: int, q: dict[str, Any], rows: list[dict], entries: list[dict],
              totals: np.ndarray) -> dict[str, Any]:
    points = float(q["points"])
    scores = np.array([r["questions"].get(q["label"], 0.0) for r in rows], dtype=float)
    results = [(e.get("questions") or {}).get(q["label"]) for e in entries]
    carried = np.array([(res or {}).get("carried_forward", 0.0) for res in results])
    mistakes: Counter[str] = Counter()
    words: dict[str, str] = {}
    field_scores: dict[str, list[float]] = {}
    field_max: dict[str, float] = {}
    for res in results:
        named = set()
        for name, f in ((res or {}).get("fields") or {}).items():
            field_scores.setdefault(name, []).append(f["score"])
            field_max[name] = f["max_score"]
            if f.get("mistake"):
                named.add(f["mistake"])
                words[f["mistake"]] = f["feedback"].partition(". It looks like ")[2].rstrip(".")
        mistakes.update(named)
    try:
        title = get(q["type"]).title
    except Exception:  # noqa: BLE001  (a type this deepdrill no longer has)
        title = q["type"]
    fields = []
    for name, values in field_scores.items():
        item = np.array(values, dtype=float)
        if len(item) != len(totals):
            continue  # not every graded student has the field (cannot happen for one key)
        fields.append({"name": name, "difficulty": _share(item.mean(), field_max[name]),
                       "discrimination": discrimination(item, totals)})
    return {
        "number": number, "label": q["label"], "title": title, "points": points,
        "mean": float(scores.mean()) if len(scores) else 0.0,
        "sd": float(scores.std()) if len(scores) else 0.0,
        "difficulty": _share(scores.mean(), points) if len(scores) else None,
        "discrimination": discrimination(scores, totals) if len(scores) else None,
        "carried": float(carried.mean()) if len(carried) else 0.0,
        "full": int((scores >= points - 1e-9).sum()),
        "mistakes": [{"name": m, "count": c, "words": words.get(m, "")}
                     for m, c in mistakes.most_common(TOP_MISTAKES)],
        "count_step": _step(max(mistakes.values(), default=1)),
        "fields": fields,
    }


def _share(mean: float, points: float) -> float | None:
    return float(mean / points) if points > 0 else None


def typeset_class_report(report: dict[str, Any], out: Path) -> Path:
    """Write ``out`` (a PDF) for the report; return it."""
    work = out.parent / f".{out.stem}-tex"
    work.mkdir(parents=True, exist_ok=True)
    tex = environment().get_template("class_report.tex.j2").render(
        packages=["pgfplots"], **context(report))
    pdf = compile_tex(tex, work, job="report")
    pdf.replace(out)
    shutil.rmtree(work, ignore_errors=True)
    return out
