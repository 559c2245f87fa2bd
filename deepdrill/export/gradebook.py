"""Grades out: a class's ``report.json`` as the CSV files Canvas's and Moodle's gradebooks import.

* Canvas (Grades > Import): the identity columns of Canvas's own gradebook export, copied
  row by row, then one assignment column: an existing assignment as the export heads it
  (``Title (12345)``, matched by id) or a new title, which Canvas offers to create. A
  "Points Possible" row carries the assignment's points.
* Moodle (Grades > Import > CSV file): a column that identifies each user (``ID number``,
  and ``Email address`` when a Moodle export is given), the grade, and a feedback column;
  the instructor maps them in Moodle's form ("Map from" / "Map to").

A student's grade is the report's total when their file was graded (or was unreadable,
which scores 0); a student without a counted file gets an empty cell, which both systems
read as "no grade", or 0 with ``missing="zero"``. Text copied from a roster goes through
:func:`deepdrill.grader.batch.spreadsheet_safe`, as in ``grades.csv``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import click

from deepdrill.errors import DeepdrillError
from deepdrill.files import write_out
from deepdrill.grader.batch import REPORT_FORMAT, spreadsheet_safe

from .commands import export
from deepdrill.generator.rosters import EMAIL, ID_NUMBER, USERNAME, Roster, read_roster

SCORED = ("graded", "unreadable")  # statuses whose total is the grade (0 for an unreadable file)
AWAITING_TA = ("id_mismatch", "error")  # never a grade until a TA has looked
CANVAS_POINTS_ROW = "    Points Possible"  # as Canvas's own export writes it
MOODLE_MAX_GRADE = 100.0  # Moodle refuses larger grades unless the site allows unlimited ones


@dataclass(frozen=True)
class Grade:
    id: str
    name: str
    status: str
    total: float
    questions: dict[str, float]
    notes: tuple[str, ...] = ()

    def points(self, missing: str = "blank") -> float | None:
        """The grade to import: the total, or None for "leave the cell empty"."""
        if self.status in SCORED:
            return self.total
        if self.status == "no_submission" and missing == "zero":
            return 0.0
        return None


@dataclass
class Grades:
    """The students of a report.json (``deepdrill grade``), in the key's order."""

    title: str
    max_score: float
    points: dict[str, float]  # per question label
    students: dict[str, Grade] = field(default_factory=dict)


def load_grades(path: Path) -> Grades:
    """The per-student rows of a report.json written by ``deepdrill grade``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != REPORT_FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {REPORT_FORMAT}")
        a = data["assignment"]
        grades = Grades(a["title"], float(data["summary"]["max_score"]),
                        {q["label"]: float(q["points"]) for q in a["questions"]})
        for r in data["students"]:
            if r["status"] in ("unknown_student",) or not r["id"]:
                continue  # a file for no one on the roster: there is no gradebook row for it
            grades.students[r["id"]] = Grade(r["id"], r["name"], r["status"], float(r["total"]),
                                             r["questions"], tuple(r.get("notes", ())))
    except OSError as err:
        raise DeepdrillError(f"cannot read {path}: {err.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise DeepdrillError(f"{path} is not a deepdrill grade report ({err}); pass the "
                             f"report.json that `deepdrill grade` wrote") from None
    return grades


def points_text(value: float | None) -> str:
    """A score as both gradebooks read it: plain decimals, at most 2 places (Canvas compares
    with the stored score rounded to 2 places), empty for no grade."""
    if value is None:
        return ""
    return f"{round(value, 2):.2f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class GradeFile:
    """A gradebook CSV's text, its number of student rows, and what to tell the instructor."""

    text: str
    rows: int
    notes: list[str]


def _grade_file(rows: list[list[str]], notes: list[str]) -> GradeFile:
    """The header and rows as CSV text: comma-separated, RFC 4180 quoting, no byte-order
    mark (both importers read UTF-8 and a comma by default)."""
    text = io.StringIO(newline="")
    csv.writer(text).writerows(rows)
    students = sum(1 for r in rows[1:] if r[0] != CANVAS_POINTS_ROW)
    return GradeFile(text.getvalue(), students, notes)


