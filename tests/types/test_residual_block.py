"""residual_block against torch autograd (float64): y = ReLU(W2 ReLU(W1 x) + x)."""

import numpy as np
import pytest
import torch

from deepdrill.errors import ParamError
from deepdrill.generator.backward import MAX_CONSTANT_SHARE, free_share
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.steps import run
from deepdrill.generator.types.residual_block import GRAPH, derivation
from sweeps import sweep

TYPE = "residual_block"
SLIPS = ["dropped_skip", "forgot_outer_mask", "forgot_inner_mask"]


def torch_oracle(x, weights1, weights2, grad_output):
    """The output and dL/dx, and its two parts: x fed to the branch and to the skip path as
    two leaves, so autograd keeps what flows back along each apart."""
    t = {k: torch.tensor(np.asarray(v, dtype=float)) for k, v in
         (("w1", weights1), ("w2", weights2), ("g", grad_output))}
    x_all = torch.tensor(np.asarray(x, dtype=float), requires_grad=True)
    x_branch = torch.tensor(np.asarray(x, dtype=float), requires_grad=True)
    x_skip = torch.tensor(np.asarray(x, dtype=float), requires_grad=True)

    def block(through_branch, through_skip):
        return torch.relu(t["w2"] @ torch.relu(t["w1"] @ through_branch) + through_skip)

    y = block(x_all, x_all)
    y.backward(t["g"])
    block(x_branch, x_skip).backward(t["g"])
    return {"output": y.detach().numpy(), "grad_input": x_all.grad.numpy(),
            "grad_through_residual": x_branch.grad.numpy(), "grad_through_skip": x_skip.grad.numpy()}


def assert_matches_torch(v):
    want = torch_oracle(*(v.params[k] for k in ("x", "weights1", "weights2", "grad_output")))
    for name, value in want.items():
        assert v.field(name).shape == list(value.shape), name
        np.testing.assert_allclose(v.answers[name], value, rtol=1e-12, atol=1e-12,
                                   err_msg=f"{name}, seed {v.seed}")


OPTION_SETS = [({}, 200), ({"dim": 2}, 60), ({"dim": 3}, 60), ({"dim": 4, "hidden": 3}, 40),
               ({"dim": 2, "hidden": 4}, 40)]


@pytest.mark.parametrize("options, seeds", OPTION_SETS)
def test_seed_sweep_against_torch(options, seeds):
    for v in sweep(TYPE, options, seeds):
        assert_matches_torch(v)


@pytest.mark.parametrize("pinned", [
    {"x": [1, -2, 3]}, {"weights2": [[1, -1], [2, 1]]}, {"grad_output": [2, -1]},
    {"x": [0.5, -1.5], "weights1": [[1.5, 2], [-1, 0.5]], "weights2": [[1, -2], [0.5, 1]],
     "grad_output": [1, 2]},  # as given, pre-activation -1.5 + ... and all
])
def test_pinned_against_torch(pinned):
    for seed in range(10):
        assert_matches_torch(make_variant(TYPE, seed, pinned))


@pytest.mark.parametrize("options, seeds", OPTION_SETS)
def test_draws_are_hand_friendly_and_fair(options, seeds):
    for v in sweep(TYPE, options, seeds):
        p, values = v.params, run(GRAPH, v.params)
        x, w1, w2, g = (np.asarray(p[k], dtype=float) for k in
                        ("x", "weights1", "weights2", "grad_output"))
        assert np.all(x == np.round(x)) and np.abs(x).max() <= 3
        assert np.all(np.abs(np.concatenate([w1.ravel(), w2.ravel()])) <= 2)
        for w in (w1, w2):  # every unit connected
            assert np.all(np.any(w != 0, axis=0)) and np.all(np.any(w != 0, axis=1))
        assert np.all(g == np.round(g)) and np.all(g != 0) and np.abs(g).max() <= 3
        for pre in (values["hidden_pre"], values["preactivation"]):
            assert np.all(np.abs(pre) >= 1), "no pre-activation at or near 0 (ReLU'(0))"
            blocked = int(np.sum(pre < 0))
            assert 1 <= blocked <= len(pre) // 2, "some units blocked, at least half pass"
        assert np.all(values["grad_through_residual"] != 0) and np.all(values["grad_input"] != 0)
        assert [m.name for m in v.mistakes] == SLIPS, v.seed
        assert free_share(GRAPH, p, v.fields, values) <= MAX_CONSTANT_SHARE


