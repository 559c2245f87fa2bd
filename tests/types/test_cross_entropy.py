"""cross_entropy against torch (F.cross_entropy and autograd), the sympy derivation, its
steps on a student's own values, its slips alone and in pairs, and the no-free-points bound."""

import itertools
import json

import numpy as np
import pytest
import sympy
import torch
import torch.nn.functional as F
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.cross_entropy import derivation
from deepdrill.grader.score import grade_question
from sweeps import near, sweep

from deepdrill.errors import ParamError
from deepdrill.model.tolerance import entries_match
from deepdrill.model.variant import Variant

TYPE = "cross_entropy"
SEEDS = range(300)
FEW_SEEDS = range(60)
OPTIONS = [{}, {"one_hot": True}, {"batch": 3}, {"batch": 2, "one_hot": True}, {"batch": 1},
           {"classes": 5, "batch": 4}, {"classes": 2}, {"classes": 2, "batch": 6}]
SWEPT = [{}, {"batch": 3}]  # the full 300-seed sweeps; the other options get FEW_SEEDS
MAX_CONSTANT_SCORE = 0.1  # of the question's points
GRADED_EVERY = 10  # of the no-free-points sweep, every 10th variant goes through the grader


def variants(options):
    """The sweep's variants for these options, made once for every test that reads them."""
    return sweep(TYPE, options, len(SEEDS) if options in SWEPT else len(FEW_SEEDS))


def class_indices(logits, target):
    """The target as a tensor of class indices, read independently of the module under test."""
    if np.ndim(target) == np.ndim(logits):  # one-hot, shaped like the logits
        return torch.tensor(np.argmax(np.atleast_2d(target), axis=-1))
    return torch.tensor(np.atleast_1d(target), dtype=torch.long)


def torch_oracle(logits, target):
    """probabilities, mean loss and dL/dz from torch, shaped like the logits."""
    z = torch.tensor(np.atleast_2d(logits), dtype=torch.float64, requires_grad=True)
    loss = F.cross_entropy(z, class_indices(logits, target), reduction="mean")
    loss.backward()
    s = torch.softmax(z, dim=-1).detach().numpy()
    g = z.grad.numpy()
    if np.ndim(logits) == 1:
        s, g = s[0], g[0]
    return s, loss.item(), g


def torch_softmax(logits):
    return torch.softmax(torch.tensor(logits, dtype=torch.float64), dim=-1).numpy()


@pytest.mark.parametrize("options", OPTIONS)
def test_seed_sweep_against_torch(options):
    for v in variants(options):
        s, loss, g = torch_oracle(v.params["logits"], v.params["target"])
        assert np.shape(v.answers["probabilities"]) == s.shape  # 2-D stays 2-D
        assert np.shape(v.answers["grad_logits"]) == g.shape
        np.testing.assert_allclose(v.answers["probabilities"], s, rtol=1e-12)
        assert v.answers["loss"] == pytest.approx(loss, rel=1e-12)
        np.testing.assert_allclose(v.answers["grad_logits"], g, rtol=1e-10, atol=1e-15)
        assert [f.shape for f in v.fields] == [list(s.shape), [], list(g.shape)]


def sympy_gradient(kind):
    d = derivation()
    z, y = d["symbols"]
    return [sympy.lambdify([*z, *y], g) for g in d[kind]]


@pytest.mark.parametrize("kind", ["raw", "gradient"])
def test_sympy_derivative_agrees_with_autograd(kind):
    """Every component of sympy's dL/dz, for one-hot and for soft (normalised) targets."""
    grads = sympy_gradient(kind)
    rng = np.random.default_rng(0)
    for trial in range(200):
        z = rng.normal(size=3) * 2
        y = np.eye(3)[rng.integers(3)] if trial % 2 else rng.dirichlet(np.ones(3))
        zt = torch.tensor(z, requires_grad=True, dtype=torch.float64)
        F.cross_entropy(zt[None], torch.tensor(y)[None]).backward()
        ours = [g(*z, *y) for g in grads]
        np.testing.assert_allclose(ours, zt.grad.numpy(), rtol=1e-10, atol=1e-14)


