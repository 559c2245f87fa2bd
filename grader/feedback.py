"""Feedback sheets: one PDF per student saying, question by question, what they answered,
what was expected, what each field earned and why.

Built from the grader's report (``report.json``), so a class's feedback can be typeset
again later without grading again. All sheets go into one LaTeX document, compiled in
a few chunks in parallel and split per student, as the build does with problem sheets.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


from deepdrill.files import die_with_parent
from deepdrill.generator import latex
from deepdrill.generator.exercise import get
from deepdrill.generator.pdf import assemble, compile_tex, page_starts, split
from deepdrill.generator.render import environment

MAX_TEXT = 80  # characters of a non-numeric answer shown
MAX_ITEMS = 40  # entries of a value typeset before it is cut short
CHUNK = 120  # students per pdflatex run


# -- values as the sheet shows them -------------------------------------------------

def value_tex(value: Any, wrong: list[int] | None = None,
              carried: list[int] | None = None) -> latex.Tex:
    """A given or expected value as math: numbers, rows, matrices, lists of rows; wrong
    entries boxed, carried-forward ones underlined; anything else as short text."""
    marks = {**{i: "carried" for i in carried or ()}, **{i: "wrong" for i in wrong or ()}}
    if value is None:
        return latex.Tex(r"\emph{no answer}")
    counter = iter(range(10 ** 9))
    try:
        return latex.Tex(f"${_math(value, marks, counter)}$")
    except (TypeError, ValueError, OverflowError):
        return _text(value)


def _math(value: Any, marks: dict[int, str], counter: Any) -> str:
    if isinstance(value, bool):
        raise TypeError("not a number")
    if isinstance(value, (int, float)):
        return _entry(value, marks.get(next(counter)))
    if not isinstance(value, list) or not value or len(value) > MAX_ITEMS:
        raise TypeError("not a value to typeset")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return r"\left(" + ",\\ ".join(_math(v, marks, counter) for v in value) + r"\right)"
    if _is_matrix(value):
        rows = [" & ".join(_math(x, marks, counter) for x in v) for v in value]
        return r"\begin{bmatrix}" + r" \\ ".join(rows) + r"\end{bmatrix}"
    if all(isinstance(v, list) for v in value):  # channels, or one item per layer
        return r"\begin{array}{l}" + r" \\ ".join(_math(v, marks, counter) for v in value) + \
            r"\end{array}"
    raise TypeError("a mixed list")


def _is_matrix(value: list) -> bool:
    """Rows of numbers, all of one length (more than one row)."""
    return len(value) > 1 and all(isinstance(v, list) for v in value) and \
        len({len(v) for v in value}) == 1 and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for v in value for x in v)


def _entry(x: float, mark: str | None) -> str:
    if not math.isfinite(x):
        raise ValueError("not finite")
    text = latex.num(x)
    if mark == "wrong":
        return rf"\ddwrong{{{text}}}"
    if mark == "carried":
        return rf"\ddcarried{{{text}}}"
    return text


def _text(value: Any) -> latex.Tex:
    raw = value if isinstance(value, str) else json.dumps(value)[:MAX_TEXT + 1]
    short = raw if len(raw) <= MAX_TEXT else raw[:MAX_TEXT] + "..."
    return latex.Tex(r"\texttt{" + latex.escape(short) + "}")


# -- the sheets ---------------------------------------------------------------------

def sheet_context(report: dict[str, Any], row: dict[str, Any],
                  entry: dict[str, Any] | None) -> dict[str, Any]:
    """One student's feedback: the row of grades.csv and, if one was counted, their file."""
    questions = report["assignment"]["questions"]
    graded = entry or {}
    out = []
    for number, q in enumerate(questions, 1):
        result = (graded.get("questions") or {}).get(q["label"])
        out.append(_question(number, q, result))
    return {"id": row["id"], "name": row["name"], "status": row["status"],
            "file": row["file"], "total": row["total"], "carried": row["carried_forward"],
            "max_score": report["summary"]["max_score"],
            "messages": list(graded.get("messages", [])), "questions": out}


