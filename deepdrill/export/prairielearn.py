"""`deepdrill export prairielearn`: an assignment's questions as PrairieLearn questions that
draw and grade with deepdrill live.

Each question of the assignment becomes a course-question directory
``<out>/questions/deepdrill/<assignment>/<label>_<type>/`` holding ``info.json``,
``question.html`` and a thin ``server.py``. ``generate`` draws the variant with deepdrill's
own :func:`~deepdrill.generator.exercise.make_variant`, seeded with PrairieLearn's
``variant_seed`` (so a PrairieLearn variant is a deepdrill variant), and stores it whole in
``data["params"]``; ``grade`` calls deepdrill's own grader,
:func:`~deepdrill.grader.score.grade_question`, on that stored variant: named mistakes,
carried-forward credit and the tolerances are exactly the batch grader's. The inputs are
shaped like the fields: a ``pl-number-input`` for a number, a
``pl-matrix-component-input`` (one box per entry) for a vector or matrix, one per slice
(or per item of a ragged list) beyond that.

Format facts: ``lms-formats.md`` section 5. The course's Python must be able to import
deepdrill (``--bundle`` copies the installed package into ``serverFilesCourse/``, which
PrairieLearn puts on ``sys.path``; deepdrill's own dependencies must be in the image).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from deepdrill.errors import DeepdrillError
from deepdrill.model.fields import Field, flatten, is_ragged
from deepdrill.model.variant import Variant

from .commands import export
from .questions import ExportQuestion, decimal_text, export_question, field_heading

SLICE = "__"  # answers-name of a slice of a field beyond two dimensions: output__1


def pl_math(tex: str, display: bool) -> str:
    """PrairieLearn's MathJax delimiters, HTML-escaped (``&`` of a matrix survives)."""
    body = html.escape(tex, quote=False)
    return f"$${body}$$" if display else f"${body}$"


def _no_figure(tikz: str) -> str:
    return ("<p><em>(This question has a figure that PrairieLearn cannot draw here; "
            "see the PDF sheet for it.)</em></p>")


@dataclass(frozen=True)
class LiveQuestion:
    """What a question's ``server.py`` needs: the assignment's entry for the question."""

    label: str
    type: str
    points: float
    params: dict[str, Any]
    options: dict[str, Any]
    tolerances: dict[str, dict[str, Any]]
    all_or_nothing: bool = False
    carry_forward: float = 1.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LiveQuestion:
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "type": self.type, "points": self.points,
                "params": self.params, "options": self.options, "tolerances": self.tolerances,
                "all_or_nothing": self.all_or_nothing, "carry_forward": self.carry_forward}

    # -- PrairieLearn's stages ------------------------------------------------------

    def generate(self, data: dict[str, Any]) -> None:
        """Draw the variant from PrairieLearn's seed; store it, the statement, the inputs'
        layout and the correct answers."""
        from deepdrill.generator.exercise import make_variant

        variant = make_variant(self.type, int(data["variant_seed"]), self.params, self.options,
                               self.tolerances)
        q = export_question(variant, self.label, self.points)
        data["params"]["deepdrill"] = variant.to_json()
        data["params"]["statement"] = q.statement(pl_math, _no_figure, dollar="\\$")
        data["params"]["inputs"] = inputs(q)
        for f in variant.fields:
            for name, value in _split(f, variant.answers[f.name]):
                data["correct_answers"][name] = value

    def grade(self, data: dict[str, Any]) -> None:
        """Grade the submission with deepdrill's grader on the stored variant; each input
        gets its field's score and feedback, the question deepdrill's total."""
        from deepdrill.grader.score import CreditPolicy, grade_question

        variant = Variant.from_json(data["params"]["deepdrill"])
        submitted = data.get("submitted_answers", {})
        answers = {f.name: _join(f, submitted) for f in variant.fields}
        policy = CreditPolicy(per_entry=not self.all_or_nothing, carry_forward=self.carry_forward)
        result = grade_question(variant, answers, self.points, policy)
        lines = []
        for f in variant.fields:
            r = result.fields[f.name]
            ratio = r.score / r.max_score if r.max_score else 0.0
            for name, _ in _split(f, variant.answers[f.name]):
                data["partial_scores"][name] = {"score": ratio, "weight": 1,
                                                "feedback": r.feedback}
                data["feedback"][name] = r.feedback
            lines.append(f"<li><code>{html.escape(f.name)}</code>: "
                         f"{html.escape(r.feedback)}</li>")
        data["score"] = result.score / self.points if self.points else 0.0
        data["feedback"]["deepdrill"] = f"<ul>{''.join(lines)}</ul>"


