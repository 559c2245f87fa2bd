"""Rosters as LMSs export them: Canvas's gradebook, Moodle's participants or grades, and the
plain ``id,name`` CSV.

A roster file is read as it is downloaded, with the quirks real exports carry: a byte-order
mark, semicolons or tabs from a European spreadsheet, Canvas's "Points Possible" and
manual-posting rows and its Test Student, Moodle's teachers and suspended students, and any
number of extra columns (grades, sections, last access). :func:`read_roster` says which
columns it used and which rows it skipped, and why::

    >>> r = read_roster(b'Student,ID,SIS User ID,SIS Login ID,Section\\n'
    ...                 b'    Points Possible,,,,\\n"Doe, Jane",1021,S001,jdoe,A\\n')
    >>> [(s.id, s.name) for s in r.students]
    [('S001', 'Doe, Jane')]
    >>> r.skipped
    [(2, "Canvas's Points Possible row")]

A plain ``id,name`` CSV keeps the rules of :func:`deepdrill.generator.assignment.parse_roster`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from deepdrill.errors import DeepdrillError
from deepdrill.generator.assignment import ID_COLUMNS, NAME_COLUMNS, Student, parse_roster

DELIMITERS = (",", ";", "\t")  # Excel in a comma-decimal locale writes ";"; Moodle offers tab
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
CANVAS_TEST_STUDENT = ("Student, Test", "Test Student")  # Canvas's Student View user
CANVAS_HIDDEN_ROW = ("Muted", "Manual Posting")
MOODLE_NOT_ENROLLED = ("suspended", "not current")
MAX_LISTED = 10  # skipped rows named one by one in the summary
PLAIN_EMAIL = ("email", "email address", "e-mail")


@dataclass(frozen=True)
class Table:
    """A CSV file read whole: the header, and every later row with its line number."""

    header: list[str]
    rows: list[tuple[int, list[str]]]
    delimiter: str

    def column(self, *names: str) -> int | None:
        """The index of the first of ``names`` in the header (case and spaces ignored)."""
        wanted = [n.casefold() for n in names]
        found = {h.strip().casefold(): i for i, h in reversed(list(enumerate(self.header)))}
        return next((found[n] for n in wanted if n in found), None)


@dataclass(frozen=True)
class Entry:
    """One student row of a roster file; ``cells`` is the row as the file has it."""

    line: int
    id: str
    name: str
    email: str = ""
    cells: tuple[str, ...] = ()


@dataclass
class Roster:
    """Students read from a roster file, with what was used and what was left out."""

    source: str
    kind: str  # "canvas", "moodle" or "plain"
    table: Table
    entries: list[Entry]
    columns: dict[str, str]  # what each column gave: {"id": "SIS User ID (else ID)", ...}
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line, why)
    notes: list[str] = field(default_factory=list)

    @property
    def students(self) -> list[Student]:
        return [Student(e.id, e.name) for e in self.entries]

    def by_id(self) -> dict[str, Entry]:
        return {e.id: e for e in self.entries}

    def summary(self) -> list[str]:
        """Lines for the build's output: the format, the columns used, the rows skipped.
        A plain comma-separated id,name file with nothing skipped needs no words."""
        if self.kind == "plain" and self.table.delimiter == "," and not self.skipped:
            return []
        used = ", ".join(f"{what} from {col}" for what, col in self.columns.items())
        lines = [f"roster {self.source}: {KIND_NAMES[self.kind]}, "
                 f"{DELIMITER_NAMES[self.table.delimiter]}-separated; {used}; "
                 f"{len(self.entries)} student(s)"]
        lines += self.notes
        if self.skipped:
            listed = "; ".join(f"line {n}: {why}" for n, why in self.skipped[:MAX_LISTED])
            more = f"; and {len(self.skipped) - MAX_LISTED} more" \
                if len(self.skipped) > MAX_LISTED else ""
            lines.append(f"skipped {len(self.skipped)} row(s): {listed}{more}")
        return lines


KIND_NAMES = {"canvas": "Canvas gradebook export", "moodle": "Moodle participants or grades export",
              "plain": "id,name CSV"}


def read_roster(raw: bytes, source: str = "roster") -> Roster:
    """Students from the bytes of a roster file of any supported kind (see the module)."""
    table = read_table(raw, source)
    for kind, (matches, reader) in READERS.items():
        if matches(table):
            roster = reader(table, source)
            _refuse_duplicates(roster)
            if not roster.entries:
                raise DeepdrillError(f"{source}: no students listed ({KIND_NAMES[kind]})")
            return roster
    raise DeepdrillError(
        f"{source}: not a roster deepdrill knows; the first line must name an 'id' and a "
        f"'name' column, or be a Canvas gradebook export (Student, ID, ...) or a Moodle "
        f"participants or grades export (First name, Last name, ...) "
        f"(found: {', '.join(table.header) or 'nothing'})")


# -- the file as a table ---------------------------------------------------------------

def read_table(raw: bytes, source: str = "roster") -> Table:
    """The rows of a CSV file, its delimiter found from the header line (or from Excel's
    ``sep=;`` hint line, which is then dropped)."""
    text = decode(raw, source)
    first_line = 1
    hint = re.match(r"sep=(.)\r?\n", text)
    if hint:
        delimiter, text, first_line = hint.group(1), text[hint.end():], 2
    else:
        delimiter = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows, start = [], first_line
    for cells in reader:  # each row with the file line it starts on (a cell may span lines)
        rows.append((start, cells))
        start = reader.line_num + first_line
    if not rows:
        return Table([], [], delimiter)
    return Table([h.strip() for h in rows[0][1]], rows[1:], delimiter)


def decode(raw: bytes, source: str) -> str:
    """UTF-8 with or without a byte-order mark; UTF-16 when a mark says so (Excel's
    "Unicode text")."""
    try:
        if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
            return raw.decode("utf-16")
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DeepdrillError(f"{source}: the roster is not UTF-8 text; save it as CSV UTF-8") \
            from None


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header line into the most columns (comma on a tie)."""
    first = text.split("\n", 1)[0]

    def columns(d: str) -> int:
        return len(next(csv.reader([first], delimiter=d), []))
    return max(DELIMITERS, key=lambda d: (columns(d), d == ","))


