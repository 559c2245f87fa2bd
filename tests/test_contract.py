"""What every registered exercise type must satisfy, through the real grading path.

Per-type modules (tests/types/) test what is particular: the PyTorch or sympy
oracle sweeps, hand-checked cases, the draws. Here: determinism, the JSON round
trip, rendering, right answers written as students write them, every mistake and
every pair of mistakes named, carried-forward credit along every chain, students
who round every intermediate by hand, and no free points for constant answers.
"""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

from deepdrill.errors import InternalError
from deepdrill.generator.exercise import all_types, get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import NotApplicable, ancestors, by_hand, run
from deepdrill.grader.score import CreditPolicy, grade_question
from deepdrill.model.fields import Kind, flatten, skeleton
from deepdrill.model.tolerance import BIG_COUNT, Mode
from deepdrill.model.variant import Variant

TYPES = [t.id for t in all_types()]
POINTS = 10.0
# Option sets each type is swept with besides its defaults (the shapes students meet).
OPTIONS: dict[str, list[dict[str, Any]]] = {
    "softmax": [{"batch": 2}],
    "cross_entropy": [{"batch": 3}, {"one_hot": True}],
    "batchnorm_forward": [{"features": 2}],
    "conv2d_forward": [{"in_channels": 2, "bias": True}],
    "cnn_layer_table": [{"multiplications": True}, {"blank": "any"},
                        {"blank": "any", "multiplications": True}],
    "conv_cost": [{"compare": True}],
    "conv2d_backward": [{"in_channels": 2, "out_channels": 2}],
    "pooling": [{"overlap": True}, {"channels": 2}],
    "softmax_regression": [{"classes": 2}, {"classes": 5, "features": 4}, {"features": 1}],
    "activation_gradients": [{"layers": 6}, {"layers": 2}],
    "mlp_forward": [{"hidden_layers": 2, "width": 3},
                    {"activation": "tanh", "output_activation": "softmax"}],
    "mlp_backward": [{"loss": "mse", "hidden_layers": 2},
                     {"loss": "mse", "activation": "sigmoid", "output_activation": "sigmoid"}],
    "batchnorm_backward": [{"features": 2}, {"n": 3}],
    "residual_block": [{"dim": 3}, {"dim": 4, "hidden": 3}],
    "optimizer_step": [{"size": 4}, {"size": 2}],
    "dropout": [{"batch": 2}, {"phase": "test"}, {"scheme": "standard", "phase": "test"},
                {"units": 8, "phase": "train"}],
    "xavier_init": [{"network": "mlp"}, {"distribution": "normal"}, {"weighted": 5}],
}
PINNED: dict[str, list[dict[str, Any]]] = {
    "conv2d_forward": [{"activation": "relu", "padding": 1}, {"stride": 2}],
    "cross_entropy": [{"formula": True}],
    "conv2d_backward": [{"stride": 2}, {"padding": 1}, {"flip_kernel": True},
                        {"activation": "none"},
                        {"input": [[1, 2, -1, 3, 0]], "kernel": [[2, -1]], "activation": "none",
                         "formula": True}],
    "pooling": [{"mode": "max", "size": 2, "stride": 1}],
    # ReLU chains are pinned only: a dead unit makes a constant answer worth too much
    "activation_gradients": [{"activation": "sigmoid"}, {"activation": "tanh"},
                             {"formula": True}, {"activation": "tanh", "formula": True}],
    "batchnorm_backward": [{"eps": 0.5}],
    "residual_block": [{"weights1": [[1, -1], [2, 1]]}],
    "optimizer_step": [{"optimizer": "sgd"}, {"optimizer": "momentum"},
                       {"optimizer": "momentum", "velocity": [0, 0, 0]},
                       {"optimizer": "adam"}, {"optimizer": "adam", "step": 1},
                       {"optimizer": "adam", "step": 3}],
    "dropout": [{"keep_prob": 0.8, "scheme": "inverted", "phase": "test"}],
    "xavier_init": [{"formula": True}, {"gain": 1.414},
                    {"distribution": "normal", "formula": True, "gain": 1.667}],
}
# Types whose later fields cannot be reached by this module's generic wrong value: a max
# pool's gradient follows the element a student's output names, and 1.5 y + 0.5 names none
# (tests/types/test_pooling.py checks its carried-forward credit with real elements).
CARRY_PROBE_MISSES = {"pooling"}


