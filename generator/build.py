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
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepdrill import __version__

from .assignment import Assignment, Student
from .exercise import make_variant
from .fields import skeleton
from .pdf import PdfJob, build_pdfs
from .render import Question, Sheet
from .variant import Variant

KEY_FORMAT = "deepdrill-key/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class StudentBuild:
    student: Student
    seed: int
    folder: str
    variants: dict[str, Variant]  # by question label


def make_variants(assignment: Assignment, students: list[Student],
                  progress: Callable[[int], None] | None = None) -> list[StudentBuild]:
    """Each student's variants, derived from the assignment seed and the student id only."""
    builds, folders = [], set()
    for student in students:
        seed = assignment.student_seed(student.id)
        variants = {q.label: make_variant(q.type, q.variant_seed(seed), q.params, q.options,
                                          q.tolerances)
                    for q in assignment.questions}
        folder = safe_folder(student.id, folders)
        builds.append(StudentBuild(student, seed, folder, variants))
        if progress:
            progress(1)
    return builds


def safe_folder(student_id: str, taken: set[str]) -> str:
    """A folder name from a student id: no path separators, unique, never hidden."""
    base = _UNSAFE.sub("_", student_id).strip("._") or "student"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def sheets(assignment: Assignment, builds: list[StudentBuild]) -> list[Sheet]:
    return [Sheet(assignment.title, assignment.course,
                  [Question(i + 1, q.points, b.variants[q.label], q.label)
                   for i, q in enumerate(assignment.questions)],
                  b.student.name, b.student.id)
            for b in builds]


def key_json(assignment: Assignment, builds: list[StudentBuild]) -> dict[str, Any]:
    return {
        "format": KEY_FORMAT,
        "deepdrill_version": __version__,
        "assignment": assignment.to_json(),
        "students": [{"id": b.student.id, "name": b.student.name, "seed": b.seed,
                      "folder": b.folder,
                      "variants": {k: v.to_json() for k, v in b.variants.items()}}
                     for b in builds],
    }


def blank_submission(assignment: Assignment, build: StudentBuild) -> dict[str, Any]:
    """What a student fills in: nulls in the shape of each answer, no answers."""
    return {
        "student_id": build.student.id,
        "name": build.student.name,
        "answers": {q.label: {f.name: skeleton(f.shape) for f in build.variants[q.label].fields}
                    for q in assignment.questions},
    }


def write_json(path: Path, data: Any, indent: int | None = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, allow_nan=False) if indent is None else readable_json(data)
    path.write_text(text + "\n", encoding="utf-8")


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


def build(assignment: Assignment, students: list[Student], out: Path, *, pdf: bool = True,
          roster_info: dict[str, Any] | None = None, workers: int | None = None,
          progress: Callable[[str, int, Callable[[int], None]], Any] | None = None) -> dict[str, Any]:
    """Write everything for the class into ``out``; return the manifest.

    ``progress(label, total, body)`` wraps a phase for a progress bar; ``body`` gets a
    callback to report units done.
    """
    def phase(label: str, total: int, body: Callable[[Callable[[int], None]], Any]) -> Any:
        return progress(label, total, body) if progress else body(lambda n: None)

    out.mkdir(parents=True, exist_ok=True)
    builds = phase("variants", len(students), lambda tick: make_variants(assignment, students, tick))
    write_json(out / "key.json", key_json(assignment, builds), indent=None)
    for b in builds:
        write_json(out / "students" / b.folder / "submission.json", blank_submission(assignment, b))
    files = {"key": "key.json", "submissions": "students/<folder>/submission.json"}
    if pdf:
        all_sheets = sheets(assignment, builds)
        jobs = [PdfJob(all_sheets, solutions,
                       [out / "students" / b.folder / f"{kind}.pdf" for b in builds])
                for solutions, kind in ((False, "problems"), (True, "solutions"))]
        phase("PDF sheets", 2 * len(builds),
              lambda tick: build_pdfs(jobs, {False: out / "problems.pdf",
                                             True: out / "solutions.pdf"}, workers, tick))
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