def test_derivation_reduces_to_s_minus_y_and_is_cached():
    d = derivation()
    (z0, z1, z2), (y0, y1, y2) = d["symbols"]
    total = sympy.exp(z0) + sympy.exp(z1) + sympy.exp(z2)
    for i, (zi, yi) in enumerate(zip((z0, z1, z2), (y0, y1, y2))):
        assert sympy.simplify(d["gradient"][i] - (sympy.exp(zi) / total - yi)) == 0
    # the raw derivative needs sum(y) = 1 to become s - y: it is not typed-in s - y
    assert sympy.simplify(d["raw"][0] - (sympy.exp(z0) / total - y0)) != 0
    assert derivation() is d
    assert derivation.cache_info().hits >= 1


def test_derivation_latex():
    d = derivation()
    assert d["tex_gradient"] == r"- y_{0} + \frac{e^{z_{0}}}{e^{z_{0}} + e^{z_{1}} + e^{z_{2}}}"
    assert d["tex_one_hot"] == r"- z_{0} + \ln{\left(e^{z_{0}} + e^{z_{1}} + e^{z_{2}} \right)}"
    assert r"\left(y_{0} + y_{1} + y_{2}\right)" in d["tex_expanded"]
    assert r"\left(y_{0} + y_{1} + y_{2}\right)" in d["tex_grouped"]