def _blank(cells: list[str]) -> bool:
    return not any(c.strip() for c in cells)


def _cell(cells: list[str] | tuple[str, ...], index: int | None) -> str:
    return cells[index].strip() if index is not None and index < len(cells) else ""


def _refuse_duplicates(roster: Roster) -> None:
    seen: dict[str, int] = {}
    for e in roster.entries:
        if e.id in seen:
            raise DeepdrillError(f"{roster.source}, line {e.line}: id {e.id!r} already used on "
                                 f"line {seen[e.id]}")
        seen[e.id] = e.line


# -- plain id,name -----------------------------------------------------------------------

def _is_plain(table: Table) -> bool:
    return table.column(*ID_COLUMNS) is not None and table.column(*NAME_COLUMNS) is not None


def _read_plain(table: Table, source: str) -> Roster:
    """Through :func:`parse_roster`, so a plain file keeps exactly its rules (another
    delimiter is turned into commas first)."""
    text = io.StringIO(newline="")
    csv.writer(text).writerows([table.header, *(cells for _, cells in table.rows)])
    students = parse_roster(text.getvalue(), source)
    id_col, name_col = table.column(*ID_COLUMNS), table.column(*NAME_COLUMNS)
    assert id_col is not None and name_col is not None
    email = table.column(*PLAIN_EMAIL)
    rows = [(n, cells) for n, cells in table.rows if _cell(cells, id_col)]  # parse_roster's
    entries = [Entry(n, s.id, s.name, _cell(cells, email), tuple(cells))
               for s, (n, cells) in zip(students, rows)]
    columns = {"id": repr(table.header[id_col]), "name": repr(table.header[name_col])}
    if email is not None:
        columns["email"] = repr(table.header[email])
    return Roster(source, "plain", table, entries, columns)


# -- Canvas --------------------------------------------------------------------------------

def _is_canvas(table: Table) -> bool:
    """Canvas's own test of a gradebook header: "Student" in the first cell and "ID" in
    the second, or LastName, FirstName, ID when the course shows split names."""
    h = [c.strip() for c in table.header]
    return len(h) >= 3 and (("Student" in h[0] and h[1] == "ID") or
                            (h[:3] == ["LastName", "FirstName", "ID"]))


def _read_canvas(table: Table, source: str) -> Roster:
    split_names = table.header[0].strip() == "LastName"
    id_col = 2 if split_names else 1
    sis_col = table.column("SIS User ID")
    entries, skipped, by_canvas_id = [], [], []
    for line, cells in table.rows:
        why = _canvas_skip(cells, id_col, sis_col)
        if why:
            skipped.append((line, why))
            continue
        sis, canvas_id = _cell(cells, sis_col), _cell(cells, id_col)
        if not sis and not canvas_id:
            skipped.append((line, "no ID and no SIS User ID"))
            continue
        if sis_col is not None and not sis:
            by_canvas_id.append(canvas_id)
        name = (f"{_cell(cells, 0)}, {_cell(cells, 1)}" if split_names
                else _canvas_name(_cell(cells, 0)))
        entries.append(Entry(line, sis or canvas_id, name, cells=tuple(cells)))
    notes = []
    if by_canvas_id:
        notes.append(f"no SIS User ID for {len(by_canvas_id)} student(s); they are known by "
                     f"their Canvas ID: {', '.join(by_canvas_id[:MAX_LISTED])}")
    columns = {"id": "'SIS User ID' (else 'ID')" if sis_col is not None else "'ID'",
               "name": "'LastName', 'FirstName'" if split_names else "'Student'"}
    return Roster(source, "canvas", table, entries, columns, skipped, notes)


