"""Grading a class: every submission against that student's stored variant.

Every input file appears in the report exactly once, with a status:

* ``graded``: counted for its student (messages say what could not be credited);
* ``superseded``: another file of the same student is newer; graded, not counted;
* ``id_mismatch``: named for one student on the roster (``s001.json``) but saying it is
  another's (``"student_id": "s002"``); graded, counted for neither: the TA decides;
* ``unreadable``: nothing could be read (not JSON, too large, ...); scores 0;
* ``unknown_student``: the student id is not in the key; scores 0;
* ``error``: deepdrill itself failed on the file (a bug to report); scores 0;
* ``skipped``: found in a submissions folder but not read: not a ``.json`` file, a
  hidden file (macOS metadata and the like), a link to a folder or one that loops, or a
  folder that cannot be listed.

Students in the key without a counted file get a row with status ``no_submission``
(``id_mismatch`` when a mismatched file names or claims them).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import functools
import gc
import io
import math
import multiprocessing as mp
import os
import pickle
import signal
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from deepdrill import __version__
from deepdrill.errors import DeepdrillError
from deepdrill.files import LOCK, die_with_parent, locked, remove_temps, temp_beside
from deepdrill.heap import no_gc_pauses
from deepdrill.model.key import KEY_FORMATS_READ, Shared, key_lines, read_line
from deepdrill.model.variant import StoredVariant, Variant

from .score import CreditPolicy, QuestionResult, grade_question, rounded
from .submission import MAX_BYTES, Submission, read_submission

REPORT_FORMAT = "deepdrill-report/1"
PARALLEL_FROM = 100  # files; fewer are graded faster in this process than by forking workers
# Chunks shrink as the work runs out (each a 1/(CHUNK_SHARE * workers) share of what is left,
# down to SMALLEST_CHUNK files): few chunks to send, and the last ones end together.
CHUNK_SHARE = 4
SMALLEST_CHUNK = 20
LOCK_FILE = LOCK  # in --out: one deepdrill run at a time writes there
LOCK_WAIT_S = 5.0  # a second grader into the same --out waits this long, then refuses
REPORT_FILES = ("report.json", "grades.csv")  # replaced in this order: grades.csv last
REPORT_PIECE = 500  # submissions per piece of report.json made and written at a time
NOT_A_FILE = "not a regular file (a pipe, socket or device); not graded"
AWAITS_TA = "not counted: rename the file or fix its student_id, then grade again"


@dataclass(frozen=True)
class KeyQuestion:
    label: str
    type: str
    points: float
    all_or_nothing: bool
    carry_forward: float = 1.0

    @functools.cached_property  # asked once per question of every submission
    def policy(self) -> CreditPolicy:
        return CreditPolicy(per_entry=not self.all_or_nothing, carry_forward=self.carry_forward)


@dataclass
class KeyStudent:
    id: str
    name: str
    folder: str
    raw: memoryview | bytes | dict[str, Any] = field(repr=False)  # their key line, unread
    shared: Shared = field(repr=False, default_factory=Shared)  # the key's shared parts
    _variants: dict[str, Variant] | None = field(default=None, repr=False)

    @property
    def variants(self) -> dict[str, Variant]:
        """Read on first use: a grading worker reads only its own students' variants."""
        if self._variants is None:
            data = self.raw if isinstance(self.raw, dict) else read_line(self.raw)
            if data.get("id") != self.id:
                raise DeepdrillError(f"the key's line for {self.id} holds {data.get('id')!r}")
            self._variants = {k: StoredVariant.read(v, self.shared)
                              for k, v in data["variants"].items()}
        return self._variants

    def forget_variants(self) -> None:
        """Drop the parsed variants (read again from the key line if needed)."""
        self._variants = None


@dataclass
class Key:
    title: str
    questions: list[KeyQuestion]
    students: dict[str, KeyStudent]
    raw_assignment: dict[str, Any]
    _folders: dict[str, KeyStudent] | None = field(default=None, repr=False)

    @property
    def max_score(self) -> float:
        return sum(q.points for q in self.questions)

    @functools.cached_property
    def labels(self) -> list[str]:
        """The questions' labels, in order (asked for every row of a report)."""
        return [q.label for q in self.questions]

    @property
    def folders(self) -> dict[str, KeyStudent]:
        """Students by folder name (built once: every file's name is looked up here)."""
        if self._folders is None:
            self._folders = {}
            for s in self.students.values():
                self._folders.setdefault(s.folder, s)
        return self._folders

    def by_file_stem(self, stem: str) -> KeyStudent | None:
        """The student a file is named for: ``<id>.json`` or ``<folder>.json``."""
        return self.students.get(stem) or self.folders.get(stem)