def inputs(q: ExportQuestion) -> list[dict[str, Any]]:
    """The answer inputs as question.html's Mustache section reads them: a heading per
    field, then one element per number, vector, matrix or slice."""
    out = []
    for fb in q.fields:
        f = fb.field
        tol = f.tolerance
        first = True
        for name, value in _split(f, q.variant.answers[f.name]):
            item = {"name": name, "heading": field_heading(fb) if first else "",
                    "label": _slice_label(f, name),
                    "rtol": decimal_text(tol.rtol), "atol": decimal_text(tol.atol)}
            if isinstance(value, list):
                item["matrix"] = True
            else:
                item["number"] = True
                item["atol"] = decimal_text(fb.entries[0].margin)  # the grader's own interval
                item["rtol"] = "0"
            out.append(item)
            first = False
    return out


def _slice_label(f: Field, name: str) -> str:
    if SLICE not in name:
        return f"${f.name} =$"
    return f"${f.name}[{name.split(SLICE)[1]}] =$"


def _split(f: Field, value: Any) -> list[tuple[str, Any]]:
    """A field's value as PrairieLearn inputs: a number, a 2-D array (a vector as one row),
    or one 2-D array per leading index (per item of a ragged list)."""
    shape = f.shape
    if not shape:
        return [(f.name, value)]
    if is_ragged(shape) or len(shape) > 2:
        return [(f"{f.name}{SLICE}{k + 1}", _two_d(item)) for k, item in enumerate(value)]
    return [(f.name, _two_d(value))]


def _two_d(value: Any) -> Any:
    if not isinstance(value, list):
        return [[value]]
    if value and isinstance(value[0], list) and not any(isinstance(v, list) for r in value
                                                         for v in r):
        return value
    return [flatten(value)]


def _join(f: Field, submitted: dict[str, Any]) -> Any:
    """A field's answer from the submitted inputs, back in the field's own shape."""
    shape = f.shape
    if not shape:
        return _plain(submitted.get(f.name))
    if is_ragged(shape) or len(shape) > 2:
        shapes = shape if is_ragged(shape) else [shape[1:]] * shape[0]  # one per item
        items = [_plain(submitted.get(f"{f.name}{SLICE}{k + 1}")) for k in range(len(shapes))]
        if any(i is None for i in items):
            return None
        return [_reshape(i, s) for i, s in zip(items, shapes)]
    value = _plain(submitted.get(f.name))
    return None if value is None else _reshape(value, shape)


def _plain(value: Any) -> Any:
    """An input's parsed value as plain JSON: PrairieLearn wraps arrays as
    ``{"_type": "ndarray", "_value": [...]}``."""
    if isinstance(value, dict) and "_value" in value:
        return value["_value"]
    return value


def _reshape(value: Any, shape: list) -> Any:
    """A 2-D input (a vector typed as one row) back to the field's shape; a value of the
    wrong size is passed on as it is, for the grader to say what is wrong."""
    if not isinstance(value, list):
        return value
    flat = flatten(value)
    if len(shape) == 1 and len(flat) == shape[0]:
        return flat
    return value


# -- writing a course's questions ------------------------------------------------------

QUESTION_HTML = """<pl-question-panel>
{{{params.statement}}}
</pl-question-panel>

{{#params.inputs}}
{{#heading}}<p>{{{heading}}}</p>{{/heading}}
{{#number}}
<p><pl-number-input answers-name="{{name}}" label="{{label}}" comparison="relabs"
    rtol="{{rtol}}" atol="{{atol}}"></pl-number-input></p>
{{/number}}
{{#matrix}}
<p><pl-matrix-component-input answers-name="{{name}}" label="{{label}}" comparison="relabs"
    rtol="{{rtol}}" atol="{{atol}}" allow-partial-credit="true"></pl-matrix-component-input></p>
{{/matrix}}
{{/params.inputs}}

<pl-submission-panel>
{{{feedback.deepdrill}}}
</pl-submission-panel>
"""