def _canvas_skip(cells: list[str], id_col: int, sis_col: int | None) -> str | None:
    if _blank(cells):
        return "blank line"
    first = cells[0]
    if "Points Possible" in first:
        return "Canvas's Points Possible row"
    if not first.strip() and not _cell(cells, id_col):
        values = {c.strip() for c in cells if c.strip()}
        if all(v.startswith(CANVAS_HIDDEN_ROW) for v in values):
            return "Canvas's manual-posting row"
        return "no student name and no ID"
    if _canvas_name(first.strip()) in CANVAS_TEST_STUDENT and not _cell(cells, sis_col):
        return "Canvas's Test Student (Student View), not a student"
    return None


def _canvas_name(cell: str) -> str:
    """Canvas writes a name that starts with = as ="..." so a spreadsheet shows it as text."""
    m = re.fullmatch(r'="(.*)"', cell, flags=re.DOTALL)
    return m.group(1) if m else cell


# -- Moodle ---------------------------------------------------------------------------------

FIRST_NAME = ("First name", "Firstname")
LAST_NAME = ("Last name", "Surname", "Lastname")
FULL_NAME = ("Full name", "Fullname")
ID_NUMBER = ("ID number", "idnumber")
EMAIL = ("Email address", "Email")
USERNAME = ("Username",)


def _is_moodle(table: Table) -> bool:
    named = table.column(*FULL_NAME) is not None or (
        table.column(*FIRST_NAME) is not None and table.column(*LAST_NAME) is not None)
    return named and any(table.column(*c) is not None for c in (ID_NUMBER, EMAIL, USERNAME))


def _read_moodle(table: Table, source: str) -> Roster:
    ids = [(table.header[i], i) for names in (ID_NUMBER, EMAIL, USERNAME)
           if (i := table.column(*names)) is not None]
    email_col = table.column(*EMAIL)
    name_of = _moodle_name(table)
    roles, status = table.column("Roles"), table.column("Status")
    students_listed = roles is not None and any(
        "student" in _cell(c, roles).casefold() for _, c in table.rows)
    entries, skipped, fallback = [], [], []
    for line, cells in table.rows:
        why = _moodle_skip(cells, roles if students_listed else None, status)
        if why:
            skipped.append((line, why))
            continue
        found = next(((h, v) for h, i in ids if (v := _cell(cells, i))), None)
        if found is None:
            skipped.append((line, f"no {' and no '.join(h for h, _ in ids)}"))
            continue
        if found[0] != ids[0][0]:
            fallback.append(f"{found[1]} ({found[0]})")
        entries.append(Entry(line, found[1], name_of(cells), _cell(cells, email_col),
                             tuple(cells)))
    notes = []
    if fallback:
        notes.append(f"no {ids[0][0]} for {len(fallback)} student(s); they are known by "
                     f"{', '.join(fallback[:MAX_LISTED])}")
    if roles is not None and not students_listed:
        notes.append("no row has the role Student (a translated site?); every row was kept")
    used = repr(ids[0][0]) + (f" (else {', else '.join(repr(h) for h, _ in ids[1:])})"
                              if len(ids) > 1 else "")
    columns = {"id": used, "name": _moodle_name_columns(table)}
    if email_col is not None:
        columns["email"] = repr(table.header[email_col])
    return Roster(source, "moodle", table, entries, columns, skipped, notes)


def _moodle_skip(cells: list[str], roles: int | None, status: int | None) -> str | None:
    if _blank(cells):
        return "blank line"
    if roles is not None and "student" not in _cell(cells, roles).casefold():
        return f"role {_cell(cells, roles) or '(none)'}, not Student"
    if _cell(cells, status).casefold() in MOODLE_NOT_ENROLLED:
        return f"enrolment {_cell(cells, status)}"
    return None


def _moodle_name(table: Table) -> Callable[[list[str]], str]:
    full = table.column(*FULL_NAME)
    first, last = table.column(*FIRST_NAME), table.column(*LAST_NAME)
    if first is not None and last is not None:
        return lambda cells: " ".join(p for p in (_cell(cells, first), _cell(cells, last)) if p)
    return lambda cells: _cell(cells, full)


def _moodle_name_columns(table: Table) -> str:
    first, last = table.column(*FIRST_NAME), table.column(*LAST_NAME)
    if first is not None and last is not None:
        return f"{table.header[first]!r} and {table.header[last]!r}"
    return repr(table.header[table.column(*FULL_NAME) or 0])


# Tried in this order: every file that names an id and a name column is read as it always
# was, whatever else it holds (no Canvas or Moodle export names both).
READERS: dict[str, tuple[Callable[[Table], bool], Callable[[Table, str], Roster]]] = {
    "plain": (_is_plain, _read_plain),
    "canvas": (_is_canvas, _read_canvas),
    "moodle": (_is_moodle, _read_moodle),
}