@contextlib.contextmanager
def _key_out_of_gc():
    """The loaded key (and all else alive now) left out of garbage collection while grading.

    Otherwise every full collection walks the whole key again, and in forked workers
    that walk writes to every object, copying the parent's memory page by page
    (two workers were slower than one for 3,000 students). gc.freeze is the standard
    library's tool for exactly this.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@no_gc_pauses()  # a class's key is ~10^6 objects, none of them in a cycle
def load_key(path: Path, read: Callable[[], bytes] | None = None) -> Key:
    """The key's header and roster; each student's variants are read when first graded.
    ``read`` gives the file's bytes when the caller has them read already (or reading)."""
    try:
        raw = read() if read is not None else path.read_bytes()
        head, lines = split_key(raw)
        check_versions(head, path)
        a = head["assignment"]
        questions = [KeyQuestion(q["label"], q["type"], float(q["points"]),
                                 bool(q.get("all_or_nothing", False)),
                                 float(q.get("carry_forward", 1.0))) for q in a["questions"]]
        roster = head["roster"]
        if len(roster) != len(lines):
            raise ValueError(f"{len(roster)} students in the roster, {len(lines)} in the key")
        shared = Shared(head.get("shared"))
        students = {s["id"]: KeyStudent(s["id"], s["name"], s.get("folder", s["id"]), line,
                                         shared) for s, line in zip(roster, lines)}
        for s in list(students.values())[:1]:  # a spot check that this is a key at all
            s.variants
    except OSError as err:
        raise DeepdrillError(f"cannot read key {path}: {err.strerror}") from None
    except (ValueError, KeyError, TypeError, IndexError, orjson.JSONDecodeError) as err:
        raise DeepdrillError(f"{path} is not a deepdrill answer key ({err}); pass the key.json "
                             f"that `deepdrill build` wrote") from None
    return Key(a["title"], questions, students, a)


def split_key(raw: bytes) -> tuple[dict[str, Any], list[memoryview | dict[str, Any]]]:
    """The header and the students' lines of a key as `deepdrill build` lays it out (one
    student per line, each a view into ``raw``); a key saved whole by another tool is
    parsed whole."""
    try:
        return key_lines(raw)  # type: ignore[return-value]
    except ValueError:
        pass  # not laid out by the build
    data = orjson.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data, list(data.get("students", []))


def check_versions(data: Any, path: Path) -> None:
    """Refuse a key this deepdrill cannot grade faithfully: another key format, or an
    exercise type whose answers changed meaning since the key was built."""
    from deepdrill.generator.exercise import get

    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("deepdrill-key/"):
        raise DeepdrillError(f"{path} is not a deepdrill answer key; pass the key.json that "
                             f"`deepdrill build` wrote")
    built_with = data.get("deepdrill_version", "an older deepdrill")
    if data["format"] not in KEY_FORMATS_READ:
        reads = " and ".join(KEY_FORMATS_READ)
        raise DeepdrillError(f"{path} is a {data['format']} key, built with deepdrill "
                             f"{built_with}; this deepdrill ({__version__}) reads {reads}. "
                             f"Grade with deepdrill {built_with}, or rebuild the assignment "
                             f"(students' numbers stay the same only if the types did not change)")
    for type_id, version in data.get("type_versions", {}).items():
        ours = get(type_id).version
        if version != ours:
            raise DeepdrillError(f"{path}: {type_id} was built as version {version}, this "
                                 f"deepdrill has version {ours} of it, whose answers may differ; "
                                 f"grade with deepdrill {built_with}, or rebuild the assignment")


@no_gc_pauses()
def collect_files(inputs: Iterable[Path]) -> tuple[list[str], list[tuple[Path, str]]]:
    """Submission files from files and folders, each once (their paths as text, as
    ``str(Path(...))`` gives them: a class's 10,000 Path objects cost more to make, and
    to send to the grading workers, than finding the files); and what a folder held
    besides.

    A file named on the command line is always read. In a folder, every ``*.json``
    file (any case) below it is a submission; every other entry (another file, a link to
    a folder, a folder that cannot be listed) is returned with the reason it is not
    graded, so the report can list it rather than drop it silently.
    """
    seen: dict[str, str] = {}
    skipped: dict[str, tuple[Path, str]] = {}
    for p in inputs:
        if p.is_dir():
            for _, q, reason, real in sorted(_walk(p), key=lambda found: found[0]):
                if reason:
                    skipped.setdefault(real or _identity(Path(q)), (Path(q), reason))
                else:
                    seen.setdefault(real or _identity(Path(q)), q)
        elif p.exists():
            seen.setdefault(_identity(p), str(p))
        else:
            raise DeepdrillError(f"no such file or folder: {p}")
    return list(seen.values()), [s for k, s in skipped.items() if k not in seen]