@pytest.mark.parametrize("logits, target, loss, grad", [
    ([0, 0], 1, np.log(2), [0.5, -0.5]),
    ([0, 0], [0, 1], np.log(2), [0.5, -0.5]),
    ([np.log(1), np.log(3)], [1, 0], np.log(4), [-0.75, 0.75]),
    ([0, np.log(2), np.log(5)], 2, np.log(8 / 5), [0.125, 0.25, -0.375]),
    ([[0, 0], [0, 0]], [0, 1], np.log(2), [[-0.25, 0.25], [0.25, -0.25]]),
    ([[0, np.log(3)], [0, 0]], [[0, 1], [1, 0]], (np.log(4 / 3) + np.log(2)) / 2,
     [[0.125, -0.125], [-0.25, 0.25]]),
])
def test_hand_checked(logits, target, loss, grad):
    v = make_variant(TYPE, 0, {"logits": logits, "target": target})
    assert v.params["target"] == target  # stored as given
    assert v.answers["loss"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(v.answers["grad_logits"], grad, atol=1e-12)


def slips_by_name(params):
    return {s.name: s for s in get(TYPE).slips(params)}


def test_mistakes_reproduce_their_errors():
    v = make_variant(TYPE, 0, {"logits": [2, 1, 0], "target": 1})
    by = {m.name: m.answers for m in v.mistakes}
    s = v.answers["probabilities"]
    assert by["log10"] == {"loss": pytest.approx(-np.log10(s[1]))}
    assert by["predicted_class"] == {"loss": pytest.approx(-np.log(s[0]))}  # class 0 is argmax
    assert by["grad_is_s"] == {"grad_logits": pytest.approx(s)}
    assert "summed_over_batch" not in by
    batch = make_variant(TYPE, 0, {"logits": [[2, 1, 0], [0, 0, 3]], "target": [1, 2]})
    by = {m.name: m.answers for m in batch.mistakes}
    sb = np.asarray(batch.answers["probabilities"])
    y = np.array([[0, 1, 0], [0, 0, 1]])
    assert by["summed_over_batch"]["loss"] == pytest.approx(2 * batch.answers["loss"])
    np.testing.assert_allclose(by["summed_over_batch"]["grad_logits"], sb - y)
    np.testing.assert_allclose(by["grad_is_s"]["grad_logits"], sb / 2)
    # row 2's target is its argmax, so only row 1 changes the "predicted class" loss
    predicted = -(np.log(sb[0, 0]) + np.log(sb[1, 2])) / 2
    assert by["predicted_class"]["loss"] == pytest.approx(predicted)


BATCH = {"logits": [[2, 1, 0], [0, 0.5, 3], [1, -1, 0.2]], "target": [1, 0, 2]}


def independent_pair(params, a, b):
    """loss and grad_logits of two slips made together, computed here from torch's s."""
    s = torch_softmax(params["logits"])
    t = np.asarray(params["target"])
    n = len(t)
    y = np.eye(s.shape[1])[t]
    p = s.max(axis=1) if "predicted_class" in (a, b) else s[np.arange(n), t]
    losses = -np.log10(p) if "log10" in (a, b) else -np.log(p)
    divisor = 1 if "summed_over_batch" in (a, b) else n
    grad = (s if "grad_is_s" in (a, b) else s - y) / divisor
    return losses.sum() / divisor, grad


def test_log10_and_predicted_class_compose():
    """The catalogue's compound case: log base 10 of the predicted class's probability."""
    ex, by = get(TYPE), slips_by_name(BATCH)
    assert set(by["log10"].swaps).isdisjoint(by["predicted_class"].swaps)
    values = ex.values(BATCH, [by["log10"], by["predicted_class"]])
    s = torch_softmax(BATCH["logits"])
    assert values["loss"] == pytest.approx(-np.log10(s.max(axis=1)).mean(), rel=1e-12)
    np.testing.assert_allclose(values["grad_logits"], (s - np.eye(3)[[1, 0, 2]]) / 3)


@pytest.mark.parametrize("a, b", list(itertools.combinations(
    ["log10", "predicted_class", "grad_is_s", "summed_over_batch"], 2)))
def test_every_pair_of_slips_composes(a, b):
    ex, by = get(TYPE), slips_by_name(BATCH)
    values = ex.values(BATCH, [by[a], by[b]])
    loss, grad = independent_pair(BATCH, a, b)
    assert values["loss"] == pytest.approx(loss, rel=1e-12)
    np.testing.assert_allclose(values["grad_logits"], grad, rtol=1e-12)


def test_predicted_class_mistake_dropped_when_the_target_is_predicted():
    v = make_variant(TYPE, 0, {"logits": [2, 1, 0], "target": 0})
    assert "predicted_class" not in {m.name for m in v.mistakes}


@pytest.mark.parametrize("options", SWEPT)
def test_every_mistake_differs_from_the_answer(options):
    for v in variants(options):
        names = {m.name for m in v.mistakes}
        assert {"log10", "grad_is_s"} <= names
        assert ("summed_over_batch" in names) == bool(options)
        for m in v.mistakes:
            for field, value in m.answers.items():
                assert not np.allclose(value, v.answers[field], rtol=1e-2, atol=1e-3), m.name


@pytest.mark.parametrize("given, target", [
    ([0.5, 0.3, 0.4], 1),  # does not sum to 1
    ([[0.2, 0.2, 0.2], [0.9, 0.05, 0.3]], [2, 0]),
    ([[0.25, 0.7], [0.5, 0.5]], [[0, 1], [1, 0]]),
])
def test_loss_and_gradient_follow_a_students_probabilities(given, target):
    """The grader re-runs the steps on a student's own (here non-normalised) probabilities."""
    ex = get(TYPE)
    params = {"logits": np.zeros(np.shape(given)).tolist(), "target": target}
    values = ex.values(params, given={"probabilities": np.array(given)})
    s = np.atleast_2d(given)
    t = np.atleast_1d(target) if np.ndim(target) < np.ndim(given) else \
        np.argmax(np.atleast_2d(target), axis=1)
    y = np.eye(s.shape[1])[t]
    assert values["loss"] == pytest.approx(-np.mean(np.log(s[np.arange(len(s)), t])))
    grad = (s - y) / len(s)
    np.testing.assert_allclose(values["grad_logits"], grad if np.ndim(given) == 2 else grad[0])


@pytest.mark.parametrize("given, loss", [([0, 1, 0], 0), ([0.5, 0, 0.5], np.inf),
                                         ([0.5, -0.2, 0.7], np.nan)])
def test_meaningless_probabilities_give_no_number_and_no_error(given, loss):
    """A log of 0 or of a negative number: inf or nan (no credit), never an exception or a
    warning (warnings are errors here)."""
    ex, params = get(TYPE), {"logits": [0, 0, 0], "target": 1}
    by = slips_by_name(params)
    for slips in ([], [by["log10"]], [by["predicted_class"], by["log10"]]):
        values = ex.values(params, slips, given={"probabilities": np.array(given, float)})
        np.testing.assert_allclose(values["grad_logits"], np.subtract(given, [0, 1, 0]))
    values = ex.values(params, given={"probabilities": np.array(given, float)})
    assert values["loss"] == pytest.approx(loss, nan_ok=True)


@pytest.mark.parametrize("options", OPTIONS)
def test_draws_are_hand_friendly_and_clear_of_constants(options):
    for v in variants(options):
        z = np.atleast_2d(v.params["logits"])
        assert np.all(np.round(z * 10) == z * 10) and z.min() >= -2 and z.max() <= 3
        top = np.sort(z, axis=-1)
        assert np.all(top[:, -1] > top[:, -2]), "tie for the largest logit"
        t = np.atleast_1d(v.params["target"])
        assert t.dtype.kind == "i" and np.all((0 <= t) & (t < z.shape[1]))
        n = z.shape[1]
        for name in ("probabilities", "grad_logits"):
            for constant in (0, 1, 1 / n, z):
                assert not near(np.atleast_2d(v.answers[name]), constant).any(), (v.seed, name)
        for constant in (0, 1, 1 / n):
            assert not near(v.answers["loss"], constant), v.seed


def constant_answers(v):
    """What a student writes without working: every field all zeros, all ones or the
    uniform 1/n; or the logits copied as probabilities and gradient, with each of those
    constants as the loss."""
    z = np.asarray(v.params["logits"], dtype=float)
    n = z.shape[-1]
    out = {}
    for name, c in (("zeros", 0.0), ("ones", 1.0), ("uniform", 1 / n)):
        filled = np.full(z.shape, c).tolist()
        out[name] = {"probabilities": filled, "loss": c, "grad_logits": filled}
        out[f"logits, loss {name}"] = {"probabilities": z.tolist(), "loss": c,
                                       "grad_logits": z.tolist()}
    return out


def share_of_points(v, answers):
    """The share of the points that answers earn as the grader counts it (full carried-
    forward credit for a field right throughout for the student's own probabilities);
    fast enough for every variant of a sweep, checked against the grader below."""
    ex = get(TYPE)
    own = ex.answers(v.fields, ex.values(
        v.params, given={"probabilities": np.asarray(answers["probabilities"], dtype=float)}))
    share = 0.0
    for f in v.fields:
        given = np.ravel(answers[f.name]).astype(float)
        right = entries_match(f.tolerance, given, np.ravel(v.answers[f.name]).astype(float))
        if f.name != "probabilities" and not right.all() and \
                entries_match(f.tolerance, given, np.ravel(own[f.name]).astype(float)).all():
            right[:] = True
        share += right.mean() / len(v.fields)
    return share


@pytest.mark.parametrize("options", SWEPT)
def test_a_constant_answer_earns_at_most_a_tenth(options):
    """Every variant of the sweep by share_of_points; every GRADED_EVERY-th also by the
    real grader, carried-forward credit included."""
    for i, v in enumerate(variants(options)):
        for name, answers in constant_answers(v).items():
            share = share_of_points(v, answers)
            assert share <= MAX_CONSTANT_SCORE, (v.seed, name, share)
            assert share == 0, (v.seed, name)  # the draws leave nothing to match
            if i % GRADED_EVERY == 0:
                assert grade_question(v, answers, 10).score == 0, (v.seed, name)


@pytest.mark.parametrize("answers, share", [
    ({"probabilities": [0.5, 0.25, 0.25], "loss": 0.2, "grad_logits": [0, 0, 0]}, 0),
    ({"probabilities": [0.5, 0.25, 0.25], "loss": np.log(4), "grad_logits": [0.5, -0.75, 0.25]},
     2 / 3),  # loss and gradient carried forward from wrong probabilities
    ({"probabilities": [0.5, 0.25, 0.25], "loss": np.log(4), "grad_logits": [0.5, 0, 0.25]},
     1 / 3),  # a gradient consistent only here and there earns nothing
    ({"probabilities": "KEY", "loss": 0, "grad_logits": [0.09, -0.75, 0]}, 1 / 3 + 2 / 9),
])
def test_share_of_points_counts_as_the_grader(answers, share):
    v = make_variant(TYPE, 0, {"logits": [0, 1, 2], "target": 1})
    if answers["probabilities"] == "KEY":
        answers = {**answers, "probabilities": v.answers["probabilities"]}
    assert share_of_points(v, answers) == pytest.approx(share)
    assert grade_question(v, answers, 10).score == pytest.approx(10 * share)


def test_targets_are_drawn_over_all_classes():
    seen = {make_variant(TYPE, s, options={"classes": 4}).params["target"] for s in range(60)}
    assert seen == {0, 1, 2, 3}


def test_deterministic_per_seed_and_json_round_trip():
    for seed in range(20):
        for options in ({}, {"batch": 2, "one_hot": True}):
            v = make_variant(TYPE, seed, options=options)
            assert v == make_variant(TYPE, seed, options=options)
            assert Variant.from_json(json.loads(json.dumps(v.to_json()))) == v
    assert len({str(v.params) for v in variants({})}) > 200


@pytest.mark.parametrize("target, ndim, classes", [
    (2, 1, None),
    (5, 1, 6),
    ([0, 0, 0, 1], 1, 4),  # a one-hot vector: one example
    ([2, 0], 2, None),  # not one-hot: a batch of class indices
    ([[0, 1, 0], [1, 0, 0]], 2, 3),
])
def test_pinned_target_gets_logits_that_fit(target, ndim, classes):
    v = make_variant(TYPE, 3, {"target": target})
    assert v.params["target"] == target
    z = np.asarray(v.params["logits"])
    assert z.ndim == ndim and z.shape[-1] >= 3
    if classes:
        assert z.shape[-1] == classes


def test_batch_option_reads_a_flat_pinned_target_as_indices():
    v = make_variant(TYPE, 3, {"target": [0, 1]}, options={"batch": 2})
    assert np.shape(v.params["logits"])[0] == 2
    single = make_variant(TYPE, 3, {"target": [0, 1]})
    assert np.shape(single.params["logits"]) == (2,)  # a valid one-hot vector


def test_pinned_logits_get_a_target_in_range():
    for seed in range(30):
        v = make_variant(TYPE, seed, {"logits": [[1, 2], [0, 3], [2, 2]]})
        assert v.params["logits"] == [[1, 2], [0, 3], [2, 2]]
        t = v.params["target"]
        assert len(t) == 3 and all(c in (0, 1) for c in t)


@pytest.mark.parametrize("target, message", [
    (3, "whole number from 0 to 2"),
    (-1, "whole number from 0 to 2"),
    (1.5, "whole number from 0 to 2"),
    ([0, 1], "one-hot list of 3 numbers"),
    ([1], "one-hot list of 3 numbers"),
    ([[1, 0, 0]], "for one example"),
    ([0.5, 0.5, 0], "exactly one 1"),
    ([1, 1, 0], "exactly one 1"),
    ("a", "made of finite numbers"),
    (True, "made of finite numbers"),
])
def test_bad_targets(target, message):
    with pytest.raises(ParamError, match=message):
        make_variant(TYPE, 0, {"logits": [1, 2, 3], "target": target})


@pytest.mark.parametrize("target, message", [
    ([0], "list of 2 class indices"),
    ([0, 2], "from 0 to 1"),
    ([[1, 0], [1, 1]], "exactly one 1"),
])
def test_bad_batch_targets(target, message):
    with pytest.raises(ParamError, match=message):
        make_variant(TYPE, 0, {"logits": [[1, 2], [3, 4]], "target": target})


def test_bad_parameters_and_options():
    with pytest.raises(ParamError, match="missing parameter 'target'"):
        get(TYPE).check({"logits": [1, 2]})
    with pytest.raises(ParamError, match="at least 2 numbers"):
        make_variant(TYPE, 0, {"logits": [1], "target": 0})
    with pytest.raises(ParamError, match="at most 6 classes"):
        make_variant(TYPE, 0, {"target": 9})
    with pytest.raises(ParamError, match="option classes"):
        make_variant(TYPE, 0, options={"classes": 9})


def test_templates_render_one_example():
    v = make_variant(TYPE, 0, {"logits": [0, 1, 2], "target": 1})
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert "numbered from 0" in problem and "The target is class 1" in problem
    assert r"y = \left(0,\ 1,\ 0\right)" in problem
    assert "sympy" not in problem
    solution = render_document([sheet], solutions=True)
    d = derivation()
    for key in ("tex_loss", "tex_expanded", "tex_raw", "tex_grouped", "tex_gradient"):
        assert d[key] in solution
    assert r"L = -\ln s_{1} = -\ln 0.2447 = \mathbf{1.408}" in solution
    assert r"= \left(0.09003,\ -0.7553,\ 0.6652\right)" in solution
    assert r"\texttt{loss} &= 1.408" in solution


def test_templates_render_a_batch():
    v = make_variant(TYPE, 0, {"logits": [[0, 0], [0, np.log(3)]],
                                          "target": [[1, 0], [1, 0]]})
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert r"\toprule" in problem and r"$n = 2$ & $\left(0,\ 1.099\right)$ & 0 &" in problem
    solution = render_document([sheet], solutions=True)
    assert r"-\ln s^{(2)}_{0} = -\ln 0.25 = 1.386" in solution
    assert r"L = \frac{1}{2}(0.6931 + 1.386) = \mathbf{1.04}" in solution
    assert r"\tfrac{1}{2}\bigl(" in solution and r"divided by $N = 2$" in solution
    assert r"\texttt{grad\_logits} &= \begin{bmatrix}" in solution


def test_worked_solution_reads_the_step_values():
    ex = get(TYPE)
    params = {"logits": [0, 1, 2], "target": 1}
    values = ex.values(params)
    values["target_probabilities"] = np.float64(0.125)  # values no recomputation would give
    values["example_losses"] = np.float64(2.5)
    values["loss"] = 2.5
    values["grad_logits"] = np.array([0.5, -0.75, 0.25])
    steps = ex.worked(params, values)
    assert steps["terms"] == [{"t": 1, "s": "0.125", "loss": "2.5"}]
    assert steps["answers"]["loss"] == "2.5"
    assert steps["grads"][0]["g"] == r"\left(0.5,\ -0.75,\ 0.25\right)"


@pytest.mark.parametrize("options", OPTIONS)
def test_solutions_render_for_many_variants(options):
    for v in variants(options)[:10]:
        text = render_document([Sheet("T", "C", [Question(1, 3, v)])], solutions=True)
        assert r"\texttt{grad\_logits}" in text and v.field("loss")
