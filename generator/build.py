"""Build an assignment for a class: variants, answer key, manifest, blank submissions, PDFs.

Output layout (``out`` is the folder given to ``deepdrill build``)::

    out/key.json                     answer key: instructor only, never handed out
    out/manifest.json                tool version, input hashes, each student's seed
    out/problems.pdf                 every student's problems, for printing
    out/solutions.pdf                every student's worked solutions
    out/students/<id>/problems.pdf   what is handed out: one student's sheet
    out/students/<id>/submission.json  and the blank answer file to fill in
    out/students/<id>/answers.html   the same answers as an offline form that saves that file
    out/solutions/<id>.pdf           one student's worked solutions, for after the deadline

The whole build is written into a staging folder first and switched over as one unit
(:mod:`deepdrill.files`): a killed or failed build leaves the previous one intact. A
rebuild with the same assignment reuses every student whose sheet would not change
(late enrolment compiles only the newcomers' sheets) and drops students no longer on
the roster.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from deepdrill import __version__
from deepdrill.errors import DeepdrillError
from deepdrill.files import (describe, die_with_parent, janitor, locked, settle, staging,
                             switch_over)

from .answer_form import answer_form
from .assignment import Assignment, Student
from .exercise import get, make_variant
from deepdrill.model.fields import skeleton
from .pdf import assemble, pdflatex, typeset
from .render import Question, Sheet
from deepdrill.model.key import KEY_FORMAT, Shared, read_key_lines, student_line
from deepdrill.model.variant import Variant

# /2: versioned types, step graphs, carried-forward credit; /3: fields and feedback texts
# stored once in the header, named by index in the students' lines (half the size)
LAYOUT = 2  # /2: solutions beside the handed-out folders, not in them
MANAGED = ("students", "solutions", "problems.pdf", "solutions.pdf", "manifest.json",
           "key.json")  # what a build owns in its folder; the key moves in last
KINDS = ("problems", "solutions")
MIN_CHUNK, MAX_CHUNK = 10, 150  # students per parallel task
TASKS_PER_WORKER = 2  # each pdflatex run costs ~0.25 s of start-up: few, large tasks
MAX_FOLDER = 64  # characters of an id kept in its folder's name (file systems allow 255 bytes)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
STUDENT_FILES = ("submission.json", "answers.html")  # handed out beside problems.pdf


@dataclass
class StudentBuild:
    student: Student
    seed: int
    folder: str
    variants: dict[str, Variant]  # by question label (empty when reused)
    line: bytes | None = None  # a reused student's line of the previous key
    pages: dict[str, int] | None = None  # pages of each sheet kind
    chunk: int = -1  # the task that typeset a new student, and where in its documents
    offsets: dict[str, int] = field(default_factory=dict)


def make_variants(assignment: Assignment, students: list[Student],
                  progress: Callable[[int], None] | None = None,
                  folders: list[str] | None = None) -> list[StudentBuild]:
    """Each student's variants, derived from the assignment seed and the student id only."""
    if folders is None:
        taken: set[str] = set()
        folders = [safe_folder(s.id, taken) for s in students]
    builds = []
    for student, folder in zip(students, folders):
        seed = assignment.student_seed(student.id)
        variants = {q.label: make_variant(q.type, q.variant_seed(seed), q.params, q.options,
                                          q.tolerances)
                    for q in assignment.questions}
        builds.append(StudentBuild(student, seed, folder, variants))
        if progress:
            progress(1)
    return builds


def safe_folder(student_id: str, taken: set[str]) -> str:
    """A folder name from a student id: no path separators, unique, never hidden, and
    predictable: an id that is a safe name keeps it; another (or a long one) gets its cleaned,
    shortened form and a short tag of the id itself, so "a/b" never lands on "a_b"'s folder
    whatever the roster's order (a numbered suffix only if two tags ever meet)."""
    base = (_UNSAFE.sub("_", student_id).strip("._") or "student")[:MAX_FOLDER]
    if base != student_id:
        base = f"{base}-{hashlib.sha256(student_id.encode('utf-8')).hexdigest()[:6]}"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def sheets(assignment: Assignment, builds: list[StudentBuild]) -> list[Sheet]:
    return [Sheet(assignment.title, assignment.course,
                  [Question(i + 1, q.points, b.variants[q.label], q.label, q.carry_forward)
                   for i, q in enumerate(assignment.questions)],
                  b.student.name, b.student.id, seed=b.seed)
            for b in builds]