def _identity(path: Path) -> str:
    """The real path, to count a file reached twice once (a link that loops has none)."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError on a symlink loop
        return os.path.abspath(path)


def _walk(root: Path) -> list[tuple[tuple[str, ...], str, str | None, str | None]]:
    """Every entry below ``root``: ``(parts, path, None, real)`` for a submission,
    ``(parts, path, reason, real)`` for the rest, including each folder that cannot be
    listed. ``parts`` are the path's names below ``root`` (to sort by, as Path.parts
    sorts); ``real`` is the entry's real path where it comes free (an entry that is no
    link, in a folder whose real path is known: a class's folder is resolved once, not
    per file), else None. Links to folders are listed, not followed: they can loop, or
    lead out of the submissions. (Paths as text, each as ``str(Path(path))`` gives it: a
    class's 10,000 Path objects, made and taken apart again, were most of the time this
    took.)"""
    found: list[tuple[tuple[str, ...], str, str | None, str | None]] = []
    folders: list[tuple[str, tuple[str, ...], str]] = [(str(root), (), _identity(root))]
    while folders:
        folder, below, real_folder = folders.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as err:
            found.append((below, folder, _unlisted(err), None))
            continue
        real_prefix = real_folder.rstrip(os.sep) + os.sep
        prefix = str(Path(folder, "x"))[:-1]  # the folder as Path writes it ("" for ".")
        for entry in entries:
            path, parts = prefix + entry.name, (*below, entry.name)
            kind, reason = _entry_kind(entry, path)
            try:
                real = None if entry.is_symlink() else real_prefix + entry.name
            except OSError:
                real = None
            if kind == "folder":
                folders.append((path, parts, real or _identity(Path(path))))
            else:
                found.append((parts, path, reason or _not_a_submission(parts), real))
    return found


def _unlisted(err: OSError) -> str:
    return (f"folder cannot be listed ({err.strerror}); the files in it are not graded "
            f"(make it readable, or name them on the command line)")


def _entry_kind(entry: os.DirEntry[str], path: str) -> tuple[str, str | None]:
    """``("folder", None)`` to walk into, ``("file", None)`` to read if its name says
    JSON, else ``("other", why it is not read)``."""
    try:
        if entry.is_dir(follow_symlinks=False):
            return "folder", None
        if not entry.is_symlink():
            return ("file", None) if entry.is_file(follow_symlinks=False) else ("other", NOT_A_FILE)
        target = os.stat(path)
    except FileNotFoundError:
        return "other", "a link to nothing (a dangling symlink); not graded"
    except OSError as err:
        if err.errno == errno.ELOOP:
            return "other", "a link that loops back on itself; not graded"
        return "other", f"cannot be read ({err.strerror}); not graded"
    if stat.S_ISDIR(target.st_mode):
        return "other", ("a link to a folder, not followed (it may loop); name the folder "
                         "on the command line to grade its files")
    return ("file", None) if stat.S_ISREG(target.st_mode) else ("other", NOT_A_FILE)


def _not_a_submission(parts: tuple[str, ...]) -> str | None:
    """Why a file (its path's names below the folder given) is not read, or None."""
    if any(part.startswith(".") or part == "__MACOSX" for part in parts):
        return "hidden file or macOS metadata; not graded"
    if not parts[-1].lower().endswith(".json"):  # (a name that is only .json is hidden)
        return "not a .json file; not graded (rename it to .json, or name it on the " \
               "command line, to grade it)"
    return None


@dataclass
class Entry:
    """One input file in the report."""

    file: str
    status: str
    student_id: str | None
    name: str
    messages: list[str] = field(default_factory=list)
    questions: dict[str, QuestionResult] = field(default_factory=dict)
    score: float = 0.0
    mtime: float = 0.0
    named_for: str | None = None  # id_mismatch: the roster student the file's name points at
    # After pack(): each question's (score, carried-forward credit), and the entry's
    # report already serialised (what a worker sends back instead of every field's objects)
    totals: dict[str, tuple[float, float]] = field(default_factory=dict)
    json: bytes | None = None
    packed_as: tuple[str, list[str]] | None = None  # the status and messages json has
    # and the row's numbers as reports round them: per question, the total, carried forward
    row_numbers: tuple[dict[str, float], float, float] | None = None

    def pack(self) -> "Entry":
        """Serialise the entry's report now; keep only what the class report needs."""
        self.totals = self.question_totals()
        self.row_numbers = ({k: rounded(score) for k, (score, _) in self.totals.items()},
                            rounded(self.score), rounded(self.carried))
        self.json = orjson.dumps(self.to_json())
        self.packed_as = (self.status, list(self.messages))
        self.questions = {}
        return self

    def question_totals(self) -> dict[str, tuple[float, float]]:
        """Each question's (score, carried-forward credit), packed or not."""
        if self.questions:
            return {k: (q.score, q.carried) for k, q in self.questions.items()}
        return self.totals

    def score_of(self, label: str) -> float:
        q = self.questions.get(label)
        return q.score if q else self.totals.get(label, (0.0, 0.0))[0]

    def carried_of(self, label: str) -> float:
        q = self.questions.get(label)
        return q.carried if q else self.totals.get(label, (0.0, 0.0))[1]

    @property
    def carried(self) -> float:
        if self.questions:
            return sum((q.carried for q in self.questions.values()), 0.0)
        return sum((c for _, c in self.totals.values()), 0.0)

    def to_json(self) -> dict[str, Any]:
        if self.json is not None:
            return orjson.loads(self.json_bytes())
        return {"file": self.file, "status": self.status, "student_id": self.student_id,
                "name": self.name, "score": round(self.score, 4), "messages": self.messages,
                "questions": {k: v.to_json() for k, v in self.questions.items()}}

    def json_bytes(self) -> bytes:
        """The entry's report as JSON (made by the worker that graded it; made again
        here only for the few whose status changed since, e.g. superseded)."""
        if self.json is None:
            return orjson.dumps(self.to_json())
        if self.packed_as != (self.status, self.messages):
            data = orjson.loads(self.json)
            data.update(status=self.status, messages=self.messages)
            self.json, self.packed_as = orjson.dumps(data), (self.status, list(self.messages))
        return self.json


def grade_submission(key: Key, sub: Submission) -> Entry:
    entry = Entry(shown(sub.path), "graded", sub.student_id, "", list(sub.notes), mtime=sub.mtime)
    if sub.error:
        entry.status, entry.messages = "unreadable", [sub.error, *entry.messages]
    named = key.by_file_stem(file_stem(sub.path))
    student = key.students.get(sub.student_id) if sub.student_id else None
    if student is None and sub.student_id is None:
        student = named
        if student:
            entry.student_id = student.id
            entry.messages.append(f"no student_id in the file; matched {student.id!r} by file name")
    if student is None:
        if entry.status == "graded":
            entry.status = "unknown_student"
            entry.messages.append(f"student id {sub.student_id!r} is not in the key"
                                  if sub.student_id else "no student_id in the file")
        return entry
    entry.name = student.name
    if entry.status != "graded":
        return entry
    answers = sub.answers or {}
    unknown = sorted(set(answers) - {q.label for q in key.questions})
    if unknown:
        entry.messages.append("ignored unknown question(s): " + ", ".join(u[:20] for u in unknown[:10]))
    for q in key.questions:
        result = grade_question(student.variants[q.label], answers.get(q.label), q.points,
                                q.policy)
        entry.questions[q.label] = result
    entry.score = sum(r.score for r in entry.questions.values())
    if named is not None and named is not student:
        _hold_for_the_ta(key, entry, named, answers)
    return entry


def _hold_for_the_ta(key: Key, entry: Entry, named: KeyStudent, answers: dict[str, Any]) -> None:
    """A file named for one student that says it is another's counts for neither: which
    student wrote it is the TA's call. Its score against both students' numbers helps."""
    theirs = sum(grade_question(named.variants[q.label], answers.get(q.label), q.points,
                                q.policy).score for q in key.questions)
    entry.status, entry.named_for = "id_mismatch", named.id
    entry.messages.insert(0, f"named for {named.id} but says student_id {entry.student_id}: not "
                             f"counted (scores {entry.score:.4g} on {entry.student_id}'s numbers, "
                             f"{theirs:.4g} on {named.id}'s, of {key.max_score:g}); rename the "
                             f"file or fix its student_id, then grade again")


@dataclass
class Report:
    key: Key
    entries: list[Entry]

    def counted(self) -> dict[str, Entry]:
        return {e.student_id: e for e in self.entries if e.status == "graded" and e.student_id}

    def student_rows(self) -> list[dict[str, Any]]:
        """A row per student in the key, then a row per file that belongs to no student.

        A student named or claimed by an ``id_mismatch`` file has it in their row's notes;
        their row counts their own file if there is one, else its status is ``id_mismatch``.
        """
        counted = self.counted()
        failed = {e.student_id: e for e in self.entries
                  if e.status == "unreadable" and e.student_id in self.key.students}
        held = self.mismatches()
        rows = []
        for s in self.key.students.values():
            e = counted.get(s.id) or failed.get(s.id)
            notes = [note for _, note in held.get(s.id, [])]
            if e is None and notes:
                rows.append(self._row(s.id, s.name, "id_mismatch", None, notes,
                                      held[s.id][0][0].file))
            else:
                rows.append(self._row(s.id, s.name, e.status if e else "no_submission", e, notes))
        for e in self.entries:
            if e.status in ("unknown_student", "unreadable", "error") and \
                    e.student_id not in self.key.students:
                rows.append(self._row(e.student_id or "", e.name, e.status, e))
        return rows

    def mismatches(self) -> dict[str, list[tuple[Entry, str]]]:
        """Per student id, the files whose name and student_id disagree about them, each
        with the note for that student's row: both students hear of it."""
        held: dict[str, list[tuple[Entry, str]]] = {}
        for e in self.entries:
            if e.status == "id_mismatch" and e.named_for and e.student_id:
                name, claimed = os.path.basename(e.file), e.student_id
                held.setdefault(e.named_for, []).append(
                    (e, f"{name} says student_id {claimed}; {AWAITS_TA}"))
                held.setdefault(claimed, []).append(
                    (e, f"{name} also claims {claimed} (named for {e.named_for}); {AWAITS_TA}"))
        return held

    def _row(self, sid: str, name: str, status: str, e: Entry | None,
             notes: Iterable[str] = (), file: str | None = None) -> dict[str, Any]:
        if e is None:
            scores, total, carried = {q.label: 0.0 for q in self.key.questions}, 0.0, 0.0
        elif e.row_numbers is not None:  # rounded by the worker that graded it
            each, total, carried = e.row_numbers
            labels = self.key.labels
            scores = each if list(each) == labels else {k: each.get(k, 0.0) for k in labels}
        else:
            scores = {q.label: rounded(e.score_of(q.label)) for q in self.key.questions}
            total, carried = rounded(e.score), rounded(e.carried)
        return {"id": sid, "name": name, "status": status,
                "file": file if file is not None else e.file if e else "",
                "total": total, "carried_forward": carried, "questions": scores,
                "notes": list(notes)}

    def status_counts(self) -> dict[str, int]:
        statuses: dict[str, int] = {}
        for e in self.entries:
            statuses[e.status] = statuses.get(e.status, 0) + 1
        return statuses

    def to_json(self, rows: list[dict[str, Any]] | None = None,
                submissions: bool = True) -> dict[str, Any]:
        """The report; ``rows`` are :meth:`student_rows` when the caller has them
        (``submissions=False``: its list of submissions left empty)."""
        statuses = self.status_counts()
        counted = self.counted()
        return {
            "format": REPORT_FORMAT,
            "deepdrill_version": __version__,
            "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "assignment": self.key.raw_assignment,
            "summary": {"files": len(self.entries), "by_status": statuses,
                        "students": len(self.key.students), "students_graded": len(counted),
                        "max_score": self.key.max_score},
            "students": self.student_rows() if rows is None else rows,
            "submissions": [e.to_json() for e in self.entries] if submissions else [],
        }

    def json_pieces(self, rows: list[dict[str, Any]] | None = None
                    ) -> Iterator[bytes | list[bytes]]:
        """report.json as :meth:`to_json` makes it (one line), in pieces made as they are
        asked for: the file is written while the rest is made (a class's is tens of MB).
        A piece is bytes, or a list of them (entries and the commas between them, to be
        written as they are: :func:`deepdrill.files.write_all`)."""
        head = orjson.dumps(self.to_json(rows, submissions=False))
        assert head.endswith(b"[]}")  # submissions are last
        yield head[:-2]
        for start in range(0, len(self.entries), REPORT_PIECE):
            part = []
            for e in self.entries[start:start + REPORT_PIECE]:
                part += (b",", e.json_bytes())
            yield part[1:] if not start else part
        yield b"]}\n"


def grade_files(key: Key, files: list[str] | list[Path], max_bytes: int = MAX_BYTES,
                tick: Callable[[int], None] | None = None, workers: int | None = None,
                skipped: Iterable[tuple[Path, str]] = ()) -> Report:
    """Grade every file; a class's worth is shared between this process and forked
    workers (:func:`_grade_in_workers`).

    ``skipped`` files (from :func:`collect_files`) are listed in the report, not read.
    """
    tick = tick or (lambda n: None)
    workers = workers or os.cpu_count() or 1
    # (in this order: the key is thawed before no_gc_pauses counts what is frozen, a walk
    # over every frozen object)
    with no_gc_pauses(), _key_out_of_gc():  # the results are all kept, and hold no cycles
        if workers > 1 and len(files) >= PARALLEL_FROM and \
                "fork" in mp.get_all_start_methods():
            entries = _grade_in_workers(key, files, max_bytes, tick, workers)
        else:
            entries = []
            for path in files:
                entries.append(_grade_file(key, path, max_bytes))
                tick(1)
    _mark_superseded(entries)
    entries += [Entry(shown(path), "skipped", None, "", [reason]) for path, reason in skipped]
    return Report(key, entries)


def _grade_file(key: Key, path: str | Path, max_bytes: int) -> Entry:
    try:
        return grade_submission(key, read_submission(path, max_bytes))
    except Exception as err:  # a grader bug must not cost the rest of the class
        return Entry(shown(path), "error", None, "",
                     [f"internal error while grading ({type(err).__name__}: {err}); "
                      f"please report it with this file"])


_WORKER_KEY: Key | None = None  # set before forking: workers inherit the loaded key


def _grade_chunk(paths: list[str] | list[Path], max_bytes: int,
                 spool: int | None = None) -> list[Entry] | int:
    """A chunk's entries, packed (graded by a worker, or by the grading process itself):
    sending every field's result objects back to the parent cost more than grading them.
    With ``spool`` (a file descriptor), a worker's entries go back through that file
    (:func:`_spool`)."""
    key = _WORKER_KEY
    assert key is not None
    out = []
    for p in paths:
        out.append(_grade_file(key, p, max_bytes).pack())
        # A student's parsed variants are not kept: a worker holding thousands of them
        # touched fresh memory page by page (on 10,000 submissions, 0.35 s of system time
        # and slower grading from the cold memory); a student graded twice is read twice.
        for student in (key.students.get(out[-1].student_id or ""), key.by_file_stem(file_stem(p))):
            if student is not None:
                student.forget_variants()
    return _spool(out, spool) if spool is not None else out


def _spool(entries: list[Entry], fd: int) -> list[Entry] | int:
    """The entries pickled into the chunk's own file (made by the parent, nameless: nothing
    is left behind, even by a killed grader), and their length in bytes; the entries
    themselves when it cannot be written (a full disk), to go through the pool's pipe.
    A chunk's entries are megabytes of report: through the pipe they held the worker up
    some 30 ms a chunk, 64 kB at a time waiting for the busy parent to read; the file
    takes a few."""
    data = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        done = 0
        while done < len(data):
            done += os.pwrite(fd, memoryview(data)[done:], done)
    except OSError:
        return entries
    return len(data)


def _spooled(result: list[Entry] | int, fd: int | None) -> list[Entry]:
    """A worker's entries, read back from its chunk's file if it left them there."""
    if isinstance(result, list) or fd is None:
        return result  # type: ignore[return-value]
    data = bytearray()
    while len(data) < result:
        piece = os.pread(fd, result - len(data), len(data))
        if not piece:
            raise DeepdrillError("a grading worker's results were cut short; grade again")
        data += piece
    return pickle.loads(data)


def _grade_in_workers(key: Key, files: list[str] | list[Path], max_bytes: int,
                      tick: Callable[[int], None], workers: int) -> list[Entry]:
    """The files graded by ``workers`` processes: ``workers - 1`` forked ones and this one.
    All take the chunks in order: this process takes each chunk no worker has started yet
    (cancelling its task), so the last, smallest chunks still end together. Its own
    entries need no sending back, and it starts at once, where a forked worker starts
    some 15 ms later."""
    global _WORKER_KEY
    chunks = shrinking_chunks(files, workers)
    _WORKER_KEY = key
    try:
        with contextlib.ExitStack() as stack:
            # each chunk's file, made before the workers are forked: they inherit them
            spools: list[int | None] = [None] * len(chunks)
            with contextlib.suppress(OSError):  # (none: results through the pipe)
                spools = [stack.enter_context(tempfile.TemporaryFile()).fileno()
                          for _ in chunks]
            pool = stack.enter_context(ProcessPoolExecutor(
                workers - 1, mp_context=mp.get_context("fork"), initializer=_start_worker,
                initargs=(os.getpid(),)))
            try:
                futures = [pool.submit(_grade_chunk, chunk, max_bytes, spool)
                           for chunk, spool in zip(chunks, spools)]
                done: list[list[Entry] | None] = [None] * len(chunks)

                def collect(i: int) -> None:  # a chunk a worker graded
                    done[i] = _spooled(futures[i].result(), spools[i])
                    tick(len(chunks[i]))

                for i, future in enumerate(futures):
                    if future.cancel():  # no worker has it: grade it here
                        done[i] = _grade_chunk(chunks[i], max_bytes)  # type: ignore[assignment]
                        tick(len(chunks[i]))
                    for j in range(i + 1):  # (what the workers finished meanwhile)
                        if done[j] is None and futures[j].done():
                            collect(j)
                left = {f: i for i, f in enumerate(futures) if done[i] is None}
                for f in as_completed(left):
                    collect(left[f])
            except BaseException:  # Ctrl-C: stop now, not after the chunks being graded
                _stop_now(pool)
                raise
            return [e for entries in done for e in entries]  # type: ignore[union-attr]
    finally:
        _WORKER_KEY = None


def shrinking_chunks(files: list[Any], workers: int) -> list[list[Any]]:
    """The files in order, in chunks that shrink as fewer are left (guided scheduling: with
    equal chunks, one worker idled while the other finished the last)."""
    chunks, start = [], 0
    while start < len(files):
        size = max(SMALLEST_CHUNK, math.ceil((len(files) - start) / (CHUNK_SHARE * workers)))
        chunks.append(files[start:start + size])
        start += size
    return chunks


def _stop_now(pool: ProcessPoolExecutor) -> None:
    """Workers killed, chunks not yet started dropped. (The standard library can kill a
    pool's workers only from Python 3.14, hence its private list of them.)"""
    for worker in list((getattr(pool, "_processes", None) or {}).values()):
        worker.kill()
    pool.shutdown(wait=False, cancel_futures=True)


def _start_worker(parent: int) -> None:
    """A worker dies with the grading process, even one killed by ``kill -9``, rather than
    grade on for nobody. Ctrl-C and a plain kill are the parent's to handle: it stops
    the pool."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent(parent)
    # No cyclic collection in a worker at all: what it keeps (its students' parsed
    # variants) grows chunk by chunk and makes no cycles, and collections between chunks
    # walked all of it again: 10,000 submissions took 5.7 s instead of 4.0 s. Its few
    # cycles, if any, are freed when it exits at the end of the run.
    gc.disable()


def _mark_superseded(entries: list[Entry]) -> None:
    """Of several graded files for one student, count the newest (then the last by name)."""
    graded = [e for e in entries if e.status == "graded" and e.student_id]
    if len({e.student_id for e in graded}) == len(graded):  # one file each: nearly always
        return
    by_student: dict[str, list[Entry]] = {}
    for e in graded:
        by_student.setdefault(e.student_id, []).append(e)
    for group in by_student.values():
        if len(group) < 2:
            continue
        keep = max(group, key=lambda e: (e.mtime, e.file))
        for e in group:
            if e is not keep:
                e.status = "superseded"
                e.messages.append(f"another submission for {e.student_id} is newer and was "
                                  f"counted: {keep.file}")
        keep.messages.append(f"{len(group) - 1} older submission(s) for this student were not counted")


def shown(path: str | Path) -> str:
    """A file's name as reports and the terminal show it: bytes that are not UTF-8 (a Latin-1
    name from a Windows zip) as \\xe9, and control characters (terminal escapes) as \\x1b,
    so no name can break a report or repaint the TA's screen."""
    text = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():  # nearly every name: nothing to escape
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def file_stem(path: str | Path) -> str:
    """``Path(path).stem`` (the name without its last suffix; a name that is only a
    suffix, ``.json``, kept whole), without making a Path.

    >>> file_stem("class/s001.json"), file_stem("a.b.json"), file_stem(".json"), file_stem("x.")
    ('s001', 'a.b', '.json', 'x.')
    """
    name = os.path.basename(path)
    dot = name.rfind(".")
    return name[:dot] if 0 < dot < len(name) - 1 else name


