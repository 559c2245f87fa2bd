"""Grades out: Canvas's gradebook CSV and Moodle's grade-import CSV, read back as CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepdrill.cli import cli
from deepdrill.errors import DeepdrillError
from deepdrill.export.gradebook import (CANVAS_POINTS_ROW, canvas_grades_csv, load_grades,
                                        moodle_grades_csv)
from deepdrill.generator.rosters import read_roster
from deepdrill.grader.batch import collect_files, grade_files, load_key, write_reports

TITLE = "Problem set 3: CNN layers, softmax and normalisation"

# Canvas's export for the example class: SIS User IDs are deepdrill's ids. s005's name
# starts with "=" as Canvas writes such a name; s006 is missing; an extra Canvas student
# has no deepdrill sheet; the assignment exists, worth 100 points.
CANVAS = (
    "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Notes,"
    f"\"{TITLE} (48213)\",Other (7),Current Score\n"
    "    Points Possible,,,,,,100.00,5.00,(read only)\n"
    '"Lovelace, Ada",1001,s001,ada,Section A,,,,\n'
    '"Turing, Alan",1002,s002,alan,Section A,,,,\n'
    '"Hopper, Grace",1003,s003,grace,"Section A and Section B",,,,\n'
    "\"O'Brien-Müller, Zoë\",1004,s004,zoe,Section B,,,,\n"
    '"=""=HYPERLINK(""http://x"")""",1005,s005,kurt,Section B,,,,\n'
    '"New, Nora",1007,s007,nora,Section B,,,,\n'
    '"Student, Test",1099,,t,Section A,,,,\n'
)

MOODLE = (
    "First name,Last name,ID number,Email address\n"
    "Ada,Lovelace,s001,ada@example.edu\n"
    "Alan,Turing,s002,alan@example.edu\n"
    "Grace,Hopper,s003,grace@example.edu\n"
    "Kurt,Gödel,s005,kurt@example.edu\n"
    "Yann,Le Cun,,yann@example.edu\n"
)


@pytest.fixture(scope="module")
def report(tmp_path_factory, example_build, examples) -> Path:
    """The example class graded: s001/s002 full marks, s003/s004 partly, s005 unreadable,
    s006 without a submission, s999 not on the roster."""
    out = tmp_path_factory.mktemp("grades")
    files, skipped = collect_files([examples / "submissions"])
    write_reports(grade_files(load_key(example_build / "key.json"), files, workers=1,
                              skipped=skipped), out)
    return out / "report.json"


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def canvas_roster():
    return read_roster(CANVAS.encode(), "canvas.csv")


def test_canvas_csv_keeps_canvas_identity_columns_and_rows(report):
    made = canvas_grades_csv(load_grades(report), canvas_roster())
    table = rows(made.text)
    header = table[0]
    # Canvas's own header checks: Student ... ID, then SIS User ID, SIS Login ID, Section.
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                      f"{TITLE} (48213)"]
    assert table[1] == [CANVAS_POINTS_ROW, "", "", "", "", "100"]
    by_id = {r[2]: r for r in table[2:]}
    assert list(by_id) == ["s001", "s002", "s003", "s004", "s005", "s007"]  # no Test Student
    assert by_id["s001"][-1] == "100"  # 50 of 50, scaled to Canvas's 100 points
    assert by_id["s003"][-1] == "50"  # 25 of 50, scaled to 100
    assert by_id["s005"][-1] == "0"  # unreadable file: 0
    assert by_id["s007"][-1] == ""  # no deepdrill student: no grade
    assert by_id["s003"][4] == "Section A and Section B"
    assert by_id["s005"][0] == "'=\"=HYPERLINK(\"http://x\")\""  # neutralised for Excel
    assert made.rows == 6
    notes = "\n".join(made.notes)
    assert "worth 100 points in Canvas" in notes and "scaled to 100" in notes
    assert "not in the Canvas export" in notes and "s006" in notes
    assert "with no student in the report" in notes and "s007" in notes


def test_canvas_new_assignment_column_and_missing_as_zero(report):
    made = canvas_grades_csv(load_grades(report), canvas_roster(), column="deepdrill PS3",
                             missing="zero")
    table = rows(made.text)
    assert table[0][-1] == "deepdrill PS3"
    assert table[1][-1] == "50"  # a new assignment gets the key's points
    assert {r[2]: r[-1] for r in table[2:]}["s003"] == "25"
    assert "Canvas offers to create the assignment" in made.notes[0]


