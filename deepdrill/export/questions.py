"""A stored variant as an LMS question: its statement as HTML with math, and one numeric
blank per answer entry with the interval the grader accepts, its share of the points and
the values of the recognised mistakes.

The statement is the sheet's own: the type's problem template is rendered to LaTeX exactly
as for the PDF, then its small text-mode subset (paragraphs, ``\\texttt``, ``\\emph``,
tables, lists, centring) becomes HTML (:mod:`deepdrill.export.latex_html`). Math stays
LaTeX and each target decides how it renders (``\\(..\\)`` for Moodle's MathJax, equation
images for Canvas, ``$..$`` for PrairieLearn); a TikZ figure is handed to the target as its
LaTeX source, and :class:`Figures` compiles all of an export's pictures to PNG in one
pdflatex run.

The tolerance mapping (``lms-formats.md``, section 0): every entry gets the absolute
half-width ``m`` of the interval the grader accepts around the key, so an LMS that knows
only "value plus or minus margin" accepts exactly what deepdrill accepts:

* relative/absolute: ``m = max(atol, rtol * |x*|)``;
* significant figures: half a unit of the last asked digit of ``x*`` (an interval
  around the true value, as the grader's, never around a rounded one);
* counts: 0, or one unit of the third significant figure from 10^8 on;
* exact: 0.

>>> from deepdrill.model.tolerance import Tolerance
>>> margin(Tolerance(rtol=0.01, atol=0.005), 0.25), margin(Tolerance.count(), 120422400)
(0.005, 1000000.0)
"""

from __future__ import annotations

import functools
import hashlib
import html
import math
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, compress, count, repeat
from operator import ne
from pathlib import Path
from typing import Any, NamedTuple

from deepdrill.errors import DeepdrillError
from deepdrill.heap import no_gc_pauses
from deepdrill.model.fields import Field, Kind, describe_shape, flatten, is_ragged
from deepdrill.model.tolerance import BIG_COUNT, COUNT_SIGFIGS, Mode, Tolerance
from deepdrill.model.variant import Variant

from .latex_html import HOLE, Figure, Math, StatementParts, latex_to_html, translate

MAX_CLOZE_SCALE = 1000  # integer cloze weights: the largest common multiplier tried
FIGURE_DPI = 150


# -- the tolerance mapping ----------------------------------------------------------

def margin(tol: Tolerance, x: float) -> float:
    """The absolute half-width of the interval the grader accepts around ``x``."""
    return margin_of(tol)(x)


@functools.lru_cache(maxsize=256)  # a key holds a few tolerances, met for every entry
def margin_of(tol: Tolerance) -> Callable[[float], float]:
    """:func:`margin` for one tolerance, as a function of the value."""
    if tol.mode is Mode.RELABS:
        atol, rtol = tol.atol, tol.rtol
        return lambda x: max(atol, rtol * abs(x))
    if tol.mode is Mode.SIGFIGS:
        sigfigs = tol.sigfigs or 3
        return lambda x: half_unit(x, sigfigs)
    if tol.mode is Mode.COUNT:
        count_sigfigs = tol.sigfigs or COUNT_SIGFIGS
        return lambda x: 2 * half_unit(x, count_sigfigs) if abs(x) >= BIG_COUNT else 0.0
    return lambda x: 0.0


def half_unit(x: float, sigfigs: int) -> float:
    """Half a unit of the ``sigfigs``-th significant digit of ``x`` (0 for 0), as
    :func:`deepdrill.model.tolerance.half_unit` computes it for arrays."""
    if x == 0:
        return 0.0
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(x))) - sigfigs + 1)