def key_bytes(assignment: Assignment, builds: list[StudentBuild],
              shared: Shared | None = None) -> bytes:
    """The answer key as one JSON document, laid out one student per line.

    Any JSON tool reads it whole. The first line holds the format, the assignment, the
    roster and the fields and feedback texts the variants share (:class:`Shared`, which
    reused students' lines name: pass the previous key's); then each line is one
    student's variants, in roster order (:func:`student_line`: each variant's mistakes
    set apart by two tabs). The grader reads it by lines, so a worker parses only the
    students it grades, and a question's mistakes only for a wrong answer.
    """
    shared = shared or Shared()
    lines = [b.line or student_line(b.student.id, {k: shared.variant_json(v)
                                                   for k, v in b.variants.items()})
             for b in builds]
    head = orjson.dumps({
        "format": KEY_FORMAT,
        "deepdrill_version": __version__,
        "assignment": assignment.to_json(),
        "type_versions": {q.type: get(q.type).version for q in assignment.questions},
        "roster": [{"id": b.student.id, "name": b.student.name, "seed": b.seed,
                    "folder": b.folder} for b in builds],
        "shared": shared.to_json(),
        "students": [],
    })
    assert head.endswith(b"[]}")
    return head[:-2] + b"\n" + b",\n".join(lines) + b"\n]}\n"


def blank_submission(assignment: Assignment, build: StudentBuild) -> dict[str, Any]:
    """What a student fills in: nulls in the shape of each answer, no answers."""
    return {
        "student_id": build.student.id,
        "name": build.student.name,
        "answers": {q.label: {f.name: skeleton(f.shape) for f in build.variants[q.label].fields}
                    for q in assignment.questions},
    }


def write_json(path: Path, data: Any) -> None:
    """A JSON file for people to read (submissions, manifest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(readable_json(data) + "\n", encoding="utf-8")


def readable_json(data: Any, level: int = 0) -> str:
    """JSON for people: objects indented, each innermost list (a matrix row) on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(data, dict) and data:
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {readable_json(v, level + 1)}"
                 for k, v in data.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(data, list) and any(isinstance(v, (list, dict)) for v in data):
        items = [inner + readable_json(v, level + 1) for v in data]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(data, ensure_ascii=False, allow_nan=False)


class _InProcess:
    """An executor that runs each task at once in this process (one worker, or one chunk)."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as err:
            future.set_exception(err)
        return future

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


def chunk_size(n_students: int, workers: int) -> int:
    """Students per task: a few tasks per worker for balance, each big enough to amortise
    the start-up of pdflatex."""
    return max(MIN_CHUNK, min(MAX_CHUNK, math.ceil(n_students / (workers * TASKS_PER_WORKER))))


def sheet_path(stage: Path, kind: str, folder: str) -> Path:
    """Where a student's sheet goes: problems in the folder handed out, solutions beside it."""
    if kind == "problems":
        return stage / "students" / folder / "problems.pdf"
    return stage / "solutions" / f"{folder}.pdf"


def _build_chunk(assignment: Assignment, students: list[Student], folders: list[str],
                 stage: Path, pdf: bool, index: int) -> list[StudentBuild]:
    """One task: variants and blank submissions for some students, and their PDFs (one
    pdflatex run per sheet kind, the chunk's document kept for the combined PDFs)."""
    builds = make_variants(assignment, students, folders=folders)
    for b in builds:
        write_json(stage / "students" / b.folder / "submission.json",
                   blank_submission(assignment, b))
        (stage / "students" / b.folder / "answers.html").write_text(
            answer_form(assignment, b), encoding="utf-8")
    if pdf:
        chunk_sheets = sheets(assignment, builds)
        for b in builds:
            b.pages, b.chunk = {}, index
        for kind in KINDS:
            work = stage / ".tex" / f"{kind}{index}"
            outputs = [sheet_path(stage, kind, b.folder) for b in builds]
            document, starts, counts = typeset(chunk_sheets, kind == "solutions", work, outputs)
            document.rename(stage / ".tex" / f"{kind}-{index:05d}.pdf")
            for b, start, n in zip(builds, starts, counts):
                b.pages[kind], b.offsets[kind] = n, start  # type: ignore[index]
    return builds