def test_canvas_column_matched_by_whole_header(report):
    made = canvas_grades_csv(load_grades(report), canvas_roster(), column="Other (7)")
    assert rows(made.text)[1][-1] == "5"
    assert {r[2]: r[-1] for r in rows(made.text)[2:]}["s001"] == "5"


def test_canvas_needs_a_canvas_export(report, examples):
    plain = read_roster((examples / "roster.csv").read_bytes())
    with pytest.raises(DeepdrillError, match="not a Canvas gradebook export"):
        canvas_grades_csv(load_grades(report), plain)


def test_moodle_csv_without_a_roster_uses_deepdrill_ids(report):
    made = moodle_grades_csv(load_grades(report))
    table = rows(made.text)
    assert table[0] == ["ID number", TITLE, f"Feedback for {TITLE}"]
    got = {r[0]: r[1:] for r in table[1:]}
    assert list(got) == ["s001", "s002", "s003", "s004", "s005", "s006"]
    assert got["s001"][0] == "50" and got["s006"][0] == ""
    assert got["s003"][1].startswith("deepdrill: q1 7.33/10, q2 4/10")
    assert got["s006"][1] == "no submission"
    assert made.notes == []


def test_moodle_csv_with_moodle_export_and_percentages(report):
    moodle = read_roster(MOODLE.encode(), "moodle.csv")
    made = moodle_grades_csv(load_grades(report), moodle, item="PS3", out_of=100,
                             feedback=False, missing="zero")
    table = rows(made.text)
    assert table[0] == ["ID number", "Email address", "PS3"]
    assert table[1:] == [["s001", "ada@example.edu", "100"], ["s002", "alan@example.edu", "100"],
                         ["s003", "grace@example.edu", "50"], ["s005", "kurt@example.edu", "0"]]
    assert "not in the Moodle export" in made.notes[0] and "s004" in made.notes[0]


def test_moodle_warns_over_100_and_for_missing_id_numbers(report):
    moodle = read_roster(MOODLE.replace("Kurt,Gödel,s005", "Kurt,Gödel,").encode(), "m.csv")
    grades = load_grades(report)
    grades.max_score = 150.0
    # built from this export, Kurt (no ID number) is known by his email
    grades.students["kurt@example.edu"] = replace(grades.students.pop("s005"),
                                                  id="kurt@example.edu")
    notes = "\n".join(moodle_grades_csv(grades, moodle).notes)
    assert "Moodle refuses grades over 100" in notes
    assert "have no ID number: map 'Email address'" in notes


def test_not_a_report(tmp_path):
    (tmp_path / "r.json").write_text(json.dumps({"format": "something/1"}))
    with pytest.raises(DeepdrillError, match="not a deepdrill grade report"):
        load_grades(tmp_path / "r.json")


def test_commands_write_files_that_read_back(report, tmp_path):
    (tmp_path / "canvas_export.csv").write_text(CANVAS, encoding="utf-8")
    runner = CliRunner()
    r1 = runner.invoke(cli, ["export", "canvas-grades", "--report", str(report), "--roster",
                             str(tmp_path / "canvas_export.csv"), "--out",
                             str(tmp_path / "canvas.csv")])
    r2 = runner.invoke(cli, ["export", "moodle-grades", "--report", str(report), "--out",
                             str(tmp_path / "moodle.csv"), "--out-of", "100"])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert "canvas.csv (6 student row(s))" in r1.output
    assert "moodle.csv (6 student row(s))" in r2.output
    for name in ("canvas.csv", "moodle.csv"):
        raw = (tmp_path / name).read_bytes()
        assert not raw.startswith(b"\xef\xbb\xbf")
        table = rows(raw.decode("utf-8"))
        assert len({len(r) for r in table}) == 1  # every row as wide as the header
        numbers = [r[-1] for r in table[1:]] if name == "canvas.csv" else [r[1] for r in table[1:]]
        assert all(re.fullmatch(r"\d+(\.\d{1,2})?|", n) for n in numbers)


def test_scores_are_written_with_at_most_two_decimals():
    from deepdrill.export.gradebook import points_text

    assert points_text(27.666667) == "27.67" and points_text(55.3333) == "55.33"
    assert points_text(50.0) == "50" and points_text(None) == ""
