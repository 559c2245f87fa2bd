"""The examples the README's quickstart grades behave as the README says.

If this fails after a change to examples/assignment.toml or to an exercise type's
draws, regenerate the submissions: python examples/make_submissions.py
"""

import pytest

from deepdrill.grader.batch import collect_files, grade_files, load_key

HINT = "examples/submissions are stale: run python examples/make_submissions.py"


@pytest.fixture(scope="module")
def report(example_build, examples):
    key = load_key(example_build / "key.json")
    return grade_files(key, collect_files([examples / "submissions"])[0], workers=1)


def by_student(report):
    return {r["id"]: r for r in report.student_rows()}


def test_right_answers_earn_full_marks(report):
    rows = by_student(report)
    for sid in ("s001", "s002"):  # s002 rounds every step to 3 figures, types text
        assert rows[sid]["total"] == pytest.approx(report.key.max_score), HINT


def test_typical_mistakes_are_named(report):
    entry = next(e for e in report.entries if e.student_id == "s003")
    for label, q in entry.questions.items():
        assert q.score < q.max_score, label
        assert any(f.mistake for f in q.fields.values()), f"{label}: no mistake named; {HINT}"


def test_later_answers_built_on_a_mistake_earn_carried_forward_credit(report):
    rows = by_student(report)
    assert rows["s003"]["carried_forward"] > 0 and rows["s001"]["carried_forward"] == 0
    assert rows["s002"]["carried_forward"] == 0, "rounding is not a mistake"


def test_half_done_and_broken_and_missing(report):
    rows = by_student(report)
    assert 0 < rows["s004"]["total"] < report.key.max_score
    assert rows["s005"]["status"] == "unreadable"
    assert rows["s006"]["status"] == "no_submission"
    assert rows["s999"]["status"] == "unknown_student"
