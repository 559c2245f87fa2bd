"""The Moodle XML question bank, held to lms-formats.md section 3: strict XML, the elements
Moodle's importer needs, cloze syntax its extractor reads, and per variant the grader's
own interval as each answer's tolerance."""

from __future__ import annotations

import base64
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from lxml import etree

from deepdrill.cli import cli
from deepdrill.export.moodle import bank_xml, category_path, cloze_numerical
from deepdrill.export.latex_html import latex_to_html
from deepdrill.export.questions import (ExportSet, export_question, integer_weights, margin,
                                        problem_latex, statement_html)
from deepdrill.generator.exercise import all_types, make_variant
from deepdrill.grader.batch import load_key
from deepdrill.model.tolerance import Tolerance, entries_match
from deepdrill.model.variant import Variant

# Moodle's allowed answer grades (question_bank::fraction_options), in percent.
ALLOWED_FRACTIONS = {0, 100, 90, 83.33333, 80, 75, 70, 66.66667, 60, 50, 40, 33.33333, 30,
                     25, 20, 16.66667, 14.28571, 12.5, 11.11111, 10, 5}
NUMBER = r"-?(?:[0-9]+[.,]?[0-9]*|[.,][0-9]+)(?:[eE][-+]?[0-9]+)?"  # multianswer's NUMBER_REGEX
FIELD = re.compile(r"\{([0-9]*):NUMERICAL:(.*?)(?<!\\)\}", re.DOTALL)
ALTERNATIVE = re.compile(rf"^(=|%(-?[0-9]+(?:[.,][0-9]*)?)%)?({NUMBER})(?::({NUMBER}))?(?:#(.*))?$",
                         re.DOTALL)


def strict_parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    return etree.fromstring(data, parser)