SERVER_PY = '''"""{title}: question {label} ({type}), exported by deepdrill.

generate() draws the variant with deepdrill from PrairieLearn's variant_seed; grade() grades
it with deepdrill's grader. The question's settings come from the assignment file.
"""

import json

from deepdrill.export.prairielearn import LiveQuestion

QUESTION = LiveQuestion.from_json(json.loads({spec}))


def generate(data):
    QUESTION.generate(data)


def grade(data):
    QUESTION.grade(data)
'''


def slug(text: str) -> str:
    """A directory name from a title: lower-case ASCII words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "assignment"


def write_questions(assignment: Any, out: Path) -> list[Path]:
    """One question directory per question of the assignment; an info.json already there
    keeps its uuid (PrairieLearn tracks a question by it), a new one gets a fresh uuid."""
    from deepdrill.generator.exercise import get

    base = out / "questions" / "deepdrill" / slug(assignment.title)
    written = []
    for q in assignment.questions:
        folder = base / f"{q.label}_{q.type}"
        folder.mkdir(parents=True, exist_ok=True)
        live = LiveQuestion(q.label, q.type, q.points, q.params, q.options, q.tolerances,
                            q.all_or_nothing, q.carry_forward)
        info = {"uuid": _kept_uuid(folder / "info.json"),
                "title": f"{get(q.type).title} ({assignment.title}, {q.label})",
                "topic": "deepdrill", "tags": ["deepdrill", q.type], "type": "v3",
                "partialCredit": True}
        (folder / "info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        (folder / "question.html").write_text(QUESTION_HTML, encoding="utf-8")
        spec = repr(json.dumps(live.to_json(), sort_keys=True))  # a Python string literal
        (folder / "server.py").write_text(
            SERVER_PY.format(title=_one_line(assignment.title), label=q.label, type=q.type,
                             spec=spec), encoding="utf-8")
        written.append(folder)
    return written


def _one_line(text: str) -> str:
    """Text for a docstring: one line, no quotes or backslashes that could end it."""
    return re.sub(r"[\"\\\s]+", " ", text).strip()


def _kept_uuid(path: Path) -> str:
    try:
        return str(uuid.UUID(json.loads(path.read_text(encoding="utf-8"))["uuid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return str(uuid.uuid4())


def bundle(out: Path) -> Path:
    """The installed deepdrill package copied to ``serverFilesCourse/deepdrill``."""
    import importlib

    target = out / "serverFilesCourse" / "deepdrill"
    if target.exists():
        shutil.rmtree(target)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(Path(importlib.import_module("deepdrill").__file__).parent, target,
                    ignore=skip)
    for sub in ("generator", "grader", "templates"):  # installed from their own folders
        source = Path(importlib.import_module(f"deepdrill.{sub}").__file__).parent
        if not (target / sub).exists():
            shutil.copytree(source, target / sub, ignore=skip)
    return target


@export.command("prairielearn")
@click.option("--assignment", "assignment_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The assignment file (TOML) the questions come from.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The PrairieLearn course directory to write the questions into.")
@click.option("--bundle/--no-bundle", "with_bundle", default=False,
              help="Also copy the installed deepdrill package into serverFilesCourse/.")
def prairielearn_command(assignment_path: Path, out: Path, with_bundle: bool) -> None:
    """Write one PrairieLearn question per question of the assignment, drawing variants
    and grading with deepdrill live.

    The questions land in OUT/questions/deepdrill/<assignment>/; add their QIDs to an
    assessment. Re-exporting keeps each question's uuid.
    """
    from deepdrill.generator.assignment import load_assignment

    assignment = load_assignment(assignment_path)
    folders = write_questions(assignment, out)
    if with_bundle:
        bundle(out)
    if not folders:
        raise DeepdrillError("the assignment has no questions")
    click.echo(f"wrote {len(folders)} question(s) under {folders[0].parent}")