def _safe_cells(cells: list[str] | tuple[str, ...]) -> list[str]:
    return [spreadsheet_safe(c) for c in cells]


def _at(cells: tuple[str, ...], index: int | None, strip: bool = True) -> str:
    if index is None or index >= len(cells):
        return ""
    return cells[index].strip() if strip else cells[index]


# -- Canvas ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CanvasColumn:
    header: str
    points: float | None  # from the export's Points Possible row; None for a new assignment
    new: bool


def canvas_grades_csv(grades: Grades, roster: Roster, column: str | None = None,
                      missing: str = "blank") -> GradeFile:
    """Canvas gradebook CSV for ``grades``, on the rows of Canvas's export ``roster``, with
    notes on what could not be matched or was scaled."""
    if roster.kind != "canvas":
        raise DeepdrillError(f"{roster.source} is not a Canvas gradebook export; download it "
                             f"in Canvas with Grades > Export > Export Entire Gradebook")
    section = roster.table.column("Section")
    if section is None:
        raise DeepdrillError(f"{roster.source}: no Section column; Canvas needs the identity "
                             f"columns up to Section, as its own export writes them")
    target = _canvas_column(grades, roster, column)
    scale, notes = _canvas_scale(grades, target)
    blank = [""] * section
    rows = [[*roster.table.header[:section + 1], target.header],
            [CANVAS_POINTS_ROW, *blank, points_text(target.points or grades.max_score)]]
    canvas_id = 2 if roster.table.header[0].strip() == "LastName" else 1
    used: set[str] = set()
    unmatched = []
    for e in roster.entries:
        g = grades.students.get(e.id) or grades.students.get(_at(e.cells, canvas_id))
        if g is None:
            unmatched.append(e.id)
        else:
            used.add(g.id)
        value = g.points(missing) if g else None
        identity = [_at(e.cells, i, strip=False) for i in range(section + 1)]
        rows.append([*_safe_cells(identity), points_text(None if value is None else value * scale)])
    notes += _match_notes(grades, used, unmatched, "the Canvas export", missing)
    return _grade_file(rows, notes)


def _canvas_column(grades: Grades, roster: Roster, wanted: str | None) -> CanvasColumn:
    """The assignment column: the export's own when ``wanted`` (default: the assignment's
    title) names one, by its whole header or by the title before " (id)"; else a new one."""
    title = (wanted or grades.title).strip()
    header = roster.table.header
    first_assignment = (roster.table.column("Section") or 0) + 1
    for i, h in enumerate(header[first_assignment:], start=first_assignment):
        if h == title or _canvas_title(h) == title:
            return CanvasColumn(h, _canvas_points(roster, i), new=False)
    return CanvasColumn(title, None, new=True)


def _canvas_title(header: str) -> str:
    """"HW 3 (48213)" -> "HW 3": Canvas's export heads a column with the title and the id."""
    head, sep, tail = header.rpartition(" (")
    return head if sep and tail.endswith(")") and tail[:-1].isdigit() else header


def _canvas_points(roster: Roster, index: int) -> float | None:
    for _, cells in roster.table.rows:
        if cells and "Points Possible" in cells[0] and index < len(cells):
            try:
                return float(cells[index].strip().replace(",", "."))
            except ValueError:
                return None
    return None


def _canvas_scale(grades: Grades, target: CanvasColumn) -> tuple[float, list[str]]:
    if target.new:
        return 1.0, [f"column {target.header!r} is new: Canvas offers to create the assignment, "
                     f"worth {points_text(grades.max_score)} points"]
    if not target.points or abs(target.points - grades.max_score) < 1e-9:
        return 1.0, [f"column {target.header!r}: the assignment in Canvas"]
    return target.points / grades.max_score, [
        f"column {target.header!r} is worth {points_text(target.points)} points in Canvas, "
        f"the assignment {points_text(grades.max_score)}: scores scaled to "
        f"{points_text(target.points)}"]