@pytest.fixture(scope="module")
def bank(example_build: Path, tmp_path_factory) -> tuple[etree._Element, Path]:
    out = tmp_path_factory.mktemp("moodle") / "bank.xml"
    result = CliRunner().invoke(cli, ["export", "moodle", "--key",
                                      str(example_build / "key.json"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return strict_parse(out.read_bytes()), example_build / "key.json"


def test_bank_is_a_quiz_of_categories_each_holding_every_students_variant(bank):
    root, key_path = bank
    key = load_key(key_path)
    assert root.tag == "quiz"
    questions = root.findall("question")
    categories = [i for i, q in enumerate(questions) if q.get("type") == "category"]
    assert len(categories) == len(key.questions)
    for c, kq in zip(categories, key.questions):
        path = questions[c].findtext("category/text")
        assert path.startswith("$course$/top/") and len(path.split("/")) >= 4
        assert f"/{kq.label} " in path
        following = questions[c + 1:c + 1 + len(key.students)]
        assert all(q.get("type") in ("cloze", "numerical") for q in following)
    assert len(questions) == len(key.questions) * (len(key.students) + 1)


def test_every_question_has_what_the_importer_requires(bank):
    root, _ = bank
    for q in root.iterfind("question"):
        if q.get("type") == "category":
            continue
        assert q.findtext("name/text").strip()
        text = q.find("questiontext")
        assert text.get("format") == "html" and text.findtext("text").strip()
        assert q.find("generalfeedback") is not None
        assert 0 <= float(q.findtext("penalty")) <= 1
        assert q.findtext("hidden") == "0" and q.findtext("idnumber")
        if q.get("type") == "cloze":
            assert q.find("defaultgrade") is None  # a cloze's mark is its blanks' weights


def test_cloze_blanks_carry_each_entry_and_the_graders_interval(bank):
    """Per variant and entry: the first alternative is the key at 100 % with margin
    max(atol, rtol*|x|) (or the count / sig-fig interval), then the mistakes at 0 %."""
    root, key_path = bank
    key = load_key(key_path)
    clozes = [q for q in root.iterfind("question") if q.get("type") == "cloze"]
    students = list(key.students.values())
    k = 0
    for kq in key.questions:
        for s in students:
            variant = s.variants[kq.label]
            fields = FIELD.findall(clozes[k].findtext("questiontext/text"))
            k += 1
            expected = [(f, x) for f in variant.fields for x in _flat(variant.answers[f.name])]
            assert len(fields) == len(expected)
            for (weight, body), (f, x) in zip(fields, expected):
                assert weight.isdigit()
                alternatives = [ALTERNATIVE.match(a) for a in re.split(r"(?<!\\)~", body)]
                assert all(alternatives), body
                first = alternatives[0]
                assert first.group(1) == "="
                assert float(first.group(3)) == pytest.approx(x, abs=1e-12)
                assert float(first.group(4)) == pytest.approx(_independent_margin(f.tolerance, x),
                                                              rel=1e-9, abs=1e-15)
                for a in alternatives[1:]:
                    assert a.group(1) in ("=", "%0%")
                    assert "}" not in (a.group(5) or "") and "~" not in (a.group(5) or "")


def _flat(value):
    return list(np.ravel(np.asarray(value, dtype=float))) if not isinstance(value, list) or \
        all(not isinstance(v, list) or all(not isinstance(w, list) for w in v) for v in value) \
        and len({len(v) if isinstance(v, list) else -1 for v in value}) <= 1 \
        else [float(w) for v in value for w in v]


def _independent_margin(tol: Tolerance, x: float) -> float:
    """The digest's mapping written out again, from the key's stored tolerance."""
    if tol.mode.value == "relabs":
        return max(tol.atol, tol.rtol * abs(x))
    if tol.mode.value == "sigfigs":
        return 0.5 * 10 ** (np.floor(np.log10(abs(x))) - tol.sigfigs + 1) if x else 0.0
    if tol.mode.value == "count" and abs(x) >= 1e8:
        return 10 ** (np.floor(np.log10(abs(x))) - 2)
    return 0.0


@pytest.mark.parametrize("tol", [Tolerance(rtol=0.01, atol=0.003), Tolerance(rtol=0.005),
                                 Tolerance.count(), Tolerance.exact(),
                                 Tolerance(Tolerance().mode.SIGFIGS, sigfigs=3)])
@pytest.mark.parametrize("x", [0.2312, -3.0, 1234.5678, 120422400.0, 0.000913, 7.0])
def test_margin_is_the_graders_interval(tol, x):
    """Just inside the margin passes deepdrill's grader, just outside fails."""
    if tol.is_integer and x != int(x):
        return
    m = margin(tol, x)
    assert entries_match(tol, np.array([x + 0.999 * m, x - 0.999 * m]), np.array([x, x])).all()
    outside = m * 1.01 if m else 1.0
    assert not entries_match(tol, np.array([x + outside]), np.array([x])).any()


def _single(variant: Variant, name: str) -> Variant:
    """A variant cut down to one scalar field (no type asks for a single number today)."""
    f = variant.field(name)
    mistakes = tuple(replace(m, answers={name: m.answers[name]}) for m in variant.mistakes
                     if name in m.answers)
    return replace(variant, answers={name: variant.answers[name]}, fields=(f,),
                   mistakes=mistakes)


def test_a_single_number_is_a_numerical_question_with_named_mistakes():
    v = _single(make_variant("cross_entropy", 11, options={"batch": 2}), "loss")
    q = export_question(v, "q1", 5)
    root = strict_parse(bank_xml(ExportSet("T", "", (("q1", 5.0, (q,)),))))
    numerical = root.find("question[@type='numerical']")
    answers = numerical.findall("answer")
    assert float(numerical.findtext("defaultgrade")) == 5
    assert answers[0].get("fraction") == "100"
    assert float(answers[0].findtext("text")) == pytest.approx(v.answers["loss"])
    assert float(answers[0].findtext("tolerance")) == pytest.approx(
        max(v.fields[0].tolerance.atol, 0.01 * v.answers["loss"]))
    assert len(answers) == 1 + len(q.entries[0].mistakes) >= 2
    for a in answers:
        assert float(a.get("fraction")) in ALLOWED_FRACTIONS
    named = {m.feedback for m in v.mistakes}
    assert {a.findtext("feedback/text") for a in answers[1:]} <= {
        f.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") for f in named}
    assert numerical.findtext("showunits") == "3"


def test_outside_text_is_escaped_and_a_slash_in_a_title_stays_in_its_category():
    v = make_variant("softmax", 2)
    title = 'Set 1/2 <script>alert("x")</script> & ]]> done'
    root = strict_parse(bank_xml(ExportSet(title, "", (("q1", 4.0, (export_question(v, "q1", 4),)),))))
    assert root.findtext("question/category/text") == category_path(title, "q1 " +
                                                                    export_question(v, "q1", 4).title)
    assert "Set 1//2" in root.findtext("question/category/text")
    info = root.findtext("question/info/text")
    assert "<script>" not in info and "&lt;script&gt;" in info


def test_cloze_feedback_cannot_end_its_field():
    from deepdrill.export.questions import Entry, WrongAnswer

    e = Entry("y", (0,), 2.0, False, 0.02, 1.0,
              mistakes=(WrongAnswer(1.0, 0.01, "odd", "a } b ~ c # d { e <b>"),))
    text = cloze_numerical(e, 3)
    assert FIELD.fullmatch(text) and text.count("}") == 1 and text.count("~") == 1
    assert "<b>" not in text


def test_integer_weights_keep_the_proportions():
    assert integer_weights([1.0, 1.0, 1.0]) == [1, 1, 1]
    assert integer_weights([10 / 3, 10 / 3, 10 / 3]) == [1, 1, 1]
    assert integer_weights([2.0, 0.5, 0.0, 1.5]) == [4, 1, 0, 3]


@pytest.mark.parametrize("ex", all_types(), ids=lambda ex: ex.id)
def test_every_types_statement_becomes_html_with_only_math_left_as_latex(ex):
    from importlib import resources

    if not (resources.files("deepdrill.templates") / ex.problem_template).is_file():
        pytest.skip(f"{ex.id} has no problem template yet")
    for seed in range(3):
        v = make_variant(ex.id, seed)
        html_text = statement_html(v, lambda t, d: "MATH", lambda t: "FIGURE")
        assert html_text.startswith("<")
        strict_parse(f"<div>{html_text}</div>".encode())  # well-formed
        assert not re.search(r"\\[a-zA-Z]|[{}$]", html_text), html_text[:300]
        if "tikzpicture" in problem_latex(v):
            assert "FIGURE" in html_text


def test_latex_to_html_refuses_what_it_cannot_show():
    from deepdrill.errors import DeepdrillError

    with pytest.raises(DeepdrillError, match="unknowncommand"):
        latex_to_html(r"text \unknowncommand{x}", lambda t, d: t, str)


@pytest.mark.skipif(not (shutil.which("pdflatex") and shutil.which("pdftocairo")),
                    reason="figures need pdflatex and pdftocairo")
def test_figures_are_embedded_as_png_files_the_text_points_at():
    v = make_variant("pooling", 1)
    root = strict_parse(bank_xml(ExportSet("T", "", (("q1", 4.0, (export_question(v, "q1", 4),)),))))
    question = root.find("question[@type='cloze']")
    file = question.find("questiontext/file")
    assert file.get("encoding") == "base64" and file.get("path") == "/"
    assert base64.b64decode(file.text).startswith(b"\x89PNG")
    assert f"@@PLUGINFILE@@/{file.get('name')}" in question.findtext("questiontext/text")