@functools.lru_cache(maxsize=65536)
def decimal_text(x: float) -> str:
    """A number as a plain decimal, never in exponent form (``1e-05`` -> ``0.00001``);
    whole numbers without a point. Shortest digits that read back as the same float."""
    if x == int(x) and abs(x) < 2 ** 53:
        return str(int(x))
    text = repr(float(x))
    if "e" in text:  # exponent form: Decimal writes out its digits
        text = format(Decimal(text), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# -- blanks -------------------------------------------------------------------------

# Entry and WrongAnswer are named tuples rather than frozen dataclasses: a class's export
# makes one per number (tens of thousands), and a tuple is made six times faster.

class WrongAnswer(NamedTuple):
    """A recognised mistake's value for one entry, with what to tell the student."""

    value: float
    margin: float
    name: str
    feedback: str


class Entry(NamedTuple):
    """One number a student enters: the key, the accepted interval, its share of points."""

    field: str
    index: tuple[int, ...]
    value: float
    integer: bool
    margin: float
    share: float  # of the question's points
    alternatives: tuple[float, ...] = ()  # other values accepted in full (a blank's)
    mistakes: tuple[WrongAnswer, ...] = ()

    @property
    def low(self) -> float:
        return self.value - self.margin

    @property
    def high(self) -> float:
        return self.value + self.margin


@dataclass(frozen=True)
class FieldBlanks:
    field: Field
    entries: tuple[Entry, ...]
    note: str | None  # the tolerance note the sheet prints under the field, if any

    @property
    def share(self) -> float:
        return sum(e.share for e in self.entries)


@dataclass(frozen=True)
class ExportQuestion:
    """One question of one variant, as every exporter sees it."""

    label: str  # "q1"
    title: str  # the type's heading
    points: float
    variant: Variant
    fields: tuple[FieldBlanks, ...]
    # formula answers, which the LMS cannot grade by meaning: no blank, a note instead
    left_out: tuple[Field, ...] = ()
    # the statement translated once, for every target (by how a dollar sign is written)
    _statements: dict[str, StatementParts] = field(default_factory=dict, compare=False,
                                                   repr=False)

    @property
    def entries(self) -> list[Entry]:
        return [e for f in self.fields for e in f.entries]

    @property
    def single(self) -> bool:
        """One number in all: a plain numerical question suffices."""
        return len(self.fields) == 1 and len(self.fields[0].entries) == 1 and \
            not self.fields[0].field.shape

    def statement(self, math_html: Math, figure: Figure, dollar: str = "$") -> str:
        return Statements(math_html, dollar).html(self, figure)

    @property
    def left_out_note(self) -> str:
        """A paragraph under the statement saying which answers have no blank here."""
        if not self.left_out:
            return ""
        asked = " and ".join(html.escape(f.label) for f in self.left_out)
        return (f"<p><em>Not answered in this quiz: {asked}. A quiz cannot grade a formula "
                f"by its meaning; hand it in as your instructor says.</em></p>")

    def statement_parts(self, dollar: str = "$",
                        memo: dict[Any, Any] | None = None) -> StatementParts:
        """The statement's HTML with its formulas and figures left open (made once)."""
        parts = self._statements.get(dollar)
        if parts is None:
            parts = self._statements[dollar] = translate(problem_latex(self.variant), dollar,
                                                         memo)
        return parts


def export_question(variant: Variant, label: str, points: float) -> ExportQuestion:
    """The blanks of a stored variant, each with its interval, share and mistakes.

    >>> from deepdrill.generator.exercise import make_variant
    >>> q = export_question(make_variant("softmax", 3, {"logits": [0, 0]}), "q1", 4)
    >>> [(e.value, e.margin, e.share) for e in q.entries]
    [(0.5, 0.005, 2.0), (0.5, 0.005, 2.0)]
    """
    from deepdrill.generator.exercise import get
    from deepdrill.generator.render import tolerance_note

    total_weight = sum(f.weight for f in variant.fields) or 1.0
    fields = []
    for f in variant.fields:
        if f.kind is Kind.EXPRESSION:
            continue
        answer = variant.answers[f.name]
        share = points * f.weight / total_weight
        fields.append(FieldBlanks(f, _entries(f, answer, share, variant),
                                  tolerance_note(f, answer)))
    left_out = tuple(f for f in variant.fields if f.kind is Kind.EXPRESSION)
    return ExportQuestion(label, get(variant.type).title, float(points), variant, tuple(fields),
                          left_out)


def _entries(f: Field, answer: Any, share: float, variant: Variant) -> tuple[Entry, ...]:
    values = _floats(answer)
    n = len(values)
    weights = list(f.entry_weights) if f.entry_weights is not None else [1.0] * n
    total = sum(weights) or 1.0
    integer = f.kind is Kind.INTEGER
    margin_at = margin_of(f.tolerance)
    alternatives = [a for a in (_flat_or_none(a, n) for a in f.alternatives) if a]
    mistakes = [(m, vals) for m, vals in ((m, _flat_or_none(m.answers[f.name], n))
                                          for m in variant.mistakes if f.name in m.answers)
                if vals]
    margins = list(map(margin_at, values))
    shares = [share * w / total for w in weights]
    alts: Any = repeat(())
    if alternatives:
        alts = [tuple(dict.fromkeys(v for v in column[1:] if v != column[0]))
                for column in zip(values, *alternatives)]
    wrong: Any = repeat(())
    if mistakes:
        wrong = _wrong_answers(margin_at, values, margins, mistakes)
    return tuple(map(Entry, repeat(f.name), _indices(f.shape), values, repeat(integer), margins,
                     shares, alts, wrong))


def _floats(value: Any) -> list[float]:
    """``float`` of each leaf of a nested list, row-major (:func:`flatten`'s order); a
    list of numbers and a list of lists of numbers without flatten's walk."""
    if type(value) is list and value:
        try:
            if type(value[0]) is not list:
                return list(map(float, value))
            if all(type(row) is list for row in value):
                return list(map(float, chain.from_iterable(value)))
        except TypeError:  # deeper, or ragged: the walk
            pass
    return [float(v) for v in flatten(value)]


def _flat_or_none(value: Any, n: int) -> list[float] | None:
    """A mistake's (or alternative's) value entry by entry, if it has the field's size."""
    try:
        flat = _floats(value)
    except (TypeError, ValueError):
        return None
    return flat if len(flat) == n and all(map(math.isfinite, flat)) else None


def _wrong_answers(margin_at: Callable[[float], float], values: Sequence[float],
                   margins: Sequence[float], mistakes: Sequence[tuple[Any, Sequence[float]]]
                   ) -> list[tuple[WrongAnswer, ...]]:
    """At each entry, the mistakes' values that the right answer's interval does not
    already take, each once (the first mistake giving a value names it). A mistake
    usually changes a few entries: only those it changes are looked at."""
    found: dict[int, list[tuple[Any, float]]] = {}
    for mk, vals in mistakes:
        for i, v, x, m in compress(zip(count(), vals, values, margins), map(ne, vals, values)):
            if abs(v - x) > m:
                found.setdefault(i, []).append((mk, v))
    out: list[tuple[WrongAnswer, ...]] = [()] * len(values)
    for i, named in found.items():
        given: list[float] = []
        wrong = []
        for mk, v in named:
            if v not in given:
                given.append(v)
                wrong.append(WrongAnswer(v, margin_at(v), mk.name, mk.feedback))
        out[i] = tuple(wrong)
    return out


def _indices(shape: list) -> list[tuple[int, ...]]:
    """Each entry's position, row-major (a ragged list: item, then position in it)."""
    return _indices_of(repr(shape))


@functools.lru_cache(maxsize=1024)  # a class repeats a few shapes thousands of times
def _indices_of(shape_repr: str) -> list[tuple[int, ...]]:
    import ast

    return _positions(ast.literal_eval(shape_repr))


def _positions(shape: list) -> list[tuple[int, ...]]:
    if is_ragged(shape):
        return [(i, *rest) for i, s in enumerate(shape) for rest in _positions(s)]
    out: list[tuple[int, ...]] = [()]
    for d in shape:
        out = [(*p, k) for p in out for k in range(d)]
    return out


def integer_weights(shares: Sequence[float]) -> list[int]:
    """Whole-number weights in the proportions of ``shares`` (cloze sub-question marks):
    the shares over the smallest one, times the smallest whole multiplier up to
    MAX_CLOZE_SCALE that makes them all whole, else rounded at that scale. Zero stays zero.

    >>> integer_weights([2.5, 2.5, 0.5, 0.0])
    [5, 5, 1, 0]
    """
    nonzero = [s for s in shares if s > 0]
    if not nonzero:
        return [1] * len(shares)
    smallest = min(nonzero)
    ratios = [s / smallest for s in shares]
    scale = _whole_scale(tuple(set(ratios)))
    if scale:
        return [round(r * scale) for r in ratios]
    return [max(1, round(r * 100)) if r else 0 for r in ratios]


@functools.lru_cache(maxsize=4096)  # the variants of a question share a few weightings
def _whole_scale(ratios: tuple[float, ...]) -> int | None:
    """The smallest multiplier up to MAX_CLOZE_SCALE that makes every ratio whole."""
    for scale in range(1, MAX_CLOZE_SCALE + 1):
        if all(abs(v - round(v)) < 1e-6 * max(1.0, v) for v in (r * scale for r in ratios)):
            return scale
    return None


# -- laying out a field's blanks ------------------------------------------------------

def field_heading(fb: FieldBlanks) -> str:
    """HTML: the field's name, what it is, its shape in words and any tolerance note."""
    f = fb.field
    note = f"; <em>{html.escape(fb.note)}</em>" if fb.note else ""
    return (f"<code>{html.escape(f.name)}</code>: {html.escape(f.label)} "
            f"({html.escape(describe_shape(f.shape))}{note})")


def layout(fb: FieldBlanks, blank: Callable[[Entry], str]) -> str:
    """HTML holding one input per entry, arranged like the field: a number alone, a row
    for a vector, a table for a matrix, a table per leading index beyond two dimensions,
    one row per item of a ragged list."""
    frame = layout_frame(fb.field.shape)
    return "".join([*chain.from_iterable(zip(frame, map(blank, fb.entries))), frame[-1]])


def layout_frame(shape: list) -> tuple[str, ...]:
    """:func:`layout`'s HTML around the inputs of a field of this shape: the input of
    entry ``k`` goes between ``frame[k]`` and ``frame[k + 1]``."""
    return _frame_of(repr(shape))


@functools.lru_cache(maxsize=1024)  # a class's fields have a few shapes
def _frame_of(shape_repr: str) -> tuple[str, ...]:
    import ast

    shape = ast.literal_eval(shape_repr)
    return tuple(_arrange(shape, [HOLE] * len(_indices_of(shape_repr))).split(HOLE))


def _arrange(shape: list, cells: list[str]) -> str:
    """The cells (one per entry, row-major) laid out as :func:`layout` says."""
    if not shape:
        return cells[0]
    if is_ragged(shape):
        rows, k = [], 0
        for i, s in enumerate(shape):
            n = len(_indices(s))
            rows.append([f"{i + 1}:", *cells[k:k + n]])
            k += n
        return _table(rows, header_col=True)
    if len(shape) == 1:
        return _table([cells])
    if len(shape) == 2:
        c = shape[1]
        return _table([cells[r * c:(r + 1) * c] for r in range(shape[0])])
    inner = len(cells) // shape[0]
    return "".join(f"<p>{k + 1}.</p>{_arrange(shape[1:], cells[k * inner:(k + 1) * inner])}"
                   for k in range(shape[0]))


def _table(rows: list[list[str]], header_col: bool = False) -> str:
    body = "".join("<tr>" + "".join(
        f"<th>{c}</th>" if header_col and j == 0 else f"<td>{c}</td>"
        for j, c in enumerate(r)) + "</tr>" for r in rows)
    return f'<table class="deepdrill-blanks">{body}</table>'


# -- the statement: the problem template's LaTeX as HTML ------------------------------

def statement_html(variant: Variant, math_html: Math, figure: Figure,
                   dollar: str = "$") -> str:
    """The problem statement of a variant as HTML (the sheet's own text).

    ``dollar`` is how a literal dollar sign is written (PrairieLearn's MathJax reads a
    bare ``$`` as math, so it passes ``\\$``).
    """
    return latex_to_html(problem_latex(variant), math_html, figure, dollar)


class Statements:
    """One export's statements in one target's HTML.

    A class's statements repeat the same prose and many of the same formulas, so this
    remembers, for the export it serves only, the HTML of each run of text and of each
    formula it has met; a question's translation is kept on the question, for the next
    target to reuse.
    """

    def __init__(self, math_html: Math, dollar: str = "$") -> None:
        self.dollar = dollar
        self.math_html = math_html
        self.text_memo: dict[Any, Any] = {}
        self.math_memo: dict[tuple[str, bool], str] = {}

    def math(self, tex: str, display: bool) -> str:
        key = (tex, display)
        out = self.math_memo.get(key)
        if out is None:
            out = self.math_memo[key] = self.math_html(tex, display)
        return out

    def html(self, q: ExportQuestion, figure: Figure) -> str:
        return q.statement_parts(self.dollar, self.text_memo).html(self.math, figure) + \
            q.left_out_note


def problem_latex(variant: Variant) -> str:
    """The problem statement as the PDF sheet typesets it."""
    from deepdrill.generator.exercise import get
    from deepdrill.generator.render import environment

    ex = get(variant.type)
    template = environment().get_template(ex.problem_template)
    return template.render(q=_ProblemContext(variant, ex.problem(variant.params)))


class _ProblemContext(dict):
    """The sheet's context of a question (``render.Question.context``) as its problem
    template reads it: the templates read ``q.params`` and ``q.problem`` (and ``q.steps``,
    empty on a problem sheet), so only these are made up front; any other name makes the
    sheet's whole context, once."""

    def __init__(self, variant: Variant, problem: Any) -> None:
        super().__init__(params=variant.params, problem=problem, steps={})
        self._variant: Variant | None = variant

    def __missing__(self, name: str) -> Any:
        from deepdrill.generator.render import Question

        if self._variant is not None:
            self.update(Question(1, 1.0, self._variant, "q1").context(solutions=False))
            self._variant = None
            if name in self:
                return self[name]
        raise KeyError(name)


# -- figures ---------------------------------------------------------------------------

class Figures:
    """TikZ pictures met while writing an export, each compiled once to PNG at the end
    (one pdflatex run for all of them: a class's figures cost about a second)."""

    def __init__(self) -> None:
        self.sources: dict[str, str] = {}  # file name -> LaTeX

    def name(self, tikz: str) -> str:
        """A stable file name for a picture (the same picture, the same file)."""
        digest = hashlib.sha256(tikz.encode("utf-8")).hexdigest()[:16]
        name = f"figure-{digest}.png"
        self.sources.setdefault(name, tikz)
        return name

    def compile(self) -> dict[str, bytes]:
        """Every picture as PNG bytes; {} when there are none. Needs pdflatex (with TikZ)
        and pdftocairo (poppler-utils)."""
        if not self.sources:
            return {}
        return compile_figures(self.sources)


_FIGURE_DOC = r"""\documentclass{article}
\usepackage{amsmath,amssymb,tikz}
\usepackage[T1]{fontenc}
\pagestyle{empty}
\hoffset=-1in \voffset=-1in
\newbox\ddfig
\def\ddshow#1{\setbox\ddfig=\hbox{\kern4pt#1\kern4pt}%
  \pdfpagewidth=\wd\ddfig \pdfpageheight=\dimexpr\ht\ddfig+\dp\ddfig+8pt\relax
  \shipout\vbox{\kern4pt\box\ddfig}}
\begin{document}
"""


def compile_figures(sources: dict[str, str]) -> dict[str, bytes]:
    """TikZ pictures (name -> LaTeX) as cropped PNG images (name -> bytes)."""
    if not (shutil.which("pdflatex") and shutil.which("pdftocairo")):
        raise DeepdrillError("this export holds figures, which need pdflatex (with TikZ) and "
                             "pdftocairo (poppler-utils); install them, or leave out the "
                             "questions with figures")
    names = list(sources)
    body = "".join(f"\\ddshow{{{sources[n]}}}\n" for n in names)
    with tempfile.TemporaryDirectory(prefix="deepdrill-figures-") as tmp:
        folder = Path(tmp)
        (folder / "figures.tex").write_text(_FIGURE_DOC + body + "\\end{document}\n",
                                            encoding="utf-8")
        run = subprocess.run(["pdflatex", "-interaction=batchmode", "-halt-on-error",
                              "figures.tex"], cwd=folder, capture_output=True, timeout=600,
                             check=False)
        if run.returncode != 0:
            raise DeepdrillError("pdflatex could not draw the figures; see "
                                 "`deepdrill solve TYPE --pdf` for the same figure")
        subprocess.run(["pdftocairo", "-png", "-r", str(FIGURE_DPI), "figures.pdf", "page"],
                       cwd=folder, check=True, capture_output=True, timeout=600)
        pages = sorted(folder.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[-1]))
        if len(pages) != len(names):
            raise DeepdrillError(f"drew {len(pages)} figure(s) for {len(names)}")
        return {n: p.read_bytes() for n, p in zip(names, pages)}