def spreadsheet_safe(text: str) -> str:
    """Text a spreadsheet shows as text: a leading = + - @ (or tab, carriage return) would
    make Excel or Sheets run it as a formula (=HYPERLINK(...) as a student id), so it gets
    a leading apostrophe, which they hide."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


@no_gc_pauses()  # many small dicts, all kept until written, none in a cycle
def write_reports(report: Report, out: Path) -> tuple[Path, Path]:
    """grades.csv and report.json in ``out``, both new or both as they were.

    Each is written whole to a temporary file beside it and forced to disk before any
    is replaced; then report.json replaces the old one, grades.csv last. A full disk or
    a read-only folder raises a :class:`DeepdrillError` saying so, with the previous
    files untouched and no temporary file left behind.
    """
    rows = report.student_rows()  # once for both files: a row per student of the class
    temps: list[Path] = []
    replaced: list[str] = []
    with out_locked(out):
        try:
            # report.json (a class's is tens of MB) goes to disk, piece by piece as it is
            # made, while grades.csv is made
            with ThreadPoolExecutor(1) as pool:
                writing = pool.submit(temp_beside, out / REPORT_FILES[0],
                                      report.json_pieces(rows))
                try:
                    grades = grades_csv(report, rows).encode("utf-8")
                except BaseException:
                    with contextlib.suppress(Exception):
                        temps.append(writing.result())  # to be removed below
                    raise
                temps.append(writing.result())  # (raises what writing it raised: a full disk)
            temps.append(temp_beside(out / REPORT_FILES[1], grades))
            for tmp, name in zip(temps, REPORT_FILES):
                os.replace(tmp, out / name)
                replaced.append(name)
        except OSError as err:
            raise DeepdrillError(_write_failed(out, err, replaced)) from None
        finally:
            for tmp in temps:
                tmp.unlink(missing_ok=True)
    return out / "grades.csv", out / "report.json"


def grades_csv(report: Report, rows: list[dict[str, Any]] | None = None) -> str:
    """grades.csv's text: a row per student, every text cell spreadsheet-safe."""
    labels, top = report.key.labels, report.key.max_score
    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["id", "name", *labels, "total", "carried_forward", "max_score", "status",
                "file", "notes"])
    for r in report.student_rows() if rows is None else rows:
        scores = r["questions"]
        w.writerow([spreadsheet_safe(r["id"]), spreadsheet_safe(r["name"]),
                    *(scores.values() if list(scores) == labels else map(scores.__getitem__,
                                                                          labels)),
                    r["total"], r["carried_forward"], top, r["status"],
                    spreadsheet_safe(r["file"]), spreadsheet_safe("; ".join(r["notes"]))])
    return text.getvalue()


