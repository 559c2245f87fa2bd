"""deepdrill's Python API: what the ``deepdrill`` command does, for scripts that connect a
course to its LMS. The command is a thin layer over these functions (it adds progress
bars, signals and printing), so a script gets exactly what the command gives.

    from deepdrill import api

    assignment = api.load_assignment("set3.toml")
    students = api.load_roster("canvas_gradebook_export.csv")  # plain, Canvas or Moodle
    built = api.build(assignment, students, "output/set3")
    graded = api.grade("output/set3/key.json", ["returned/"], out="output/set3/grades")
    for row in graded.rows:
        print(row.id, row.total, row.status)
    api.export_moodle("output/set3/key.json", "bank.xml")
    api.canvas_grades(graded.report_json, "canvas_gradebook_export.csv", "canvas.csv")

Errors are :class:`deepdrill.errors.DeepdrillError` (one line saying what to change).
Names and signatures here are kept stable; modules behind them may move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepdrill.errors import DeepdrillError
from deepdrill.grader.batch import MAX_BYTES, Key, Report
from deepdrill.grader.batch import load_key as _load_key

if TYPE_CHECKING:
    from deepdrill.generator.assignment import Assignment, Student

__all__ = ["Assignment", "Student", "Key", "Report", "BuildResult", "GradeResult", "Row",
           "DeepdrillError", "load_assignment", "load_roster", "build", "load_key", "grade",
           "export_moodle", "export_canvas_quiz", "export_gradescope", "export_prairielearn",
           "canvas_grades", "moodle_grades"]

Progress = Callable[[str, int, Callable[[Callable[[int], None]], Any]], Any]


def __getattr__(name: str) -> Any:
    """``Assignment`` and ``Student``, imported when first asked for: they bring the
    assignment schema's validator, which grading never needs (a tenth of a second of
    every ``deepdrill grade``)."""
    if name in ("Assignment", "Student"):
        from deepdrill.generator import assignment

        return getattr(assignment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_assignment(path: str | Path) -> Assignment:
    """An assignment file (TOML), validated."""
    from deepdrill.generator.assignment import load_assignment as _load_assignment

    return _load_assignment(Path(path))


def load_roster(path: str | Path, notes: list[str] | None = None) -> list[Student]:
    """The students of a roster: a plain id,name CSV, or a Canvas gradebook or Moodle
    participants/grades export as downloaded. ``notes`` receives which columns were used
    and which rows were skipped, and why."""
    from deepdrill.generator.assignment import load_roster as _load_roster

    return _load_roster(Path(path), notes)[0]


@dataclass(frozen=True)
class BuildResult:
    out: Path
    manifest: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def key(self) -> Path:
        return self.out / "key.json"


def build(assignment: Assignment | str | Path, students: Sequence[Student], out: str | Path, *,
          pdf: bool = True, workers: int | None = None, fresh: bool = False,
          roster_info: dict[str, Any] | None = None,
          progress: Progress | None = None) -> BuildResult:
    """One personal sheet per student in ``out`` (see the README's table of files): built
    beside the previous build and switched over as one unit; unchanged students' sheets
    are reused unless ``fresh``."""
    from deepdrill.generator.assignment import Assignment
    from deepdrill.generator.build import build as _build

    if not isinstance(assignment, Assignment):
        assignment = load_assignment(assignment)
    notes: list[str] = []
    manifest = _build(assignment, list(students), Path(out), pdf=pdf, roster_info=roster_info,
                      workers=workers, progress=progress, fresh=fresh, notes=notes)
    return BuildResult(Path(out), manifest, notes)


def load_key(path: str | Path, read: Callable[[], bytes] | None = None) -> Key:
    """A build's answer key (refused with a message if it is not one this deepdrill grades
    faithfully). ``read``, if given, gives the file's bytes (read already, or being read:
    see :func:`deepdrill.files.read_soon`); an OSError it raises is reported as one
    reading the file."""
    return _load_key(Path(path), read)


@dataclass(frozen=True)
class Row:
    """One student's line of grades.csv."""

    id: str
    name: str
    status: str  # graded, no_submission, unreadable, id_mismatch, unknown_student, ...
    total: float
    carried_forward: float
    questions: dict[str, float]  # score per question label
    file: str
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GradeResult:
    report: Report
    grades_csv: Path | None = None
    report_json: Path | None = None

    @property
    def rows(self) -> list[Row]:
        """A row per student of the key, then one per file that belongs to no student."""
        return [Row(r["id"], r["name"], r["status"], r["total"], r["carried_forward"],
                    dict(r["questions"]), r["file"], tuple(r.get("notes", ())))
                for r in self.report.student_rows()]


