"""Printed codes: every sheet and question has one, it leads back to the key, and a
misread character is caught by the check and answered with the near codes."""

from __future__ import annotations

import random
import re

import pytest

from deepdrill.errors import DeepdrillError
from deepdrill.generator.build import build, sheets
from deepdrill.generator.render import render_document
from deepdrill.grader.lookup import codes_in, find
from deepdrill.model.codes import CHECKS, DIGITS, parse, variant_code


def test_every_single_misread_and_neighbour_swap_fails_the_check():
    rng = random.Random(0)
    for seed in rng.sample(range(10 ** 9), 200):
        code = variant_code("q1", seed).replace("-", "")
        assert parse(code) == code
        for i in range(len(code)):
            for c in (CHECKS if i == len(code) - 1 else DIGITS):
                if c != code[i]:
                    assert parse(code[:i] + c + code[i + 1:]) is None, (code, i, c)
        for i in range(len(code) - 1):
            if code[i] != code[i + 1]:
                swapped = code[:i] + code[i + 1] + code[i] + code[i + 2:]
                assert parse(swapped) is None, (code, i)


def test_codes_read_as_people_type_them():
    code = variant_code("sheet", 42)
    assert parse(code.lower()) == parse(" ".join(code)) == code.replace("-", "")
    typed = code.replace("1", "l").replace("0", "O")
    assert parse(typed) == code.replace("-", "")


@pytest.fixture(scope="module")
def key(tmp_path_factory, example_assignment, example_students):
    out = tmp_path_factory.mktemp("codes") / "out"
    build(example_assignment, example_students, out, pdf=False, workers=1)
    return out / "key.json"


def test_every_code_in_a_key_is_distinct_and_found(key, example_students,
                                                   example_assignment):
    codes = codes_in(key)
    n_questions = len(example_assignment.questions)
    assert len(codes) == len(example_students) * (1 + n_questions)
    for code, what in codes.items():
        again = find(key, what.code.lower())
        assert again == what
    one = next(f for f in codes.values() if f.label == "q2")
    assert one.variant["type"] == example_assignment.questions[1].type


def test_a_smudged_code_names_the_codes_it_could_have_been(key):
    code = next(iter(codes_in(key).values())).code
    smudged = code[:2] + ("X" if code[2] != "X" else "Y") + code[3:]
    with pytest.raises(DeepdrillError, match="fails its check character.*one character away"
                       f".*{code}"):
        find(key, smudged)
    with pytest.raises(DeepdrillError, match="not a code"):
        find(key, "hello")
    other = variant_code("q1", 7)
    if other.replace("-", "") not in codes_in(key):
        with pytest.raises(DeepdrillError, match="not one of this key's"):
            find(key, other)


def test_sheets_print_their_codes(example_assignment, example_students):
    from deepdrill.generator.build import make_variants

    builds = make_variants(example_assignment, example_students[:2])
    tex = render_document(sheets(example_assignment, builds), solutions=False)
    printed = set(re.findall(r"([0-9A-Z]{4})\{?-\}?([0-9A-Z*~$=U]{4})", tex))
    for b in builds:
        assert tuple(variant_code("sheet", b.seed).split("-")) in printed
        for label, v in b.variants.items():
            assert tuple(variant_code(label, v.seed).split("-")) in printed
