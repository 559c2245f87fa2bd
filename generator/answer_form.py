"""An offline answer form per student: one self-contained HTML file instead of hand-edited JSON.

The form shows each question's answer fields as inputs shaped like the answer (a box for a
number, a row for a vector, a grid for a matrix, a line per layer for a per-layer list),
checks every entry as it is typed with the grader's rules for numbers, keeps a draft in the
browser, reopens a saved file, and saves the submission JSON laid out as
:func:`~deepdrill.generator.build.blank_submission` lays it out.

It is built from the fields' names, labels, kinds and shapes, the questions' titles and
points and the student's identity only: no answer, parameter, seed or tolerance reaches it,
so handing it out gives nothing of the key away.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

import jinja2

from deepdrill.model.fields import Field, Kind, describe_shape, is_ragged, skeleton
from deepdrill.model.variant import Variant

from .assignment import Assignment
from .exercise import get

if TYPE_CHECKING:  # build.py calls this module: no import back at run time
    from .build import StudentBuild

TEMPLATE = "answer_form.html.j2"
ITEM_WORD = "layer"  # every ragged field lists one item per layer (layer tables, MLPs)
DRAFT_PREFIX = "deepdrill-draft"  # localStorage is shared by every file:// page


def answer_form(assignment: Assignment, build: StudentBuild) -> str:
    """The student's answer form, one HTML document with its CSS and script inline.

    >>> from deepdrill.generator.assignment import Student, parse_assignment
    >>> from deepdrill.generator.build import make_variants
    >>> a = parse_assignment({"title": "T", "seed": 1,
    ...                       "questions": [{"type": "softmax", "points": 2}]})
    >>> html = answer_form(a, make_variants(a, [Student("s1", "Ada")])[0])
    >>> html.startswith("<!DOCTYPE html>") and 'id="a-q1-probabilities-1"' in html
    True
    """
    student = build.student
    questions = [_question(i + 1, q.label, q.points, build.variants[q.label])
                 for i, q in enumerate(assignment.questions)]
    blank = {"student_id": student.id, "name": student.name,
             "answers": {q["label"]: {f["name"]: f["blank"] for f in q["fields"]}
                         for q in questions}}
    form = {"blank": blank, "file_name": f"{build.folder}.json",
            "draft_key": f"{DRAFT_PREFIX}:{assignment.title}:{student.id}"}
    return _environment().get_template(TEMPLATE).render(
        title=assignment.title, course=assignment.course, student_name=student.name,
        student_id=student.id, questions=questions, form=form)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("deepdrill.templates"))),
        autoescape=True,  # names, ids and titles come from outside: always escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # |tojson sorts keys by default: the saved file must keep blank_submission's order
    env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return env


def _question(number: int, label: str, points: float, variant: Variant) -> dict[str, Any]:
    return {"number": number, "label": label, "points": f"{points:g}",
            "title": get(variant.type).title,
            "fields": [_field(label, f) for f in variant.fields]}


def _field(label: str, f: Field) -> dict[str, Any]:
    whole = f.kind is Kind.INTEGER
    first = f.label.split(" ", 1)[0]
    heading = f.label[:1].upper() + f.label[1:] if first.isalpha() and first.islower() \
        else f.label  # "the output ..." starts a heading; "dL/dx" stays as written
    words = _whole(describe_shape(f.shape)) if whole else describe_shape(f.shape)
    if f.kind is Kind.EXPRESSION:
        words = f"a formula in {', '.join(f.symbols)}, e.g. 2*{f.symbols[0]} + 1"
    return {"name": f.name, "label": f.label, "heading": heading, "kind": f.kind.value,
            "symbols": list(f.symbols), "shape_words": words,
            "blank": skeleton(f.shape),
            "layout": layout(f.shape, f"a-{label}-{f.name}", ())}


def _whole(words: str) -> str:
    """"a list of 3 numbers" -> "a list of 3 whole numbers"; "a 2x2 matrix" -> "... of whole
    numbers"."""
    if "number" not in words:
        return words + " of whole numbers"
    return words.replace("a number", "a whole number").replace(" numbers", " whole numbers")


def layout(shape: list, prefix: str, path: tuple[int, ...],
           where: tuple[str, ...] = ()) -> dict[str, Any]:
    """How a value of ``shape`` is laid out as inputs, as a tree the template draws.

    A node is a ``box`` (one number), a ``row`` of boxes (a vector), a ``grid`` of rows (a
    matrix) or a ``stack`` of captioned nodes (a ragged list: one item per layer; an array of
    three or more dimensions: one block per channel or leading index). Every box knows its
    ``path`` into the field's nested list, its element id, and words for where it is.

    >>> layout([2], "a-q1-x", ())["boxes"][1]
    {'id': 'a-q1-x-1', 'path': [1], 'where': 'entry 2'}
    >>> [i["caption"] for i in layout([[3], [1]], "a-q1-s", ())["children"]]
    ['layer 1', 'layer 2']
    """
    if is_ragged(shape):
        return _stack(shape, [f"{ITEM_WORD} {i + 1}" for i in range(len(shape))],
                      prefix, path, where)
    if not shape:
        return {"kind": "box", "box": _box(prefix, path, where)}
    if len(shape) == 1:
        return {"kind": "row", "boxes": [_box(prefix, (*path, j), (*where, f"entry {j + 1}"))
                                         for j in range(shape[0])]}
    if len(shape) == 2:
        return {"kind": "grid", "columns": shape[1],
                "rows": [[_box(prefix, (*path, i, j), (*where, f"row {i + 1}", f"column {j + 1}"))
                          for j in range(shape[1])] for i in range(shape[0])]}
    word = "channel" if len(shape) == 3 else "block"  # (C, H, W): the convention for 3-D maps
    return _stack([shape[1:]] * shape[0], [f"{word} {i + 1}" for i in range(shape[0])],
                  prefix, path, where)


def _stack(shapes: list, captions: list[str], prefix: str, path: tuple[int, ...],
           where: tuple[str, ...]) -> dict[str, Any]:
    return {"kind": "stack",
            "children": [{"caption": c, "node": layout(s, prefix, (*path, i), (*where, c))}
                      for i, (s, c) in enumerate(zip(shapes, captions))]}


def _box(prefix: str, path: tuple[int, ...], where: tuple[str, ...]) -> dict[str, Any]:
    return {"id": "-".join([prefix, *map(str, path)]), "path": list(path),
            "where": ", ".join(where)}