def _write_failed(out: Path, err: OSError, replaced: Iterable[str] = ()) -> str:
    hint = {errno.ENOSPC: "; free some space", errno.EDQUOT: "; free some space",
            errno.EACCES: "; grade into a folder you can write (--out)",
            errno.EROFS: "; grade into a folder you can write (--out)"}.get(err.errno or 0, "")
    what = f"cannot write the reports in {out}: {err.strerror or err}{hint}"
    if replaced:  # only a failed rename after the first: not seen in practice
        return f"{what}. Only {', '.join(replaced)} was replaced: grade again"
    return (f"{what}. Nothing was changed: the previous grades.csv and report.json there, "
            f"if any, are intact")


@contextlib.contextmanager
def out_locked(out: Path) -> Iterator[None]:
    """Only this process writes reports into ``out`` until the block ends (the folder's
    lock, :func:`deepdrill.files.locked`: a killed grader never leaves it held; a second
    one waits ``LOCK_WAIT_S``, then refuses). Temporary files a killed grader left behind
    are removed once the lock is held."""
    held = contextlib.ExitStack()
    try:
        held.enter_context(locked(out, "grade", LOCK_WAIT_S))
    except OSError as err:  # a folder that cannot be made or opened
        raise DeepdrillError(_write_failed(out, err)) from None
    with held:
        for name in REPORT_FILES:
            remove_temps(out, name)
        yield
