"""Rosters as Canvas and Moodle export them, and the plain id,name CSV, with their quirks."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdrill.cli import cli
from deepdrill.errors import DeepdrillError
from deepdrill.generator.rosters import read_roster
from deepdrill.generator.assignment import Student, load_roster, parse_roster

# Canvas's "Export Entire Gradebook", as its exporter lays it out: a byte-order mark, the
# manual-posting row, the Points Possible row, read-only total columns, a name with a comma
# and one that starts with "=" (which Canvas writes as ="..."), a student without an SIS id,
# and the Test Student last.
CANVAS = (
    "\ufeffStudent,ID,SIS User ID,SIS Login ID,Section,Notes,HW 1 (48213),Current Score\n"
    ",,,,,,Manual Posting,\n"
    "    Points Possible,,,,,,10.00,(read only)\n"
    '"Doe, Jane",1021,S001,jdoe,Section A,,8.50,85.00\n'
    '"=""=cmd|calc""",1022,S002,eve,"Section A and Section B",,N/A,\n'
    '"Roe, Rick",1023,,rroe,Section B,late,EX,\n'
    ",,,,,,,\n"
    '"Student, Test",1099,,8f3e2a,Section A,,,\n'
)

CANVAS_SEMICOLONS = (
    "Student;ID;SIS User ID;SIS Login ID;Section;HW 1 (48213)\n"
    "    Points Possible;;;;;10,00\n"
    '"Müller, Zoë";1021;S001;zm;Gruppe 1;8,50\n'
    '"Dupont; Marie";1022;S002;md;Gruppe 1;\n'
)

# Moodle's grade export (Grades > Export > Plain text file), tab-separated, with a student
# who has no ID number.
MOODLE_GRADES = (
    "First name\tLast name\tID number\tInstitution\tDepartment\tEmail address\t"
    "Assignment: HW 1 (Real)\tCourse total (Real)\tLast downloaded from this course\n"
    "Jane\tDoe\tS001\tUni\tCS\tjane@example.edu\t8.50\t8.50\t1767225600\n"
    "Rick\tRoe\t\tUni\tCS\trick@example.edu\t-\t-\t1767225600\n"
)

# Moodle's participants download with roles and enrolment status shown.
MOODLE_PARTICIPANTS = (
    "\ufeffFirst name,Last name,Email address,Roles,Groups,Last access to course,Status\n"
    "Jane,Doe,jane@example.edu,Student,Group A,2 days,Active\n"
    "Tom,Teach,tom@example.edu,Teacher,,now,Active\n"
    "Sam,Gone,sam@example.edu,Student,,never,Suspended\n"
    '"Ann, Jr.",Lee,ann@example.edu,Student,,1 hour,Active\n'
)


def roster(text: str, encoding: str = "utf-8"):
    return read_roster(text.encode(encoding), "r.csv")


def test_canvas_export_with_every_quirk():
    r = roster(CANVAS)
    assert r.kind == "canvas"
    assert [(s.id, s.name) for s in r.students] == [
        ("S001", "Doe, Jane"), ("S002", "=cmd|calc"), ("1023", "Roe, Rick")]
    assert r.skipped == [(2, "Canvas's manual-posting row"), (3, "Canvas's Points Possible row"),
                         (7, "blank line"),
                         (8, "Canvas's Test Student (Student View), not a student")]
    summary = "\n".join(r.summary())
    assert "id from 'SIS User ID' (else 'ID'), name from 'Student'" in summary
    assert "known by their Canvas ID: 1023" in summary
    assert "line 3: Canvas's Points Possible row" in summary


def test_canvas_semicolons_from_a_european_spreadsheet():
    r = roster(CANVAS_SEMICOLONS)
    assert r.table.delimiter == ";"
    assert [(s.id, s.name) for s in r.students] == [("S001", "Müller, Zoë"),
                                                     ("S002", "Dupont; Marie")]
    assert "semicolon-separated" in r.summary()[0]


def test_canvas_without_sis_ids_and_with_split_names():
    r = roster("LastName,FirstName,ID,SIS Login ID,Section,HW\n"
               "    Points Possible,,,,,5\nDoe,Jane,1021,jdoe,A,4\n")
    assert r.students == [Student("1021", "Doe, Jane")]
    assert r.columns == {"id": "'ID'", "name": "'LastName', 'FirstName'"}