@dataclass
class Previous:
    """What the build already in ``out`` offers for reuse: the students whose sheets this
    build would make again byte for byte (same assignment file, deepdrill, PDF setting,
    id, name and folder), with their key lines and page counts."""

    out: Path
    students: dict[str, dict[str, Any]]  # by id: the manifest's entry, with its key line
    shared: Shared = field(default_factory=Shared)  # what the key lines name by index

    @classmethod
    def load(cls, out: Path, assignment: Assignment, pdf: bool) -> "Previous":
        try:
            manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
            if not (manifest.get("layout") == LAYOUT and manifest.get("pdf") == pdf and
                    manifest.get("deepdrill_version") == __version__ and assignment.sha256 and
                    manifest["assignment"]["sha256"] == assignment.sha256):
                return cls(out, {})
            head, lines = read_key_lines((out / "key.json").read_bytes())
            roster = head["roster"]
            if head.get("format") != KEY_FORMAT or len(roster) != len(lines) or \
                    roster != [{k: s[k] for k in ("id", "name", "seed", "folder")}
                               for s in manifest["students"]]:
                return cls(out, {})
            students, at = {}, dict.fromkeys(KINDS, 0)
            for s, line in zip(manifest["students"], lines):
                students[s["id"]] = {**s, "line": line, "starts": dict(at)}
                for kind in KINDS if pdf else ():
                    at[kind] += s["pages"][kind]
            shared = Shared(head.get("shared"))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(out, {})
        return cls(out, students, shared)

    def reuse(self, student: Student, seed: int, folder: str, pdf: bool) -> StudentBuild | None:
        old = self.students.get(student.id)
        if old is None or old["name"] != student.name or old["folder"] != folder or \
                old["seed"] != seed or (pdf and not isinstance(old.get("pages"), dict)):
            return None
        files = [self.out / "students" / folder / name for name in STUDENT_FILES]
        if pdf:
            files += [sheet_path(self.out, kind, folder) for kind in KINDS]
        if not all(f.is_file() for f in files):
            return None
        return StudentBuild(student, seed, folder, {}, old["line"], old.get("pages"))

    def link_into(self, stage: Path, b: StudentBuild, pdf: bool) -> None:
        """The student's files from the previous build, unchanged (hard links where the
        file system allows)."""
        pairs = [(self.out / "students" / b.folder / name, stage / "students" / b.folder / name)
                 for name in STUDENT_FILES]
        if pdf:
            pairs += [(sheet_path(self.out, kind, b.folder), sheet_path(stage, kind, b.folder))
                      for kind in KINDS]
        for src, dst in pairs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)


def build(assignment: Assignment, students: list[Student], out: Path, *, pdf: bool = True,
          roster_info: dict[str, Any] | None = None, workers: int | None = None,
          progress: Callable[[str, int, Callable[[int], None]], Any] | None = None,
          fresh: bool = False, notes: list[str] | None = None) -> dict[str, Any]:
    """Write everything for the class into ``out``; return the manifest.

    Students are split into chunks built in parallel processes (variants, LaTeX,
    one pdflatex run per chunk and sheet kind, split per student), in a staging
    folder switched over as one unit at the end. Students of the previous build whose
    sheets would not change are reused unless ``fresh``. ``progress(label, total,
    body)`` wraps the work for a progress bar; ``body`` gets a callback to report
    students done. ``notes`` receives what the build did besides (reuse, recovery).
    """
    if pdf:
        pdflatex()  # fail before any work if LaTeX is missing
    notes = notes if notes is not None else []
    try:
        with locked(out, "build"):
            notes += settle(out)
            previous = Previous(out, {}) if fresh else Previous.load(out, assignment, pdf)
            with janitor(out):  # tidies the staging folder if this process is killed
                stage = staging(out)
                try:
                    manifest = _build_into(stage, assignment, students, previous, pdf,
                                           roster_info or {}, workers or os.cpu_count() or 1,
                                           progress, notes)
                except BaseException:
                    shutil.rmtree(stage, ignore_errors=True)
                    raise
                # from here on the journal finishes the switch if this process cannot
                switch_over(out, stage, [m for m in MANAGED if (stage / m).exists()], MANAGED)
    except OSError as err:
        raise DeepdrillError(f"could not build into {out}: {describe(err)}; nothing there "
                             f"was changed (a previous build is intact)") from None
    return manifest


