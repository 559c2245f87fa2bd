"""Feedback sheets and the class report: what they say, checked on the report's data and
on the real PDFs (one compile of the example class)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deepdrill.grader.batch import collect_files, grade_files, load_key, write_reports
from deepdrill.grader.class_report import context, discrimination, typeset_class_report
from deepdrill.grader.feedback import rows_and_entries, sheet_context, typeset_feedback, value_tex

ROOT = Path(__file__).resolve().parents[2]


def test_values_are_typeset_with_wrong_and_carried_entries_marked():
    assert value_tex(2.5) == "$2.5$"
    assert value_tex([[1, 2], [3, 4]], wrong=[1], carried=[2]) == \
        r"$\begin{bmatrix}1 & \ddwrong{2} \\ \ddcarried{3} & 4\end{bmatrix}$"
    assert value_tex([[16, 8, 8], [1024]]) == \
        r"$\begin{array}{l}\left(16,\ 8,\ 8\right) \\ \left(1024\right)\end{array}$"
    assert value_tex(None) == r"\emph{no answer}"


@pytest.mark.parametrize("hostile", [r"\input{/etc/passwd}", "$x^{", ["a", [1, "}"]], True,
                                     float("nan"), "x" * 500])
def test_anything_a_student_wrote_is_shown_as_escaped_text(hostile):
    tex = value_tex(hostile)
    assert r"\input" not in tex.replace(r"\textbackslash{}input", "")
    assert tex.startswith(r"\texttt{") and len(tex) < 400


def test_discrimination_is_the_correlation_with_the_rest_of_the_total():
    item = np.array([0, 1, 1, 0, 1.0])
    total = item + np.array([2, 5, 6, 1, 7.0])
    assert discrimination(item, total) == pytest.approx(
        np.corrcoef(item, total - item)[0, 1])
    assert discrimination(np.ones(5), total) is None  # everyone right: it separates no one
    assert discrimination(item[:2], total[:2]) is None


@pytest.fixture(scope="module")
def graded(tmp_path_factory, example_build):
    out = tmp_path_factory.mktemp("reports")
    files, skipped = collect_files([ROOT / "examples" / "submissions"])
    key = load_key(example_build / "key.json")
    write_reports(grade_files(key, files, skipped=skipped), out)
    return json.loads((out / "report.json").read_text()), out


def test_the_class_report_counts_every_student_once(graded):
    report, _ = graded
    ctx = context(report)
    statuses = [r["status"] for r in report["students"]]
    assert ctx["graded"] == statuses.count("graded")
    assert sum(n for _, n in ctx["histogram"][:-1]) == ctx["graded"]
    assert [m["id"] for m in ctx["missing"]] == \
        [r["id"] for r in report["students"] if r["status"] == "no_submission"]
    assert {p["status"] for p in ctx["problems"]} >= {"unreadable", "unknown_student"}
    q1 = ctx["questions"][0]
    assert q1["mistakes"] and all(m["count"] >= 1 and m["words"] for m in q1["mistakes"])
    graded_entry = next(e for e in report["submissions"] if e["status"] == "graded")
    assert {f["name"] for f in q1["fields"]} == set(graded_entry["questions"]["q1"]["fields"])


def test_each_student_gets_their_own_feedback(graded):
    report, _ = graded
    pairs = rows_and_entries(report)
    assert [r["id"] for r, _ in pairs] == [s["id"] for s in report["students"]
                                          if s["status"] != "unknown_student" and s["id"]]
    for row, entry in pairs:
        ctx = sheet_context(report, row, entry)
        assert ctx["total"] == row["total"]
        assert sum(q["score"] for q in ctx["questions"]) == pytest.approx(row["total"], abs=1e-3)


@pytest.mark.slow
@pytest.mark.usefixtures("needs_pdflatex")
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_the_pdfs_compile_and_each_feedback_sheet_is_its_students(graded):
    report, out = graded
    sheets = typeset_feedback(report, out / "feedback", lambda sid: sid, workers=2)
    ids = [r["id"] for r, _ in rows_and_entries(report)]
    assert [p.stem for p in sheets] == ids and (out / "feedback" / "feedback.pdf").exists()
    for sid, pdf in zip(ids, sheets):
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert f"({sid})" in text and not any(f"({o})" in text for o in ids if o != sid)
    mistaken = next(p for p, (row, _) in zip(sheets, rows_and_entries(report))
                    if row["id"] == "s003")
    text = subprocess.run(["pdftotext", str(mistaken), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "It looks like" in text and "carried forward" in text
    pdf = typeset_class_report(report, out / "class_report.pdf")
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert "Class report" in text and "Distribution of totals" in text
    assert not list(out.glob(".*tex*"))  # no LaTeX work left behind
