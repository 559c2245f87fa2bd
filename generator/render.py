"""Variants to LaTeX through the Jinja2 templates in ``templates/``.

Delimiters are LaTeX-safe (``\\VAR{...}``, ``\\BLOCK{...}``, ``\\#{...}``), a
missing variable is an error (``StrictUndefined``), and every value a template
prints passes through :func:`_finalize`: trusted :class:`~.latex.Tex` as is,
numbers formatted, and any other string escaped. Text from outside the program
therefore cannot inject LaTeX, whichever template prints it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2

from . import latex
from .exercise import get
from deepdrill.model.codes import variant_code
from deepdrill.model.fields import Field, Kind, describe_shape, flatten
from deepdrill.model.tolerance import DEFAULT_RTOL, Mode, default_floor
from deepdrill.model.variant import Variant


def _finalize(value: Any) -> Any:
    if isinstance(value, latex.Tex):
        return value
    if isinstance(value, jinja2.Undefined):
        return str(value)  # StrictUndefined raises here, naming the missing variable
    if isinstance(value, bool) or value is None:
        raise TypeError(f"template printed {value!r}; use a condition instead")
    if isinstance(value, str):
        return latex.escape(value)
    if isinstance(value, (int, float)):
        return latex.num(value)
    raise TypeError(f"template printed a {type(value).__name__}; format it as LaTeX first")


def plural(n: int, word: str, many: str | None = None) -> latex.Tex:
    """``3|plural("filter")`` -> "3 filters"; ``1|plural("filter")`` -> "1 filter"."""
    return latex.Tex(f"{latex.num(n)} {word if n == 1 else (many or word + 's')}")


@functools.cache
def environment() -> jinja2.Environment:
    folder = resources.files("deepdrill.templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        block_start_string=r"\BLOCK{",
        block_end_string="}",
        variable_start_string=r"\VAR{",
        variable_end_string="}",
        comment_start_string=r"\#{",
        comment_end_string="}",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        auto_reload=False,  # installed templates do not change during a build
    )
    env.filters["num"] = latex.num
    env.filters["matrix"] = latex.matrix
    env.filters["row"] = latex.row
    env.filters["shape"] = latex.shape
    env.filters["tex"] = latex.Tex  # for template literals only, never for outside text
    env.filters["plural"] = plural
    return env


def _describe(f: Field) -> str:
    """What a field's answer looks like, as the sheet says it."""
    if f.kind is Kind.EXPRESSION:
        return f"a formula in {', '.join(f.symbols)}, typed as text"
    return describe_shape(f.shape)


def tolerance_note(f: Field, answer: Any) -> str | None:
    """What the sheet says under a field whose tolerance is not the default one (the
    sheet's opening note states the default)."""
    tol = f.tolerance
    if f.kind is Kind.EXPRESSION or tol.mode is Mode.COUNT or \
            (tol.mode is Mode.EXACT and f.kind is Kind.INTEGER):
        return None
    if tol.mode is Mode.RELABS and tol.rtol == DEFAULT_RTOL and \
            tol.atol == float(f"{default_floor(flatten(answer), tol.rtol):.2g}"):
        return None
    if tol.mode is Mode.RELABS:
        return f"accepted within {tol.rtol * 100:g} % (or {tol.atol:.2g} near zero)"
    return tol.describe().replace("to ", "give it to ", 1) if tol.mode is Mode.SIGFIGS \
        else tol.describe()


def carry_note(share: float) -> str | None:
    """What a question says when its carried-forward credit is not the full default."""
    if share >= 1:
        return None
    if share <= 0:
        return "No credit for later answers computed from your own wrong earlier ones."
    return (f"A later answer computed right from your own wrong earlier ones earns "
            f"{share:.0%} of its credit.")


@dataclass
class Question:
    """One question as a sheet shows it."""

    number: int
    points: float
    variant: Variant
    label: str = ""  # "q1": the key students use in submission.json
    carry_forward: float = 1.0  # share of the credit for answers right from own wrong ones

    def context(self, solutions: bool) -> dict[str, Any]:
        ex = get(self.variant.type)
        params = self.variant.params
        label = self.label or f"q{self.number}"
        return {
            "number": self.number,
            "label": label,
            "code": variant_code(label, self.variant.seed),
            "points": self.points,
            "carry_note": carry_note(self.carry_forward),
            "title": ex.title,
            "problem_template": ex.problem_template,
            "solution_template": ex.solution_template,
            "work_space": latex.Tex(ex.work_space),
            "need_space": latex.Tex(ex.need_space),
            "params": params,
            "problem": ex.problem(params),
            "steps": ex.worked(params, self.variant.values or ex.values(params))
            if solutions else {},
            "fields": [{"name": f.name, "label": f.label, "shape": _describe(f),
                        "tolerance": tolerance_note(f, self.variant.answers[f.name])}
                       for f in self.variant.fields],
        }


@dataclass
class Sheet:
    """One student's sheet: a header and questions."""

    title: str
    course: str
    questions: list[Question]
    student_name: str | None = None
    student_id: str | None = None
    notes: list[str] = field(default_factory=list)
    seed: int | None = None  # the student's: gives the sheet's printed code

    def context(self, solutions: bool) -> dict[str, Any]:
        return {
            "title": self.title,
            "course": self.course,
            "student_name": self.student_name,
            "student_id": self.student_id,
            "code": variant_code("sheet", self.seed) if self.seed is not None else None,
            "total_points": sum(q.points for q in self.questions),
            "carry_forward": any(q.carry_forward > 0 for q in self.questions),
            "questions": [q.context(solutions) for q in self.questions],
        }


def render_document(sheets: list[Sheet], solutions: bool) -> str:
    """One LaTeX document holding every sheet, each starting on a new page."""
    template = environment().get_template("sheet.tex.j2")
    types = {get(q.variant.type) for s in sheets for q in s.questions}
    packages = sorted({pkg for ex in types
                       for pkg in (*ex.packages, *(ex.solution_packages if solutions else ()))})
    return template.render(solutions=solutions, packages=packages,
                           sheets=[s.context(solutions) for s in sheets])
