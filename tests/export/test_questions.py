"""The shortcuts that make a class's export fast write what the plain path writes: the
statement from the template's two context entries and from translations remembered across
variants, the QTI text written without lxml, the remembered accepted texts and cloze
weights, the decimal writing of numbers."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from importlib import resources

import pytest
from lxml import etree

from deepdrill.export.moodle import moodle_math
from deepdrill.export.qti import _blanks, canvas_math, quiz_zip
from deepdrill.export.latex_html import latex_to_html, translate
from deepdrill.export.questions import (ExportSet, Statements, decimal_text, export_question,
                                        integer_weights)
from deepdrill.generator.exercise import all_types, make_variant
from deepdrill.generator.render import Question, environment

SEEDS = range(4)
TYPES = [ex for ex in all_types()
         if (resources.files("deepdrill.templates") / ex.problem_template).is_file()]


def _sheet_latex(variant) -> str:
    """The problem statement from the sheet's whole context, as the PDF renders it."""
    from deepdrill.generator.exercise import get

    context = Question(1, 1.0, variant, "q1").context(solutions=False)
    return environment().get_template(get(variant.type).problem_template).render(q=context)


def _figure(tikz: str) -> str:
    return f"<img alt='{len(tikz)}'>"


@pytest.mark.parametrize("math_html", [moodle_math, canvas_math], ids=["moodle", "canvas"])
def test_statements_shared_across_a_class_are_each_variants_own(math_html):
    """One export's Statements (remembering text, rows and formulas from every variant
    before) gives each variant the HTML its sheet's LaTeX translates to on its own."""
    statements = Statements(math_html)
    for seed in SEEDS:
        for ex in TYPES:
            v = make_variant(ex.id, seed)
            q = export_question(v, "q1", 4)
            expected = latex_to_html(_sheet_latex(v), math_html, _figure)
            assert statements.html(q, _figure) == expected, (ex.id, seed)
            assert statements.html(q, _figure) == expected  # translated once, kept on q


def test_a_statement_translated_with_others_equals_it_alone():
    memo: dict = {}
    for ex in TYPES:
        for seed in SEEDS:
            tex = _sheet_latex(make_variant(ex.id, seed))
            assert translate(tex, "$", memo) == translate(tex, "$"), (ex.id, seed)


def test_a_template_reading_more_of_the_context_gets_the_sheets_whole_context():
    from deepdrill.export.questions import _ProblemContext

    v = make_variant("softmax", 1)
    full = Question(1, 1.0, v, "q1").context(solutions=False)
    q = _ProblemContext(v, full["problem"])
    assert q["code"] == full["code"] and q["fields"] == full["fields"]
    with pytest.raises(KeyError):
        q["no_such_entry"]


def test_qti_text_is_what_lxml_writes_for_the_same_tree():
    """The assessment, written as text, is byte for byte lxml's own serialization of it
    (so escaping, attribute order and empty elements are lxml's), titles with every
    character XML escapes included."""
    title = 'Set 1/2 <b>"x"</b> & ]]> \u00e9\ttab'
    qs = [(f"q{k}", 3.0 + k, tuple(export_question(make_variant(ex.id, seed), f"q{k}", 3 + k)
                                   for seed in (0, 1)))
          for k, ex in enumerate(TYPES, 1) if ex.id != "pooling"]  # pooling: a figure
    data = zipfile.ZipFile(io.BytesIO(quiz_zip(ExportSet(title, "", tuple(qs))))).read(
        "deepdrill_quiz/deepdrill_quiz.xml")
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    assert etree.tostring(etree.fromstring(data, parser), xml_declaration=True,
                          encoding="UTF-8") == data


def test_remembered_accepted_texts_are_each_blanks_own():
    shared: dict = {}
    written: dict = {}
    for seed in SEEDS:
        for type_id in ("conv2d_forward", "softmax", "batchnorm_forward", "cross_entropy"):
            q = export_question(make_variant(type_id, seed), "q1", 4)
            assert _blanks(q, shared, written) == _blanks(q, {}, {})


@pytest.mark.parametrize("x", [0.5, -3.25, 1e-05, 1.5e-07, 123.456, 0.1 + 0.2, 1e22,
                               2.0 ** 53 + 2, -0.0, 7.0, 120422400.0, 6.02e23, 0.0001])
def test_decimal_text_writes_the_shortest_digits_without_an_exponent(x):
    plain = format(Decimal(repr(x)), "f")
    plain = plain.rstrip("0").rstrip(".") if "." in plain else plain
    expected = str(int(x)) if x == int(x) and abs(x) < 2 ** 53 else plain
    assert decimal_text(x) == expected
    assert float(decimal_text(x)) == x


@pytest.mark.parametrize("shares", [[1.0, 1.0], [2.5, 2.5, 0.5, 0.0], [10 / 3] * 3,
                                    [0.1, 0.2, 0.3], [1.0, 1 / 7, 2 / 7], [1.0, 0.001234],
                                    [0.0, 0.0]])
def test_integer_weights_are_the_first_whole_scale(shares):
    """Against the search written out plainly."""
    nonzero = [s for s in shares if s > 0]
    if not nonzero:
        assert integer_weights(shares) == [1] * len(shares)
        return
    ratios = [s / min(nonzero) for s in shares]
    for scale in range(1, 1001):
        scaled = [r * scale for r in ratios]
        if all(abs(v - round(v)) < 1e-6 * max(1.0, v) for v in scaled):
            expected = [round(v) for v in scaled]
            break
    else:
        expected = [max(1, round(r * 100)) if r else 0 for r in ratios]
    assert integer_weights(shares) == expected


def test_a_formula_answer_gets_a_note_not_a_blank_and_a_formula_only_question_is_left_out():
    """An LMS's numeric blanks cannot grade a formula by meaning: the question keeps its
    numbers, says under the statement which answer it does not take, and the export's notes
    tell the instructor; a question asking only for formulas is left out, said so."""
    from dataclasses import replace

    from deepdrill.export.moodle import bank_xml

    v = make_variant("cross_entropy", 3, {"formula": True})
    assert any(f.kind.value == "expression" for f in v.fields)
    q = export_question(v, "q1", 6)
    assert [f.name for f in q.left_out] == ["grad_formula"] and q.fields
    export = ExportSet.of("T", "", [("q1", 6.0, (q,)), ("q2", 2.0, (replace(q, fields=()),))])
    assert [label for label, _, _ in export.questions] == ["q1"]
    assert "q1: the formula answer (grad_formula) has no blank" in export.notes[0]
    assert "q2 left out: it asks only for a formula" in export.notes[1]
    for data in (bank_xml(export), zipfile.ZipFile(io.BytesIO(quiz_zip(export))).read(
            next(n for n in zipfile.ZipFile(io.BytesIO(quiz_zip(export))).namelist()
                 if n.endswith(".xml") and "meta" not in n and "manifest" not in n))):
        etree.fromstring(data, etree.XMLParser(recover=False))
        text = data.decode()
        assert "Not answered in this quiz" in text and "s_i - y_i" not in text