def _match_notes(grades: Grades, used: set[str], unmatched: list[str], where: str,
                 missing: str) -> list[str]:
    notes = []
    absent = [g.id for g in grades.students.values() if g.id not in used]
    if absent:
        notes.append(f"{len(absent)} graded student(s) not in {where}, so not in the file: "
                     f"{', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
    if unmatched:
        notes.append(f"{len(unmatched)} row(s) of {where} with no student in the report: "
                     f"left empty ({', '.join(unmatched[:10])}{' ...' if len(unmatched) > 10 else ''})")
    waiting = [g.id for g in grades.students.values() if g.id in used and g.status in AWAITING_TA]
    if waiting:
        notes.append(f"left empty until a TA has looked ({', '.join(waiting)}): see report.json")
    if missing == "blank":
        none = sum(g.status == "no_submission" for g in grades.students.values() if g.id in used)
        if none:
            notes.append(f"{none} student(s) without a submission left empty (--missing zero "
                         f"gives 0)")
    return notes


# -- Moodle ----------------------------------------------------------------------------------

def moodle_grades_csv(grades: Grades, roster: Roster | None = None, item: str | None = None,
                      out_of: float | None = None, missing: str = "blank",
                      feedback: bool = True) -> GradeFile:
    """Moodle grade-import CSV for ``grades``, with notes: a row per student, identified
    by the Moodle export's ID number and email when ``roster`` is one, else by deepdrill's id
    under "ID number"."""
    if roster is not None and roster.kind != "moodle":
        raise DeepdrillError(f"{roster.source} is not a Moodle export; download the "
                             f"participants or the grades (Grades > Export) as CSV")
    item = (item or grades.title).strip()
    scale = out_of / grades.max_score if out_of else 1.0
    identity = _moodle_identity(roster)
    rows = [[*(h for h, _ in identity), item, *([f"Feedback for {item}"] if feedback else [])]]
    entries = roster.by_id() if roster else {}
    used, notes = set(), []
    for g in grades.students.values():
        if roster is not None and g.id not in entries:
            continue
        used.add(g.id)
        value = g.points(missing)
        entry = entries.get(g.id)
        cells = [_at(entry.cells, i) if entry else g.id for _, i in identity]
        rows.append([*_safe_cells(cells), points_text(None if value is None else value * scale),
                     *([_moodle_feedback(g, grades)] if feedback else [])])
    notes += _moodle_notes(grades, roster, used, out_of, missing)
    return _grade_file(rows, notes)


def _moodle_identity(roster: Roster | None) -> list[tuple[str, int | None]]:
    """The identifying columns: the export's ID number, email and username columns that
    exist (under Moodle's own headers), or deepdrill's id as "ID number"."""
    if roster is None:
        return [("ID number", None)]
    found = [(roster.table.header[i], i) for names in (ID_NUMBER, EMAIL, USERNAME)
             if (i := roster.table.column(*names)) is not None]
    return found


def _moodle_feedback(g: Grade, grades: Grades) -> str:
    if g.status == "no_submission":
        return "no submission"
    if g.status in AWAITING_TA:
        return "not graded yet: your instructor is checking your submission"
    if g.status == "unreadable":
        return "your file could not be read, so it scored 0; see your instructor"
    parts = [f"{label} {points_text(g.questions.get(label, 0.0))}/{points_text(p)}"
             for label, p in grades.points.items()]
    return "deepdrill: " + ", ".join(parts)


def _moodle_notes(grades: Grades, roster: Roster | None, used: set[str], out_of: float | None,
                  missing: str) -> list[str]:
    notes = _match_notes(grades, used, [], "the Moodle export", missing) if roster else []
    top = out_of or grades.max_score
    if top > MOODLE_MAX_GRADE:
        notes.append(f"grades go up to {points_text(top)}: Moodle refuses grades over "
                     f"{points_text(MOODLE_MAX_GRADE)} unless the site allows unlimited grades; "
                     f"--out-of 100 gives percentages")
    idnumber = roster.table.column(*ID_NUMBER) if roster else None
    if roster is not None and idnumber is not None:
        no_idnumber = [e.id for e in roster.entries if e.id in used and not _at(e.cells, idnumber)]
        if no_idnumber:
            notes.append(f"{len(no_idnumber)} student(s) have no ID number: map "
                         f"'Email address' to the user's email in Moodle's import form")
    return notes


# -- commands ----------------------------------------------------------------------------------

_report_opt = click.option("--report", "report_path", required=True,
                           type=click.Path(exists=True, dir_okay=False, path_type=Path),
                           help="The report.json written by `deepdrill grade`.")
_out_opt = click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
                        help="The CSV file to write.")
