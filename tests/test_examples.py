"""The examples the README's quickstart grades behave as the README says.

If this fails after a change to an example assignment or to an exercise type's
draws, regenerate its submissions: python examples/make_submissions.py [backprop.toml]
"""

import pytest

from deepdrill.grader.batch import collect_files, grade_files, load_key

HINT = "example submissions are stale: run python examples/make_submissions.py [NAME.toml]"


EXAMPLES = ["assignment.toml", "backprop.toml", "cnn_arithmetic.toml", "conv_backprop.toml",
            "softmax_ce.toml", "normalization.toml", "architectures.toml", "optimization.toml"]


@pytest.fixture(scope="module", params=EXAMPLES)
def report(request, tmp_path_factory, example_students, examples):
    """Each example assignment built for the example roster, its submissions graded."""
    from deepdrill.generator.assignment import load_assignment
    from deepdrill.generator.build import build

    name = request.param
    out = tmp_path_factory.mktemp(name.split(".")[0]) / "out"
    build(load_assignment(examples / name), example_students, out, pdf=False, workers=1)
    folder = examples / "submissions" if name == "assignment.toml" else \
        examples / name.split(".")[0] / "submissions"
    return grade_files(load_key(out / "key.json"), collect_files([folder])[0], workers=1)


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
