"""Build an assignment for a class: variants, answer key, manifest, blank submissions, PDFs.

Output layout (``out`` is the folder given to ``deepdrill build``)::

    out/key.json                     answer key: instructor only, never handed out
    out/manifest.json                tool version, input hashes, each student's seed
    out/problems.pdf                 every student's problems, for printing
    out/solutions.pdf                every student's worked solutions
    out/students/<id>/problems.pdf   one student's sheet
    out/students/<id>/solutions.pdf
    out/students/<id>/submission.json  the blank answer file to fill in
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from deepdrill import __version__

from .assignment import Assignment, Student
from .exercise import get, make_variant
from deepdrill.model.fields import skeleton
from .pdf import concatenate, pdflatex, typeset
from .render import Question, Sheet
from deepdrill.model.variant import Variant

KEY_FORMAT = "deepdrill-key/2"  # /2: versioned types, step graphs, carried-forward credit
MIN_CHUNK, MAX_CHUNK = 10, 150  # students per parallel task
TASKS_PER_WORKER = 2  # each pdflatex run costs ~0.25 s of start-up: few, large tasks
MAX_FOLDER = 64  # characters of an id kept in its folder's name (file systems allow 255 bytes)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class StudentBuild:
    student: Student
    seed: int
    folder: str
    variants: dict[str, Variant]  # by question label


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
    shortened form and a short tag of the id itself, so "a/b" never lands on "a_b"'s folder whatever the
    roster's order (a numbered suffix only if two tags ever meet)."""
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
                  b.student.name, b.student.id)
            for b in builds]


def key_bytes(assignment: Assignment, builds: list[StudentBuild]) -> bytes:
    """The answer key as one JSON document, laid out one student per line.

    Any JSON tool reads it whole. The first line holds the format, the assignment and
    the roster; then each line is one student's variants, in roster order. The grader
    reads it by lines, so a worker parses only the students it grades.
    """
    head = orjson.dumps({
        "format": KEY_FORMAT,
        "deepdrill_version": __version__,
        "assignment": assignment.to_json(),
        "type_versions": {q.type: get(q.type).version for q in assignment.questions},
        "roster": [{"id": b.student.id, "name": b.student.name, "seed": b.seed,
                    "folder": b.folder} for b in builds],
        "students": [],
    })
    assert head.endswith(b"[]}")
    lines = [orjson.dumps({"id": b.student.id,
                           "variants": {k: v.to_json() for k, v in b.variants.items()}})
             for b in builds]
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


def _build_chunk(assignment: Assignment, students: list[Student], folders: list[str],
                 out: Path, pdf_dir: Path | None, index: int) -> list[StudentBuild]:
    """One task: variants and blank submissions for some students, and their PDFs when
    pdf_dir is given."""
    builds = make_variants(assignment, students, folders=folders)
    for b in builds:
        write_json(out / "students" / b.folder / "submission.json", blank_submission(assignment, b))
    if pdf_dir is not None:
        chunk_sheets = sheets(assignment, builds)
        for solutions, kind in ((False, "problems"), (True, "solutions")):
            outputs = [out / "students" / b.folder / f"{kind}.pdf" for b in builds]
            pdf = typeset(chunk_sheets, solutions, pdf_dir / f"{kind}{index}", outputs)
            pdf.rename(pdf_dir / f"{kind}-{index:05d}.pdf")
    return builds


def build(assignment: Assignment, students: list[Student], out: Path, *, pdf: bool = True,
          roster_info: dict[str, Any] | None = None, workers: int | None = None,
          progress: Callable[[str, int, Callable[[int], None]], Any] | None = None) -> dict[str, Any]:
    """Write everything for the class into ``out``; return the manifest.

    Students are split into chunks built in parallel processes (variants, LaTeX,
    one pdflatex run per chunk and sheet kind, split per student).
    ``progress(label, total, body)`` wraps the work for a progress bar; ``body``
    gets a callback to report students done.
    """
    out.mkdir(parents=True, exist_ok=True)
    if pdf:
        pdflatex()  # fail before any work if LaTeX is missing
    workers = workers or os.cpu_count() or 1
    taken: set[str] = set()
    folders = [safe_folder(s.id, taken) for s in students]
    size = chunk_size(len(students), workers)
    starts = range(0, len(students), size)
    label = "sheets+PDF" if pdf else "variants"

    parallel = workers > 1 and len(starts) > 1
    with tempfile.TemporaryDirectory(prefix="deepdrill-") as tmp, \
            (ProcessPoolExecutor(max_workers=workers) if parallel else _InProcess()) as pool:
        pdf_dir = Path(tmp) if pdf else None

        def run(tick: Callable[[int], None]) -> list[StudentBuild]:
            futures = [pool.submit(_build_chunk, assignment, students[a:a + size],
                                   folders[a:a + size], out, pdf_dir, i)
                       for i, a in enumerate(starts)]
            for f in as_completed(futures):
                tick(len(f.result()))
            return [b for f in futures for b in f.result()]

        builds = progress(label, len(students), run) if progress else run(lambda n: None)
        # the combined PDFs are joined by the workers while this process writes the key
        joins = [pool.submit(concatenate, sorted(pdf_dir.glob(f"{kind}-*.pdf")),
                             out / f"{kind}.pdf")
                 for kind in ("problems", "solutions")] if pdf_dir is not None else []
        (out / "key.json").write_bytes(key_bytes(assignment, builds))
        for j in joins:
            j.result()

    files = {"key": "key.json", "submissions": "students/<folder>/submission.json"}
    if pdf:
        files.update({"problems": "problems.pdf", "solutions": "solutions.pdf",
                      "student_problems": "students/<folder>/problems.pdf",
                      "student_solutions": "students/<folder>/solutions.pdf"})
    manifest = {
        "deepdrill_version": __version__,
        "built_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "assignment": {"file": assignment.source, "sha256": assignment.sha256,
                       "title": assignment.title, "seed": assignment.seed},
        "roster": roster_info or {},
        "pdf": pdf,
        "files": files,
        "students": [{"id": b.student.id, "name": b.student.name, "seed": b.seed,
                      "folder": b.folder} for b in builds],
    }
    write_json(out / "manifest.json", manifest)
    return manifest