def _question(number: int, q: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
    try:
        title = get(q["type"]).title
    except Exception:  # noqa: BLE001  (a type this deepdrill no longer has: its id will do)
        title = q["type"]
    ctx = {"number": number, "label": q["label"], "title": title, "points": q["points"],
           "score": 0.0, "carried": 0.0, "notes": [], "mistakes": [], "fields": []}
    if result is None:
        return ctx
    ctx.update(score=result["score"], carried=result.get("carried_forward", 0.0),
               notes=result.get("notes", []))
    mistakes: list[str] = []
    for name, f in result["fields"].items():
        ctx["fields"].append({
            "name": name, "score": f["score"], "max": f["max_score"],
            "verdict": _verdict(f),
            "given": value_tex(f["given"], f.get("wrong_entries"), f.get("carried_entries")),
            "expected": value_tex(f["expected"]),
            "feedback": _plain_feedback(f)})
        if f.get("mistake") and f["mistake"] not in mistakes:
            mistakes.append(f["mistake"])
            ctx["mistakes"].append(_mistake_words(f["feedback"]))
    return ctx


def _verdict(f: dict[str, Any]) -> str:
    if f["correct"]:
        return "right"
    if f.get("carried_forward"):
        return "carried forward" if f["score"] >= f["max_score"] - 1e-9 else "partly, carried"
    return "partly right" if f["score"] > 0 else "wrong"


def _plain_feedback(f: dict[str, Any]) -> str:
    """The field's feedback without the mistake's sentence (the question names it once)."""
    text = f["feedback"]
    return text.split(". It looks like ")[0] if f.get("mistake") else text


def _mistake_words(feedback: str) -> str:
    _, _, words = feedback.partition(". It looks like ")
    return ("It looks like " + words) if words else feedback


def rows_and_entries(report: dict[str, Any]) -> list[tuple[dict, dict | None]]:
    """Each student of the key with the submission counted for them (if any)."""
    by_file = {e["file"]: e for e in report["submissions"] if e["status"] == "graded"}
    return [(row, by_file.get(row["file"]) if row["status"] == "graded" else None)
            for row in report["students"] if row["id"] and row["status"] != "unknown_student"]


def typeset_feedback(report: dict[str, Any], out: Path, folder_of: Callable[[str], str],
                     workers: int | None = None,
                     tick: Callable[[int], None] | None = None) -> list[Path]:
    """Write ``out/<folder>.pdf`` for every student of the key and ``out/feedback.pdf``
    with all of them; return the per-student files."""
    out.mkdir(parents=True, exist_ok=True)
    students = rows_and_entries(report)
    contexts = [sheet_context(report, row, entry) for row, entry in students]
    targets = [out / f"{folder_of(row['id'])}.pdf" for row, _ in students]
    chunks = [(contexts[i:i + CHUNK], targets[i:i + CHUNK], out / f".tex{n}")
              for n, i in enumerate(range(0, len(contexts), CHUNK))]
    head = {"title": report["assignment"]["title"],
            "course": report["assignment"].get("course", "")}
    workers = min(workers or os.cpu_count() or 1, len(chunks))
    tick = tick or (lambda n: None)
    documents = []
    if workers > 1:
        with ProcessPoolExecutor(workers, initializer=die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for chunk, document in zip(chunks, pool.map(_typeset_chunk, [head] * len(chunks),
                                                        chunks)):
                documents.append(document)
                tick(len(chunk[0]))
    else:
        for chunk in chunks:
            documents.append(_typeset_chunk(head, chunk))
            tick(len(chunk[0]))
    runs = [(doc, start, n) for doc, spans in documents for start, n in spans]
    if runs:
        assemble(runs, out / "feedback.pdf")
    for _, _, work in chunks:
        _remove_tree(work)
    return targets


def _typeset_chunk(head: dict[str, Any], chunk: tuple) -> tuple[Path, list[tuple[int, int]]]:
    contexts, targets, work = chunk
    work.mkdir(parents=True, exist_ok=True)
    tex = environment().get_template("feedback.tex.j2").render(
        packages=["xcolor"], sheets=contexts, **head)
    pdf = compile_tex(tex, work)
    starts = page_starts(work / "sheet.pagemap", len(contexts))
    counts = split(pdf, starts, targets)
    kept = work.parent / f"{work.name}.pdf"
    pdf.rename(kept)
    return kept, list(zip(starts, counts))


def _remove_tree(work: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    (work.parent / f"{work.name}.pdf").unlink(missing_ok=True)
