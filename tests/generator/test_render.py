"""Rendering: outside text is escaped wherever a template prints it."""

import jinja2
import pytest

from deepdrill.generator import latex
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, environment, render_document

HOSTILE = r"\immediate\write18{touch /tmp/pwned} $x$ 100% #1 _a ^b ~ {}\input{/etc/passwd}"


def sheet(**kw):
    v = make_variant("conv2d_forward", 1)
    return Sheet(kw.get("title", "T"), kw.get("course", "C"), [Question(1, 3, v)],
                 kw.get("name", "N"), kw.get("sid", "1"))


@pytest.mark.parametrize("where", ["title", "course", "name", "sid"])
def test_outside_text_is_escaped(where):
    tex = render_document([sheet(**{where: HOSTILE})], solutions=True)
    assert r"\immediate\write18" not in tex and r"\input{/etc" not in tex
    assert r"\textbackslash{}" in tex and r"100\%" in tex


def test_untypesettable_characters_are_replaced():
    assert latex.typesettable("Zoë Ωmega 李\x00") == "Zoë ?mega ??"
    assert latex.escape("a_b") == r"a\_b"


@pytest.mark.parametrize("x, text", [
    (3.0, "3"), (-0.25, "-0.25"), (1 / 3, "0.3333"), (120422400, "120422400"), (12345.6, "12346"),
    (0.000123456, "0.0001235"), (2.5e-7, r"2.500\times 10^{-7}"),
])
def test_numbers(x, text):
    assert latex.num(x) == text


def test_templates_are_strict():
    env = environment()
    with pytest.raises(jinja2.UndefinedError):
        env.from_string(r"\VAR{missing}").render()
    with pytest.raises(TypeError, match="format it as LaTeX"):
        env.from_string(r"\VAR{x}").render(x=[1, 2])


def test_one_document_many_sheets_each_on_a_new_page():
    tex = render_document([sheet(name="A"), sheet(name="B")], solutions=False)
    assert tex.count(r"\ddsheet{") == 2
    assert tex.count(r"\documentclass") == 1


def test_the_sheet_prints_tolerances_and_credit_that_differ_from_the_default():
    from deepdrill.generator.exercise import make_variant
    from deepdrill.generator.render import Question, Sheet, render_document

    v = make_variant("batchnorm_forward", 1, tolerances={"normalized": {"sigfigs": 3},
                                                          "output": {"rtol": 0.005}})
    tex = render_document([Sheet("T", "C", [Question(1, 2, v, "q1", 0.5)])], False)
    assert "give it to 3 significant figures" in tex
    assert "accepted within 0.5 \\%" in tex or "accepted within 0.5 %" in tex
    assert "earns 50\\% of its credit" in tex
    plain = render_document([Sheet("T", "C", [Question(1, 2, make_variant(
        "batchnorm_forward", 1), "q1")])], False)
    assert "give it to" not in plain and "near zero)" not in plain
    assert "A later answer computed correctly" in plain and "of its credit" not in plain
    none = render_document([Sheet("T", "C", [Question(1, 2, v, "q1", 0.0)])], False)
    assert "No credit for later answers" in none and "A later answer computed" not in none