def cases(type_id: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [({}, {})] + [({}, o) for o in OPTIONS.get(type_id, [])] + \
        [(p, {}) for p in PINNED.get(type_id, [])]


def variants(type_id: str, seeds: int):
    for pinned, options in cases(type_id):
        for seed in range(seeds):
            yield make_variant(type_id, seed, pinned, options)


def fields_named(result) -> set[str]:
    return {part for f in result.fields.values() if f.mistake for part in f.mistake.split("+")}


# -- the record -----------------------------------------------------------------------

@pytest.mark.parametrize("type_id", TYPES)
def test_deterministic_json_round_trip_and_versioned(type_id):
    for v in variants(type_id, 15):
        again = make_variant(type_id, v.seed, *_case_of(type_id, v))
        assert again == v
        stored = Variant.from_json(json.loads(json.dumps(v.to_json())))
        assert stored == v and stored.version == get(type_id).version >= 1
        assert set(v.answers) == {f.name for f in v.fields}


def _case_of(type_id, v):
    for pinned, options in cases(type_id):
        if make_variant(type_id, v.seed, pinned, options) == v:
            return pinned, options
    raise AssertionError("variant from no known case")


@pytest.mark.parametrize("type_id", TYPES)
def test_renders_problem_and_worked_solution(type_id):
    for v in variants(type_id, 4):
        for solutions in (False, True):
            tex = render_document([Sheet("T", "C", [Question(1, 5, v, "q1")])], solutions)
            assert r"\end{document}" in tex


@pytest.mark.parametrize("type_id", TYPES)
def test_worked_solution_reads_stored_values_when_not_in_memory(type_id):
    v = make_variant(type_id, 3)
    stored = Variant.from_json(v.to_json())
    assert stored.values is None
    one = render_document([Sheet("T", "C", [Question(1, 5, v, "q1")])], True)
    assert one == render_document([Sheet("T", "C", [Question(1, 5, stored, "q1")])], True)


def test_a_failure_inside_a_type_is_reported_as_a_bug(monkeypatch):
    ex = get("batchnorm_forward")

    def broken(params):
        raise ValueError("oops")
    monkeypatch.setattr(ex, "graph", broken)
    with pytest.raises(InternalError, match="bug in deepdrill"):
        make_variant("batchnorm_forward", 0)


# -- right answers, as students write them ---------------------------------------------

def as_student_writes(f, value: Any, rng: np.random.Generator) -> Any:
    """The right value moved within its tolerance and written as text or a fraction."""
    if isinstance(value, list):
        return [as_student_writes(f, v, rng) for v in value]
    if f.kind is Kind.EXPRESSION:  # the same formula, written another way
        return rng.choice([f"1*({value})", f"-(-({value}))", value.replace(" ", "")])
    if f.kind is Kind.INTEGER:
        return f"{value:.4e}" if abs(value) >= BIG_COUNT else str(value)
    tol = f.tolerance
    bound = max(tol.rtol * abs(value), tol.atol) if tol.mode is Mode.RELABS else 0.0
    moved = value + rng.choice([-0.4, 0.4]) * bound
    frac = Fraction(moved).limit_denominator(1000)
    if abs(float(frac) - moved) <= 0.05 * bound and rng.random() < 0.3:
        return f"{frac.numerator}/{frac.denominator}"
    return f"{moved:.6g}" if rng.random() < 0.5 else float(f"{moved:.6g}")


@pytest.mark.parametrize("type_id", TYPES)
def test_right_answers_written_by_students_score_full_marks(type_id):
    rng = np.random.default_rng(0)
    for v in variants(type_id, 60):
        answers = {f.name: as_student_writes(f, v.answers[f.name], rng) for f in v.fields}
        r = grade_question(v, answers, POINTS)
        assert r.score == pytest.approx(POINTS), (v.seed, {k: f.feedback for k, f in
                                                            r.fields.items() if not f.correct})


@pytest.mark.parametrize("type_id", TYPES)
def test_students_who_round_every_step_by_hand_lose_nothing(type_id):
    ex = get(type_id)
    for v in variants(type_id, 100):
        values = run(ex.graph(v.params), v.params, rounding=by_hand)
        r = grade_question(v, ex.answers(v.fields, values), POINTS)
        assert r.score == pytest.approx(POINTS), (v.seed, v.params, {
            k: f.feedback for k, f in r.fields.items() if not f.correct})


# -- wrong answers ------------------------------------------------------------------------

@pytest.mark.parametrize("type_id", TYPES)
def test_every_mistake_loses_points_and_is_named(type_id):
    seen = set()
    for v in variants(type_id, 30):
        for m in v.mistakes:
            r = grade_question(v, {**v.answers, **m.answers}, POINTS)
            assert r.score < POINTS
            named = fields_named(r)
            twins = {o.name for o in v.mistakes if o.answers == m.answers}
            assert named & twins, (v.seed, m.name, {k: f.feedback for k, f in r.fields.items()})
            seen.add(m.name)
    assert seen == {s.name for s in get(type_id).slips(make_variant(type_id, 0).params)} or seen


@pytest.mark.parametrize("type_id", TYPES)
def test_every_pair_of_mistakes_is_named(type_id):
    ex = get(type_id)
    pairs_named = 0
    for v in variants(type_id, 8):
        singles = {m.name: m.answers for m in v.mistakes}
        for a, b in itertools.combinations(ex.slips(v.params), 2):
            try:
                both = ex.answers(v.fields, ex.values(v.params, [a, b]))
            except NotApplicable:
                continue
            changed = {k: x for k, x in both.items() if x != v.answers[k]}
            explained_by_one = any(all(m.get(k) == x for k, x in changed.items())
                                   for m in singles.values())
            if not changed or explained_by_one or a.name not in singles or b.name not in singles:
                continue
            r = grade_question(v, both, POINTS)
            named = fields_named(r)
            # a mistake whose answers are another's on this variant (no +1 and no padding
            # with stride 2 and padding 1) cannot be told apart from it
            twins = {n for n, ans in singles.items()
                     if ans in (singles[a.name], singles[b.name])} | {a.name, b.name}
            assert {a.name, b.name} <= named or (named and named <= twins), \
                (v.seed, a.name, b.name, {k: f.feedback for k, f in r.fields.items()})
            pairs_named += 1
    assert pairs_named or type_id in ("softmax",), "no pair of mistakes was ever tried"


def wrong_value(f, value: Any) -> Any:
    """A clearly wrong value of the same shape (a student's slip somewhere earlier)."""
    if isinstance(value, list):
        return [wrong_value(f, v) for v in value]
    if f.kind is Kind.EXPRESSION:
        return f"{value} + 1"
    return value + 1 if f.kind is Kind.INTEGER else round(value * 1.5 + 0.5, 4)


@pytest.mark.parametrize("type_id", TYPES)
def test_later_fields_right_from_a_wrong_earlier_one_get_carried_forward_credit(type_id):
    ex = get(type_id)
    credited = 0
    for v in variants(type_id, 20):
        graph = ex.graph(v.params)
        by_step = {s: f for f in v.fields for s in f.steps}
        for early in v.fields:
            later = [f for f in v.fields if f is not early and
                     any(set(early.steps) & ancestors(graph, s) for s in f.steps)]
            if not later:
                continue
            wrong = wrong_value(early, v.answers[early.name])
            given = dict(zip(early.steps, wrong if early.parts else [wrong]))
            given = {k: np.asarray(x) for k, x in given.items()}
            try:
                values = ex.values(v.params, given=given)
                answers = ex.answers(v.fields, {**values, **given})
            except Exception:  # noqa: BLE001  (the wrong value cannot feed a step)
                continue
            if any(not np.all(np.isfinite(np.asarray(flatten(answers[f.name]), dtype=float)))
                   for f in later):
                continue
            answers[early.name] = wrong
            r = grade_question(v, answers, POINTS)
            lost = r.fields[early.name].max_score - r.fields[early.name].score
            assert r.score == pytest.approx(POINTS - lost), (v.seed, early.name, {
                k: f.feedback for k, f in r.fields.items() if not f.correct})
            none = grade_question(v, answers, POINTS, CreditPolicy(carry_forward=0))
            assert none.score <= r.score and none.carried == 0
            credited += r.carried > 0
            assert by_step
    chained = any(len(f.steps) > 1 for f in make_variant(type_id, 0).fields) or \
        len(make_variant(type_id, 0).fields) > 1
    assert credited or not chained or type_id in CARRY_PROBE_MISSES, \
        "no carried-forward credit was ever given"


@pytest.mark.parametrize("type_id", TYPES)
def test_constant_answers_earn_next_to_nothing(type_id):
    worst = 0.0
    for v in variants(type_id, 60):
        for constant in (0, 1):
            answers = {f.name: _filled(skeleton(f.shape), constant) for f in v.fields}
            worst = max(worst, grade_question(v, answers, POINTS).score / POINTS)
    assert worst <= 0.1, worst


def _filled(blank: Any, constant: float) -> Any:
    if isinstance(blank, list):
        return [_filled(b, constant) for b in blank]
    return constant


@pytest.mark.parametrize("type_id", TYPES)
def test_text_and_wrong_shapes_never_raise(type_id):
    v = make_variant(type_id, 1)
    for bad in ("text", [], [[1, 2], [3]], {"a": 1}, None, True, 1e308):
        r = grade_question(v, {f.name: bad for f in v.fields}, POINTS)
        assert 0 <= r.score <= POINTS


@pytest.mark.parametrize("type_id", TYPES)
def test_fields_record_the_catalogue_chains(type_id):
    """depends_on names exactly the fields whose steps a field's steps are computed from."""
    ex = get(type_id)
    for v in variants(type_id, 3):
        graph = ex.graph(v.params)
        for f in v.fields:
            above = set().union(*(ancestors(graph, s) for s in f.steps))
            assert set(f.depends_on) == {g.name for g in v.fields if set(g.steps) & above}


@pytest.mark.parametrize("type_id, params", [
    ("batchnorm_forward", {"x": [1e300, -1e300, 0], "gamma": 1, "beta": 0}),
    ("conv2d_forward", {"input": [[1e300, 1e300], [1e300, 1e300]], "kernel": [[1e300]]}),
    ("cnn_layer_table", {"input_shape": [3, 10 ** 9, 10 ** 9], "layers": ["CONV3-8", "FC-10"]}),
    ("conv2d_forward", {"input": [[1]], "kernel": [[1]], "padding": 100_000}),  # 300 GB
])
def test_parameters_that_overflow_are_refused_with_a_message(type_id, params):
    from deepdrill.errors import ParamError

    with pytest.raises(ParamError, match="overflow|exceed 2\\^53|a sheet.s size"):
        make_variant(type_id, 0, params)


def test_an_unlucky_seed_draws_again_and_impossible_options_are_still_refused(monkeypatch):
    from deepdrill.errors import ParamError

    ex = get("softmax")
    real, calls = ex.sample, []

    def unlucky_once(rng, pinned, options):
        calls.append(1)
        if len(calls) == 1:
            raise ParamError("no good draw")
        return real(rng, pinned, options)
    monkeypatch.setattr(ex, "sample", unlucky_once)
    assert make_variant("softmax", 5).answers and len(calls) == 2
    assert make_variant("softmax", 5) == make_variant("softmax", 5)  # still one seed, one variant

    def never(rng, pinned, options):
        raise ParamError("these options leave no good draw")
    monkeypatch.setattr(ex, "sample", never)
    with pytest.raises(ParamError, match="leave no good draw"):
        make_variant("softmax", 5)