def test_moodle_grades_export_tab_separated():
    r = roster(MOODLE_GRADES)
    assert r.kind == "moodle" and r.table.delimiter == "\t"
    assert [(e.id, e.name, e.email) for e in r.entries] == [
        ("S001", "Jane Doe", "jane@example.edu"),
        ("rick@example.edu", "Rick Roe", "rick@example.edu")]
    assert r.columns["id"] == "'ID number' (else 'Email address')"
    assert any("known by rick@example.edu (Email address)" in n for n in r.summary())


def test_moodle_participants_skip_teachers_and_suspended_students():
    r = roster(MOODLE_PARTICIPANTS)
    assert [(s.id, s.name) for s in r.students] == [("jane@example.edu", "Jane Doe"),
                                                     ("ann@example.edu", "Ann, Jr. Lee")]
    assert r.skipped == [(3, "role Teacher, not Student"), (4, "enrolment Suspended")]


def test_plain_roster_keeps_its_rules(examples):
    students, _ = load_roster(examples / "roster.csv")
    text = (examples / "roster.csv").read_text(encoding="utf-8")
    assert students == parse_roster(text)
    assert read_roster(text.encode()).summary() == []  # nothing worth a line in the build


@pytest.mark.parametrize("text, words", [
    ("id,name\ns1,A\ns1,B\n", "already used on line 2"),
    ("id,name\n,A\n", "has no id"),
    ("id,name\n", "no students"),
    ("who,what\nx,y\n", "not a roster deepdrill knows"),
    ("Student,ID,SIS User ID,SIS Login ID,Section\nA,1,S1,a,X\nB,2,S1,b,X\n",
     "'S1' already used on line 2"),
    ("Student,ID,SIS User ID,SIS Login ID,Section\n    Points Possible,,,,\n", "no students"),
])
def test_roster_errors(text, words):
    with pytest.raises(DeepdrillError, match=words):
        roster(text)


def test_a_file_the_plain_reader_took_is_read_as_before():
    r = roster("id,name,First name,Last name,Email address\ns1,Ada L,Ada,L,ada@x\n")
    assert r.kind == "plain" and r.students == [Student("s1", "Ada L")]
    assert r.entries[0].email == "ada@x"


def test_plain_with_semicolons_excel_hint_and_extra_columns():
    r = roster('sep=;\nid;name;email;group\ns1;"Ada; Countess";a@x;1\n\ns2;Bob;b@x;2\n')
    assert r.students == [Student("s1", "Ada; Countess"), Student("s2", "Bob")]
    assert [e.line for e in r.entries] == [3, 5]


def test_utf16_from_excel_unicode_text():
    r = read_roster("id\tname\ns1\tZoë\n".encode("utf-16"))
    assert r.students == [Student("s1", "Zoë")]


def test_not_utf8_says_how_to_save():
    with pytest.raises(DeepdrillError, match="save it as CSV UTF-8"):
        read_roster("id,name\ns1,Zo\xeb\n".encode("latin-1"))


names = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1,
                max_size=12).map(str.strip).filter(bool)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(names, names), min_size=1, max_size=6,
                     unique_by=lambda r: r[0]),
       delimiter=st.sampled_from([",", ";", "\t"]), bom=st.booleans())
def test_any_quoted_plain_roster_reads_back(rows, delimiter, bom):
    text = io.StringIO(newline="")
    w = csv.writer(text, delimiter=delimiter, quoting=csv.QUOTE_ALL)
    w.writerows([("id", "name"), *rows])
    r = read_roster((("\ufeff" if bom else "") + text.getvalue()).encode())
    assert [(s.id, s.name) for s in r.students] == rows


def test_build_takes_a_canvas_export_and_says_what_it_used(tmp_path: Path):
    (tmp_path / "a.toml").write_text('title = "t"\nseed = 1\n[[questions]]\n'
                                     'type = "softmax"\npoints = 1\n')
    (tmp_path / "canvas.csv").write_text(CANVAS, encoding="utf-8")
    result = CliRunner().invoke(cli, ["build", str(tmp_path / "a.toml"), "--roster",
                                      str(tmp_path / "canvas.csv"), "--out",
                                      str(tmp_path / "out"), "--no-pdf", "-q"])
    assert result.exit_code == 0, result.output
    assert "built 3 sheet(s)" in result.output
    assert "Canvas gradebook export" in result.output
    assert "skipped 4 row(s)" in result.output and "Test Student" in result.output
    assert (tmp_path / "out" / "students" / "S001" / "submission.json").exists()