def _build_into(stage: Path, assignment: Assignment, students: list[Student],
                previous: Previous, pdf: bool, roster_info: dict[str, Any], workers: int,
                progress: Callable[[str, int, Callable[[int], None]], Any] | None,
                notes: list[str]) -> dict[str, Any]:
    taken: set[str] = set()
    folders = [safe_folder(s.id, taken) for s in students]
    seeds = [assignment.student_seed(s.id) for s in students]
    reused = [previous.reuse(s, seed, f, pdf) for s, seed, f in zip(students, seeds, folders)]
    todo = [i for i, r in enumerate(reused) if r is None]
    for r in reused:
        if r is not None:
            previous.link_into(stage, r, pdf)
    if len(todo) < len(students):
        notes.append(f"reused the sheets of {len(students) - len(todo)} student(s) from the "
                     f"previous build unchanged; built {len(todo)}")
    size = chunk_size(len(todo), workers)
    starts = range(0, len(todo), size)
    parallel = workers > 1 and len(starts) > 1
    with (ProcessPoolExecutor(max_workers=workers, initializer=die_with_parent,
                              initargs=(os.getpid(),)) if parallel else _InProcess()) as pool:
        def run(tick: Callable[[int], None]) -> list[StudentBuild]:
            chunks = [todo[a:a + size] for a in starts]
            futures = [pool.submit(_build_chunk, assignment, [students[i] for i in chunk],
                                   [folders[i] for i in chunk], stage, pdf, n)
                       for n, chunk in enumerate(chunks)]
            for f in as_completed(futures):
                tick(len(f.result()))
            return [b for f in futures for b in f.result()]

        label = "sheets+PDF" if pdf else "variants"
        made = iter(progress(label, len(todo), run) if progress and todo else run(lambda n: None))
        builds = [r if r is not None else next(made) for r in reused]
        joins = [pool.submit(_combined, stage, previous.out, kind, builds, previous)
                 for kind in KINDS] if pdf else []
        (stage / "key.json").write_bytes(key_bytes(assignment, builds, previous.shared))
        for j in joins:
            j.result()
    shutil.rmtree(stage / ".tex", ignore_errors=True)
    manifest = _manifest(assignment, builds, roster_info, pdf)
    write_json(stage / "manifest.json", manifest)
    return manifest


def _combined(stage: Path, old: Path, kind: str, builds: list[StudentBuild],
              previous: Previous) -> None:
    """The class's PDF of one sheet kind, in roster order: new students' pages from this
    build's documents, reused students' from the previous combined PDF."""
    runs = []
    for b in builds:
        n = b.pages[kind]  # type: ignore[index]
        if b.line is not None:
            runs.append((old / f"{kind}.pdf", previous.students[b.student.id]["starts"][kind], n))
        else:
            runs.append((stage / ".tex" / f"{kind}-{b.chunk:05d}.pdf", b.offsets[kind], n))
    assemble(runs, stage / f"{kind}.pdf")


def _manifest(assignment: Assignment, builds: list[StudentBuild], roster_info: dict[str, Any],
              pdf: bool) -> dict[str, Any]:
    files = {"key": "key.json", "submissions": "students/<folder>/submission.json",
             "answer_forms": "students/<folder>/answers.html"}
    if pdf:
        files.update({"problems": "problems.pdf", "solutions": "solutions.pdf",
                      "student_problems": "students/<folder>/problems.pdf",
                      "student_solutions": "solutions/<folder>.pdf"})
    return {
        "deepdrill_version": __version__,
        "layout": LAYOUT,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "assignment": {"file": assignment.source, "sha256": assignment.sha256,
                       "title": assignment.title, "seed": assignment.seed},
        "roster": roster_info,
        "pdf": pdf,
        "files": files,
        "students": [{"id": b.student.id, "name": b.student.name, "seed": b.seed,
                      "folder": b.folder, **({"pages": b.pages} if pdf else {})}
                     for b in builds],
    }
