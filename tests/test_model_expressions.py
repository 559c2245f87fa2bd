"""Formula answers: the grammar, equivalence by meaning, hostile text, and grading
through a real question (cross_entropy's dL/dz_i)."""

from __future__ import annotations

import builtins
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepdrill.generator.exercise import make_variant
from deepdrill.grader.score import grade_question
from deepdrill.model import expressions
from deepdrill.model.expressions import FormulaError, equivalent, evaluate, parse

S = ("s_i", "y_i", "s", "z", "n_in", "n_out", "x_1", "x_2", "alpha_1", "alpha_2")


def same(a: str, b: str) -> bool:
    return equivalent(parse(a, S), parse(b, S))


@pytest.mark.parametrize("a, b", [
    ("s_i - y_i", "-(y_i - s_i)"),
    ("s_i - y_i", "s_i-y_i"),
    ("s*(1 - s)", "s - s^2"),
    ("s(1-s)", "s - s**2"),
    ("sigmoid(z)*(1 - sigmoid(z))", "exp(-z)/(1 + exp(-z))^2"),
    ("sqrt(6/(n_in + n_out))", "sqrt(6)/sqrt(n_out + n_in)"),
    ("alpha_1 x_1 + alpha_2 x_2", "x_2*alpha_2 + x_1*alpha_1"),
    ("1 - tanh(z)^2", "4/(exp(z) + exp(-z))^2"),
    ("log(s_i)", "ln(s_i)"),
    ("2.5e-1*s", "s/4"),
    ("max(s, z)", "max(z, s)"),
    ("s_{i} - y_{i}", "s_i - y_i"),
])
def test_forms_that_mean_the_same_are_equivalent(a, b):
    assert same(a, b)


@pytest.mark.parametrize("a, b", [
    ("s_i - y_i", "s_i"),
    ("s_i - y_i", "y_i - s_i"),
    ("s*(1 - s)", "s"),
    ("sqrt(6/(n_in + n_out))", "sqrt(4/(n_in + n_out))"),
    ("sqrt(6/(n_in + n_out))", "sqrt(6/n_in)"),
    ("s_i - y_i", "s_i - y_i + 1e-6"),
])
def test_forms_that_differ_are_not(a, b):
    assert not same(a, b)


@pytest.mark.parametrize("text, message", [
    ("s_i - q", "unknown name 'q' at character 7; use s_i"),
    ("s_i +", "ends too early; expected a number, a symbol or '('"),
    ("(s_i", "expected ')'"),
    ("s_i )", "unexpected ')' at character 5"),
    ("s_i # y_i", "unexpected character '#' at character 5"),
    ("", "empty"),
    ("log(s_i, 2)", "log takes 1 argument"),
    ("exp s_i", "'(' after exp"),
])
def test_text_that_is_no_formula_says_where_and_what_was_expected(text, message):
    with pytest.raises(FormulaError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(text, S)


@pytest.mark.parametrize("hostile", [
    "(" * 5000 + "s" + ")" * 5000,
    "-" * 5000 + "s",
    "10^9999", "1e9999", "9" * 400, "2^100^100", "s^(10^10)",
    "exp(exp(exp(exp(1000))))", "s^s^s^s^s^s^s^s^s^s^s^s", "__import__('os').system('x')",
    "s.__class__", "lambda: 0", "open('/etc/passwd')", "eval('1')", "s" * 301,
    "max(" * 30 + "s" + ", s)" * 30, 12, None, ["s"], {"a": 1},
])
def test_hostile_text_gets_a_message_or_a_verdict_in_bounded_time(hostile):
    t0 = time.perf_counter()
    try:
        tree = parse(hostile, S)
    except FormulaError:
        pass
    else:
        assert not equivalent(tree, parse("s_i - y_i", S))
    assert time.perf_counter() - t0 < 3.0


@settings(max_examples=300, deadline=2000)
@given(st.text(alphabet="sy_iz()+-*/^.,0123456789e exptanhlogsqrtmax", max_size=60))
def test_any_text_parses_or_is_refused_never_crashes(text):
    try:
        tree = parse(text, S)
    except FormulaError:
        return
    try:
        evaluate(tree, {name: 0.5 for name in S})
    except (ArithmeticError, ValueError):
        pass


def test_nothing_a_student_writes_reaches_eval_or_sympify(monkeypatch):
    import sympy

    def forbidden(*args, **kwargs):
        raise AssertionError("student text reached eval/sympify")
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(sympy, "sympify", forbidden)
    expressions._sympy_equal.cache_clear()
    assert same("s*(1 - s)", "s - s*s")
    assert not same("s_i", "y_i")


@pytest.fixture(scope="module")
def formula_question():
    return make_variant("cross_entropy", 3, {"formula": True})


@pytest.mark.parametrize("typed, right, mistake", [
    ("s_i - y_i", True, None),
    ("-(y_i - s_i)", True, None),
    ("s_i", False, "grad_is_s"),
    ("y_i - s_i", False, "grad_sign"),
    ("-y_i/s_i", False, "grad_wrt_probabilities"),
    ("s_i*y_i", False, None),
])
def test_a_formula_field_is_graded_by_meaning_and_its_wrong_forms_named(
        formula_question, typed, right, mistake):
    v = formula_question
    r = grade_question(v, {**v.answers, "grad_formula": typed}, 4.0).fields["grad_formula"]
    assert r.correct is right and (r.score > 0) is right
    assert r.mistake == mistake
    if not right and mistake is None:
        assert r.feedback == "not the expected formula"


def test_a_formula_that_does_not_parse_scores_zero_with_the_parsers_message(formula_question):
    v = formula_question
    r = grade_question(v, {**v.answers, "grad_formula": "s_i - y"}, 4.0)
    f = r.fields["grad_formula"]
    assert f.score == 0 and "unknown name 'y' at character 7" in f.feedback
    assert r.score == pytest.approx(3.0)  # the numbers still count