def test_draws_vary_and_sizes_follow_options():
    draws = sweep(TYPE, {}, 200)
    assert len({str(v.params) for v in draws}) == 200
    assert {len(v.params["x"]) for v in draws} == {2, 3}
    assert all(np.shape(v.params["weights1"]) == (len(v.params["x"]),) * 2 for v in draws)
    v = make_variant(TYPE, 1, options={"dim": 4, "hidden": 3})
    assert np.shape(v.params["weights1"]) == (3, 4) and np.shape(v.params["weights2"]) == (4, 3)


@pytest.mark.parametrize("params, answers", [
    # W2 = 0: F vanishes, y = ReLU(x), and only the skip path carries a gradient
    ({"x": [1, -2], "weights1": [[1, 0], [0, 1]], "weights2": [[0, 0], [0, 0]],
      "grad_output": [3, 4]},
     {"output": [1, 0], "grad_through_residual": [0, 0], "grad_through_skip": [3, 0],
      "grad_input": [3, 0]}),
    # z = W1 x = (3, -1), r = (3, 0), F = (3, -3), u = (4, -1), y = (4, 0);
    # delta = (2, 0), W2^T delta = (2, 4), masked (2, 0), W1^T (2, 0) = (2, 2)
    ({"x": [1, 2], "weights1": [[1, 1], [1, -1]], "weights2": [[1, 2], [-1, 0]],
      "grad_output": [2, 5]},
     {"output": [4, 0], "grad_through_skip": [2, 0], "grad_through_residual": [2, 2],
      "grad_input": [4, 2]}),
    # an identity branch with every unit passing: y = 2x, dL/dx = 2g, split evenly
    ({"x": [1, 2, 3], "weights1": np.eye(3).tolist(), "weights2": np.eye(3).tolist(),
      "grad_output": [1, -1, 2]},
     {"output": [2, 4, 6], "grad_through_skip": [1, -1, 2],
      "grad_through_residual": [1, -1, 2], "grad_input": [2, -2, 4]}),
])
def test_hand_checked(params, answers):
    v = make_variant(TYPE, 0, params)
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value, rtol=0, atol=1e-12)


def test_mistakes_reproduce_their_errors():
    # z = (3, -1): the second hidden unit is blocked; u = (4, -1): the second output too
    v = make_variant(TYPE, 0, {"x": [1, 2], "weights1": [[1, 1], [1, -1]],
                               "weights2": [[1, 2], [-1, 0]], "grad_output": [2, 5]})
    m = {x.name: x.answers for x in v.mistakes}
    assert m["dropped_skip"] == {"grad_input": [2, 2]}
    # no outer mask: delta = (2, 5), W2^T delta = (-3, 4), masked (-3, 0), W1^T -> (-3, -3)
    assert m["forgot_outer_mask"] == {"grad_input": [-1, 2], "grad_through_residual": [-3, -3],
                                      "grad_through_skip": [2, 5]}
    # no inner mask: W2^T delta = (2, 4) unmasked, W1^T (2, 4) = (6, -2)
    assert m["forgot_inner_mask"] == {"grad_input": [8, -2], "grad_through_residual": [6, -2]}


def test_all_zero_parts_earn_no_carried_credit_for_their_sum():
    from deepdrill.grader.score import grade_question

    v = make_variant(TYPE, 4)
    zeros = {f.name: [0] * len(v.params["x"]) for f in v.fields}
    r = grade_question(v, zeros, 10)
    assert r.fields["grad_input"].score == 0 and r.carried == 0
    parts = {"grad_through_residual": [1, 2, 3][:len(v.params["x"])],
             "grad_through_skip": [2, 0, 1][:len(v.params["x"])]}
    total = (np.array(parts["grad_through_residual"]) + parts["grad_through_skip"]).tolist()
    r = grade_question(v, {**v.answers, **parts, "grad_input": total}, 10)
    assert r.fields["grad_input"].carried > 0  # the sum of the student's own parts


