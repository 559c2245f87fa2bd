"""Assignment files (TOML) and rosters (CSV).

An assignment lists its questions: the exercise type, the points, any pinned
parameters (the rest is randomized per student), size options, per-field
tolerances, and the credit policy. See examples/assignment.toml.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from deepdrill.errors import DeepdrillError

from .exercise import get, make_variant
from .randomness import derive_seed

ID_COLUMNS = ("id", "student_id", "student id", "sis_id")
NAME_COLUMNS = ("name", "student_name", "student name", "full_name")


@dataclass(frozen=True)
class QuestionSpec:
    label: str  # "q1": the key in submissions
    type: str
    points: float
    params: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    tolerances: dict[str, dict[str, Any]] = field(default_factory=dict)
    all_or_nothing: bool = False
    carry_forward: float = 1.0  # share of the credit for a value right from own wrong values

    def variant_seed(self, student_seed: int) -> int:
        return derive_seed(student_seed, self.label)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "type": self.type, "points": self.points,
                "all_or_nothing": self.all_or_nothing, "carry_forward": self.carry_forward}


@dataclass(frozen=True)
class Assignment:
    title: str
    course: str
    seed: int
    questions: list[QuestionSpec]
    sha256: str = ""
    source: str = ""

    def student_seed(self, student_id: str) -> int:
        return derive_seed(self.seed, student_id)

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "course": self.course, "seed": self.seed,
                "sha256": self.sha256, "source": self.source,
                "questions": [q.to_json() for q in self.questions]}


@dataclass(frozen=True)
class Student:
    id: str
    name: str


def load_assignment(path: Path) -> Assignment:
    """Read, validate and check an assignment file; errors name the file and the entry."""
    try:
        raw = path.read_bytes()
        data = tomllib.loads(raw.decode("utf-8-sig"))
    except OSError as err:
        raise DeepdrillError(f"cannot read assignment {path}: {err.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DeepdrillError(f"{path}: not valid TOML: {err}") from None
    return parse_assignment(data, sha256=hashlib.sha256(raw).hexdigest(), source=str(path))


def parse_assignment(data: dict[str, Any], sha256: str = "", source: str = "assignment") -> Assignment:
    validator = jsonschema.Draft202012Validator(_schema())
    problems = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if problems:
        lines = [f"  {_where(e.absolute_path)}: {e.message}" for e in problems[:10]]
        raise DeepdrillError(f"{source}: invalid assignment:\n" + "\n".join(lines))
    _refuse_non_finite(data, source)
    default_aon = data.get("all_or_nothing", False)
    default_cf = data.get("carry_forward", "full")
    questions = [
        QuestionSpec(label=f"q{i + 1}", type=q["type"], points=float(q["points"]),
                     params=q.get("params", {}), options=q.get("options", {}),
                     tolerances=q.get("tolerances", {}),
                     all_or_nothing=q.get("all_or_nothing", default_aon),
                     carry_forward=carry_share(q.get("carry_forward", default_cf)))
        for i, q in enumerate(data["questions"])
    ]
    assignment = Assignment(data["title"], data.get("course", ""), data["seed"], questions,
                            sha256, source)
    for q in questions:  # fail now, with the question named, not halfway through a build
        get(q.type)
        try:
            make_variant(q.type, derive_seed(assignment.seed, "check", q.label), q.params,
                         q.options, q.tolerances)
        except DeepdrillError as err:
            raise DeepdrillError(f"{source}: {q.label} ({q.type}): {err.message}") from None
    return assignment


def _refuse_non_finite(data: dict[str, Any], source: str) -> None:
    """TOML allows inf and nan, which every schema bound lets through (nan compares false):
    points, tolerances and shares must be finite numbers."""
    def walk(value: Any, path: list[Any]) -> None:
        if isinstance(value, float) and not math.isfinite(value):
            raise DeepdrillError(f"{source}: {_where(path)} is {value}; give a finite number")
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, [*path, k])
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, [*path, i])
    walk({k: v for k, v in data.items() if k != "questions"}, [])
    for i, q in enumerate(data["questions"]):
        walk({k: q.get(k) for k in ("points", "tolerances", "carry_forward")}, ["questions", i])


def carry_share(value: Any) -> float:
    """The carry_forward setting as a share of the credit: "full" 1, "none" 0, or a number."""
    return {"full": 1.0, "none": 0.0}.get(value, value) if isinstance(value, str) \
        else float(value)


def _where(path: Any) -> str:
    parts = list(path)
    out = ""
    for p in parts:
        out += f"[{p + 1}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out or "(top level)"


def _schema() -> dict[str, Any]:
    text = resources.files("deepdrill.generator").joinpath("schemas/assignment.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def load_roster(path: Path, notes: list[str] | None = None) -> tuple[list[Student], str]:
    """Students from a CSV with an id and a name column, or from a Canvas or Moodle roster
    export as downloaded (see deepdrill.generator.rosters), and the file's sha256.

    ``notes`` receives which columns were used and which rows were skipped, and why."""
    from .rosters import read_roster

    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DeepdrillError(f"cannot read roster {path}: {err.strerror}") from None
    roster = read_roster(raw, str(path))
    if notes is not None:
        notes += roster.summary()
    return roster.students, hashlib.sha256(raw).hexdigest()


def parse_roster(text: str, source: str = "roster") -> list[Student]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = {h.strip().lower(): h for h in (reader.fieldnames or []) if h}
    id_col = next((header[c] for c in ID_COLUMNS if c in header), None)
    name_col = next((header[c] for c in NAME_COLUMNS if c in header), None)
    if id_col is None or name_col is None:
        raise DeepdrillError(f"{source}: the first line must name an 'id' and a 'name' column "
                             f"(found: {', '.join(reader.fieldnames or []) or 'nothing'})")
    students, seen = [], {}
    for line, row in enumerate(reader, start=2):
        sid = (row.get(id_col) or "").strip()
        name = (row.get(name_col) or "").strip()
        if not sid and not name:
            continue
        if not sid:
            raise DeepdrillError(f"{source}, line {line}: student {name!r} has no id")
        if sid in seen:
            raise DeepdrillError(f"{source}, line {line}: id {sid!r} already used on line {seen[sid]}")
        seen[sid] = line
        students.append(Student(sid, name))
    if not students:
        raise DeepdrillError(f"{source}: no students listed")
    return students


def numbered_students(n: int) -> list[Student]:
    """Anonymous variants, for `--variants N` without a roster."""
    width = max(3, len(str(n)))
    return [Student(f"v{i:0{width}d}", f"Variant {i}") for i in range(1, n + 1)]