def grade(key: Key | str | Path, submissions: Iterable[str | Path],
          out: str | Path | None = None, *, max_bytes: int = MAX_BYTES,
          workers: int | None = None, progress: Progress | None = None,
          pdf: bool = False) -> GradeResult:
    """Grade files and folders of submissions; with ``out``, write grades.csv and
    report.json there (together, under the folder's lock), and with ``pdf`` the feedback
    sheets and the class report too. ``progress(label, total, body)`` wraps the grading
    as it does the build's."""
    from deepdrill.grader.batch import collect_files, grade_files, out_locked, write_reports

    key = key if isinstance(key, Key) else load_key(key)
    files, skipped = collect_files([Path(p) for p in submissions])

    def graded(tick: Callable[[int], None]) -> Report:
        return grade_files(key, files, max_bytes, tick, workers, skipped=skipped)
    run = (lambda: progress("grading", len(files), graded)) if progress else \
        (lambda: graded(lambda n: None))
    if out is None:
        return GradeResult(run())
    out = Path(out)
    with out_locked(out):
        report = run()
        csv_path, json_path = write_reports(report, out)
    if pdf:
        typeset_reports(key, json_path, out)
    return GradeResult(report, csv_path, json_path)


def typeset_reports(key: Key, report_json: Path, out: Path,
                    progress: Progress | None = None) -> None:
    """Feedback sheets (``out/feedback/<id>.pdf``, all in ``feedback.pdf``) and the class
    report (``out/class_report.pdf``) from a written report, switched into ``out`` as one
    unit (a failure leaves the previous ones)."""
    import shutil

    import orjson

    from deepdrill.files import janitor, locked, settle, staging, switch_over
    from deepdrill.generator.pdf import pdflatex
    from deepdrill.grader.class_report import typeset_class_report
    from deepdrill.grader.feedback import rows_and_entries, typeset_feedback

    pdflatex()
    report = orjson.loads(Path(report_json).read_bytes())
    folder = {sid: s.folder for sid, s in key.students.items()}
    n = len(rows_and_entries(report))
    with locked(out, "grade"), janitor(out):
        settle(out)
        stage = staging(out)
        try:
            def sheets(tick: Callable[[int], None]) -> Any:
                return typeset_feedback(report, stage / "feedback",
                                        lambda sid: folder.get(sid, sid), tick=tick)
            progress("feedback", n, sheets) if progress else sheets(lambda k: None)
            typeset_class_report(report, stage / "class_report.pdf")
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        switch_over(out, stage, ["feedback", "class_report.pdf"],
                    ["feedback", "class_report.pdf"])


# -- exports ------------------------------------------------------------------------------

def export_moodle(key: str | Path, out: str | Path, variants: int | None = None) -> Path:
    """A Moodle XML question bank of a build's variants (a category per question)."""
    from deepdrill.export.moodle import write_bank

    write_bank(Path(key), Path(out), variants)
    return Path(out)


def export_canvas_quiz(key: str | Path, out: str | Path, variants: int | None = None) -> Path:
    """A Canvas Classic Quizzes QTI 1.2 zip (a question group per question)."""
    from deepdrill.export.qti import write_quiz

    write_quiz(Path(key), Path(out), variants)
    return Path(out)


def export_gradescope(key: str | Path, out: str | Path, *, roster: str | Path | None = None,
                      strict: bool = False, expected: str = "after_due_date",
                      max_bytes: int = MAX_BYTES) -> Path:
    """A Gradescope autograder zip grading uploads with deepdrill's grader."""
    from deepdrill.export.gradescope import write_autograder

    write_autograder(Path(key), Path(out), Path(roster) if roster is not None else None, strict,
                     expected, max_bytes)
    return Path(out)


def export_prairielearn(assignment: str | Path, out: str | Path) -> list[Path]:
    """PrairieLearn question directories that draw and grade with deepdrill itself."""
    from deepdrill.export.prairielearn import write_questions

    return write_questions(load_assignment(assignment), Path(out))


def canvas_grades(report_json: str | Path, canvas_export: str | Path, out: str | Path,
                  column: str | None = None, missing: str = "blank") -> list[str]:
    """Grades as a CSV for Canvas's Grades > Import, on the rows of Canvas's own export;
    returns the notes (students not matched, scores scaled)."""
    from deepdrill.export.gradebook import write_canvas_grades

    made = write_canvas_grades(Path(report_json), Path(canvas_export), Path(out), column, missing)
    return list(made.notes)


def moodle_grades(report_json: str | Path, out: str | Path,
                  moodle_export: str | Path | None = None, item: str | None = None,
                  out_of: float | None = None, missing: str = "blank",
                  feedback: bool = True) -> list[str]:
    """Grades as a CSV for Moodle's Grades > Import > CSV file; returns the notes."""
    from deepdrill.export.gradebook import write_moodle_grades

    made = write_moodle_grades(Path(report_json), Path(out),
                               Path(moodle_export) if moodle_export else None, item, out_of,
                               missing, feedback)
    return list(made.notes)