@pytest.mark.parametrize("pinned, words", [
    ({"x": [1, 2], "weights1": [[1, 2, 3]]}, r"weights1 must be an h x 2 matrix"),
    ({"x": [1, 2], "weights1": [[1, 2]], "weights2": [[1, 2]]}, "weights2 must be a 2 x 1"),
    ({"x": [1, 2], "grad_output": [1, 2, 3]}, "grad_output must be a list of 2 numbers"),
    ({"x": [[1, 2]]}, "x must be a list of 1 to 6 numbers"),
    ({"x": list(range(7))}, "1 to 6 numbers"),
    ({"x": "abc"}, "x must be made of finite numbers"),
    ({"weights1": [[1, 2], [3]]}, "weights1 must be made of finite numbers"),
    ({"x": [1, 2], "weights1": [[1, 0], [0, 1]], "weights2": [[1, 0], [0, 1]],
      "grad_output": [1e9, 1]}, "of a sheet's size"),
    ({"x": [-1, -2], "weights1": [[1, 0], [0, 1]], "weights2": [[1, 0], [0, 1]],
      "grad_output": [1, 1]}, "no gradient gets through the outer ReLU"),
    ({"bias": [1]}, "unknown parameter"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, pinned)


@pytest.mark.parametrize("options, words", [
    ({"dim": 5}, "option dim must be a whole number from 2 to 4"),
    ({"dim": 1}, "from 2 to 4"), ({"hidden": 1}, "option hidden"), ({"hidden": 2.5}, "whole"),
    ({"layers": 2}, "unknown option"),
])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def test_no_fair_draw_is_refused_with_a_message():
    # x = (-1, -1) and W2 = 0: u = x is blocked everywhere, whatever W1 and g are
    with pytest.raises(ParamError, match="pin fewer parameters"):
        make_variant(TYPE, 0, {"x": [-1, -1], "weights2": [[0, 0], [0, 0]]})


def test_derivation_once_per_shape():
    assert derivation(2, 2) is derivation(2, 2)
    d = derivation(3, 2)
    assert d["matrix"] == "M g + W_{1}^{T} M_{1} W_{2}^{T} M g"
    assert d["skip"] == "{\\delta}_1" and len(d["groups"]) == 2
    assert "b_{31} {\\delta}_3" in d["groups"][0]


def render(v, solutions):
    return render_document([Sheet("T", "C", [Question(1, 4, v)])], solutions=solutions)


@pytest.mark.parametrize("options", [{}, {"dim": 4, "hidden": 3}])
def test_templates_render_with_the_figure(options):
    v = make_variant(TYPE, 2, options=options)
    problem, solution = render(v, False), render(v, True)
    for text in (problem, solution):
        assert r"\usepackage{tikz}" in text and r"\begin{tikzpicture}" in text
        assert "identity (skip path)" in text
    assert "derived with sympy" in solution and "derived with sympy" not in problem
    assert r"\frac{\partial L}{\partial x} = M g + W_{1}^{T} M_{1} W_{2}^{T} M g" in solution


def test_worked_solution_shows_the_numbers():
    v = make_variant(TYPE, 0, {"x": [1, 2], "weights1": [[1, 1], [1, -1]],
                               "weights2": [[1, 2], [-1, 0]], "grad_output": [2, 5]})
    text = render(v, True)
    assert r"1\cdot 1 + 1\cdot 2 \\ 1\cdot 1 - 1\cdot 2" in text  # W1 x, row by row
    assert r"The output mask $[u_i > 0]$ is $\left(1,\ 0\right)$" in text
    assert r"\mathbf{\left(2,\ 0\right)}" in text  # through the skip path