def variant_label(index: int, count: int) -> str:
    """``v007`` of ``v120``: variant numbers padded to sort as text."""
    return f"v{index + 1:0{max(3, len(str(count)))}d}"


# -- the variants of a key ------------------------------------------------------------

@dataclass(frozen=True)
class ExportSet:
    """An assignment's questions, each with the stored variants to export."""

    title: str
    course: str
    questions: tuple[tuple[str, float, tuple[ExportQuestion, ...]], ...]  # label, points, variants
    notes: tuple[str, ...] = ()  # what the export leaves out, for the instructor

    @classmethod
    def of(cls, title: str, course: str,
           questions: list[tuple[str, float, tuple[ExportQuestion, ...]]]) -> "ExportSet":
        """The set, less the questions with nothing an LMS can grade, with a note for each
        question whose formula answers have no blank."""
        kept, notes = [], []
        for label, points, qs in questions:
            formulas = sorted({f.name for q in qs for f in q.left_out})
            if formulas and not any(q.fields for q in qs):
                notes.append(f"{label} left out: it asks only for a formula "
                             f"({', '.join(formulas)}), which an LMS cannot grade by meaning; "
                             f"grade it with deepdrill (or export to Gradescope or "
                             f"PrairieLearn, which run deepdrill's grader)")
                continue
            if formulas:
                notes.append(f"{label}: the formula answer ({', '.join(formulas)}) has no "
                             f"blank, only a note under the question; its points go to the "
                             f"numbers (grade the formula with deepdrill)")
            kept.append((label, points, qs))
        return cls(title, course, tuple(kept), tuple(notes))


@no_gc_pauses()
def load_export(key_path: Path, variants: int | None = None) -> ExportSet:
    """Every question of a key with one variant per student (in the key's order), or the
    first ``variants`` students' variants."""
    from deepdrill.grader.batch import load_key

    key = load_key(key_path)
    students = list(key.students.values())
    if variants is not None:
        if variants < 1:
            raise DeepdrillError("--variants must be at least 1")
        students = students[:variants]
    questions = []
    for q in key.questions:
        qs = tuple(export_question(s.variants[q.label], q.label, q.points) for s in students)
        questions.append((q.label, q.points, qs))
    return ExportSet.of(key.title, str(key.raw_assignment.get("course", "")), questions)
