"""Write the example submissions in examples/submissions/ from the example assignment.

The files imitate a class: one student right, one who works by hand (every
intermediate rounded to three figures, answers typed as text, fractions where short),
one making the typical mistake of each question (later answers computed from it), one half done with garbage in
places, one whose file is broken JSON, one who submits nothing, and one file from
a student who is not on the roster. Run it again after changing an example
assignment or the roster:

    python examples/make_submissions.py                   # assignment.toml -> submissions/
    python examples/make_submissions.py backprop.toml     # -> backprop/submissions/
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from deepdrill.generator.assignment import load_assignment, load_roster
from deepdrill.generator.build import make_variants, readable_json
from deepdrill.generator.exercise import get
from deepdrill.generator.steps import by_hand as by_hand_step
from deepdrill.generator.steps import run

HERE = Path(__file__).resolve().parent


def as_text(value: Any) -> Any:
    """Numbers as strings a student might type: fractions where short, decimals otherwise."""
    if isinstance(value, list):
        return [as_text(v) for v in value]
    if isinstance(value, str):  # a formula: written another way, as a student might
        return f"({value})*1"
    frac = Fraction(value).limit_denominator(16)
    return str(frac) if abs(float(frac) - value) < 1e-9 else f"{value:.3g}"


def by_hand(v: Any) -> dict[str, Any]:
    """A variant's answers as a student working by hand gets them: every step rounded to
    three figures before the next one uses it."""
    ex = get(v.type)
    return ex.answers(v.fields, run(ex.graph(v.params), v.params, rounding=by_hand_step))


def garble(value: Any, depth: int = 0) -> Any:
    """Half the entries right, then a wrong number, then text."""
    if isinstance(value, list):
        return [garble(v, depth + i) for i, v in enumerate(value)]
    return value if depth % 3 == 0 else ("about 3" if depth % 3 == 1 else value + 1)


def submissions_folder(name: str) -> Path:
    """Where an example assignment's submissions live: submissions/ for the quickstart's
    assignment.toml, <name>/submissions/ for the others."""
    stem = Path(name).stem
    return HERE / "submissions" if stem == "assignment" else HERE / stem / "submissions"


def main(name: str = "assignment.toml") -> None:
    assignment = load_assignment(HERE / name)
    students, _ = load_roster(HERE / "roster.csv")
    builds = {b.student.id: b for b in make_variants(assignment, students)}
    out = submissions_folder(name)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.json"):
        old.unlink()

    def answers(sid: str, how: Any) -> dict[str, Any]:
        return {label: how(v) for label, v in builds[sid].variants.items()}

    def mistaken(v: Any) -> dict[str, Any]:
        """The recognised mistake that reaches the most fields (later ones computed from
        it earn carried-forward credit)."""
        widest = max(v.mistakes, key=lambda m: len(m.answers)).answers if v.mistakes else {}
        return {**v.answers, **widest}

    def half(v: Any) -> dict[str, Any]:
        names = list(v.answers)
        return {n: garble(v.answers[n]) for n in names[: max(1, len(names) - 1)]}

    files = {
        "s001": {"student_id": "s001", "answers": answers("s001", lambda v: v.answers)},
        "s002": {"student_id": "s002",
                 "answers": answers("s002", lambda v: {k: as_text(a) for k, a in
                                                       by_hand(v).items()})},
        "s003": {"student_id": "s003", "answers": answers("s003", mistaken)},
        "s004": {"student_id": "s004", "answers": answers("s004", half)},
        "s999": {"student_id": "s999", "answers": answers("s001", lambda v: v.answers)},
    }
    for sid, data in files.items():
        (out / f"{sid}.json").write_text(readable_json(data) + "\n", encoding="utf-8")
    broken = readable_json({"student_id": "s005", "answers": answers("s005", lambda v: v.answers)})
    (out / "s005.json").write_text(broken[: len(broken) // 2] + "\n", encoding="utf-8")
    print(f"wrote {len(files) + 1} files to {out} (s006 submits nothing)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