_missing_opt = click.option("--missing", type=click.Choice(["blank", "zero"]), default="blank",
                            show_default=True,
                            help="Students without a submission: an empty cell (no grade) or 0.")


def load_roster_file(path: Path) -> Roster:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DeepdrillError(f"cannot read roster {path}: {err.strerror}") from None
    return read_roster(raw, str(path))


def write_canvas_grades(report_path: Path, roster_path: Path, out: Path,
                        column: str | None = None, missing: str = "blank") -> GradeFile:
    """The Canvas gradebook CSV of a report in ``out``, on the rows of Canvas's export."""
    made = canvas_grades_csv(load_grades(report_path), load_roster_file(roster_path), column,
                             missing)
    write_out(out, made.text.encode("utf-8"))
    return made


def write_moodle_grades(report_path: Path, out: Path, roster_path: Path | None = None,
                        item: str | None = None, out_of: float | None = None,
                        missing: str = "blank", feedback: bool = True) -> GradeFile:
    """The Moodle grade-import CSV of a report in ``out``."""
    roster = load_roster_file(roster_path) if roster_path else None
    made = moodle_grades_csv(load_grades(report_path), roster, item, out_of, missing, feedback)
    write_out(out, made.text.encode("utf-8"))
    return made


def _said(out: Path, made: GradeFile) -> None:
    for note in made.notes:
        click.echo(f"  {note}")
    click.echo(f"wrote {out} ({made.rows} student row(s))")


@export.command("canvas-grades")
@_report_opt
@click.option("--roster", "roster_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Canvas's gradebook export (Grades > Export > Export Entire Gradebook), as "
                   "downloaded.")
@_out_opt
@click.option("--column", metavar="TITLE",
              help="The assignment column: an existing assignment as the export heads it "
                   "('HW 3 (48213)', or just its title) or a new title [default: the "
                   "assignment's title].")
@_missing_opt
def canvas_grades(report_path: Path, roster_path: Path, out: Path, column: str | None,
                  missing: str) -> None:
    """Grades as a CSV for Canvas's Grades > Import.

    The rows and identity columns (Student, ID, SIS User ID, ..., Section) are those of
    Canvas's own export, so every student is matched by their Canvas ID; one assignment
    column follows. For an assignment that exists in Canvas with other points possible,
    the scores are scaled to those points.

    \b
    Example:
      deepdrill export canvas-grades --report out/grades/report.json \\
        --roster 2026-03-02_DL101_Grades.csv --out canvas.csv
    """
    _said(out, write_canvas_grades(report_path, roster_path, out, column, missing))


@export.command("moodle-grades")
@_report_opt
@click.option("--roster", "roster_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Moodle export (participants, or Grades > Export as CSV): its ID number "
                   "and email columns identify the students [default: deepdrill's ids, under "
                   "'ID number'].")
@_out_opt
@click.option("--item", metavar="NAME", help="The grade column's header (a new grade item's "
                                            "name) [default: the assignment's title].")
@click.option("--out-of", type=click.FloatRange(min=0, min_open=True), metavar="POINTS",
              help="Scale the grades to this maximum (e.g. 100) [default: the assignment's "
                   "points].")
@click.option("--feedback/--no-feedback", default=True, show_default=True,
              help="A feedback column with the points per question.")
@_missing_opt
def moodle_grades(report_path: Path, roster_path: Path | None, out: Path, item: str | None,
                  out_of: float | None, feedback: bool, missing: str) -> None:
    """Grades as a CSV for Moodle's Grades > Import > CSV file.

    In Moodle's form, map "ID number" to the user's ID number (or "Email address" to their
    email), the grade column to the grade item (or "new grade item"), and the feedback
    column to "feedback for" that item.

    \b
    Example:
      deepdrill export moodle-grades --report out/grades/report.json \\
        --roster courseid_42_participants.csv --out moodle.csv
    """
    _said(out, write_moodle_grades(report_path, out, roster_path, item, out_of, missing,
                                   feedback))
