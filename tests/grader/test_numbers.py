import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deepdrill.grader.numbers import NonFinite, NotANumber, parse_integer, parse_number


@pytest.mark.parametrize("text, value", [
    ("0.25", 0.25), ("1/4", 0.25), (" -3 / 8 ", -0.375), ("2.5e-3", 0.0025), ("+7", 7.0),
    (".5", 0.5), ("\u22122", -2.0), (3, 3.0), (-1.5, -1.5), ("1E3", 1000.0),
])
def test_accepted_forms(text, value):
    assert parse_number(text) == pytest.approx(value)


@pytest.mark.parametrize("bad, words", [
    (None, "no answer"), (True, "not a number"), ("abc", "not a number"),
    ("1/0", "divides by zero"), ("0,25", "point, not a comma"), ("nan", "not a number"),
    ("inf", "not a number"), (NonFinite("NaN"), "not a finite"), (float("inf"), "not a finite"),
    ("1e999", "not a finite"), (10 ** 400, "too large"), ("9" * 100, "too long"),
    ([1], "got a list"), ({"a": 1}, "got an object"), ("__import__('os').system('x')", "not a number"),
    ("2**8", "not a number"), ("1+1", "not a number"), ("sqrt(2)", "not a number"),
])
def test_rejected_with_a_message(bad, words):
    with pytest.raises(NotANumber, match=words.replace("(", r"\(")):
        parse_number(bad)


def test_integers():
    assert parse_integer(156) == 156
    assert parse_integer("156") == 156
    assert parse_integer(156.0) == 156
    with pytest.raises(NotANumber, match="whole number"):
        parse_integer(156.5)


@given(st.text(max_size=80))
def test_any_text_is_a_number_or_a_message(text):
    try:
        x = parse_number(text)
    except NotANumber as err:
        assert str(err)
    else:
        assert math.isfinite(x)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_and_their_text_parse_to_themselves(x):
    assert parse_number(x) == x
    assert parse_number(repr(x)) == x


@given(st.fractions(min_value=-10 ** 9, max_value=10 ** 9, max_denominator=10 ** 6))
def test_fractions_as_text(f):
    assert parse_number(f"{f.numerator}/{f.denominator}") == pytest.approx(float(f))
