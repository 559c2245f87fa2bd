"""Real PDFs: compiled once per chunk, split per student, each student's pages their own."""

import shutil
import subprocess

import pikepdf
import pytest

from deepdrill.generator.assignment import Student, parse_assignment
from deepdrill.generator.build import build, sheet_path

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("needs_pdflatex")]


def pages(path):
    with pikepdf.open(path) as pdf:
        return len(pdf.pages)


def text(path):
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


@pytest.fixture(scope="module")
def pdf_build(tmp_path_factory, example_assignment, example_students):
    out = tmp_path_factory.mktemp("pdf") / "out"
    build(example_assignment, example_students, out, pdf=True, workers=2)
    return out


def sheet(out, kind, folder):
    return sheet_path(out, kind, folder)


def test_combined_and_per_student_pdfs(pdf_build, example_students):
    folders = sorted(p.name for p in (pdf_build / "students").iterdir())
    assert len(folders) == len(example_students)
    for kind in ("problems", "solutions"):
        total = sum(pages(sheet(pdf_build, kind, f)) for f in folders)
        assert total == pages(pdf_build / f"{kind}.pdf")
    for f in folders:  # a worked solution is longer than the problem it solves
        assert pages(sheet(pdf_build, "solutions", f)) >= pages(sheet(pdf_build, "problems", f))
        # what is handed out holds no solutions (they wait beside it for the deadline)
        assert sorted(p.name for p in (pdf_build / "students" / f).iterdir()) == \
            ["answers.html", "problems.pdf", "submission.json"]


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_each_students_pdf_is_theirs(pdf_build, example_students):
    ids = [s.id for s in example_students]
    for s in example_students:
        for kind in ("problems", "solutions"):
            t = text(sheet(pdf_build, kind, s.id))
            assert f"({s.id})" in t
            assert not any(f"({other})" in t for other in ids if other != s.id)
    assert "Question 1" in text(pdf_build / "students" / ids[0] / "problems.pdf")
    assert "Solution" not in text(pdf_build / "students" / ids[0] / "problems.pdf")


def test_hostile_text_compiles_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    title = rf"Set \immediate\write18{{touch {marker}}} 100% $\input{{/etc/passwd}}$ _^~#&"
    a = parse_assignment({"title": title, "course": "C & D", "seed": 1,
                          "questions": [{"type": "conv2d_forward", "points": 1}]})
    students = [Student("x1", "Łukasz 李 \x07 O'Neil \\textbf{bold}"), Student("x2", "")]
    build(a, students, tmp_path / "out", pdf=True, workers=1)
    assert pages(tmp_path / "out" / "problems.pdf") >= 2
    assert not marker.exists()


def test_missing_pdflatex_is_a_clear_error(tmp_path, monkeypatch, example_assignment):
    from deepdrill.errors import DeepdrillError
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DeepdrillError, match="pdflatex not found; install TeX Live"):
        build(example_assignment, [Student("a", "A")], tmp_path / "o", pdf=True)


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="needs poppler-utils")
def test_no_page_ends_on_a_heading(pdf_build):
    """"Submit under" stays with its list of fields, a question title with its text."""
    for kind in ("problems", "solutions"):
        for number, page in enumerate(text(pdf_build / f"{kind}.pdf").split("\f")[:-1], 1):
            body = [line.strip() for line in page.splitlines() if line.strip()][:-1]  # no footer
            assert body, f"{kind}.pdf page {number} is empty"
            last = body[-1]
            assert not last.startswith(("Submit under", "Question ", "Solution")), \
                f"{kind}.pdf page {number} ends with {last!r}"
