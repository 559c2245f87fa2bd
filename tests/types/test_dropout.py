"""dropout against torch: the key from torch ops (x * m / p, p x), torch's own F.dropout on
the masks it draws (inverted, train) and in evaluation mode, and its expected value in one
statistical test; the slips alone and in pairs; the draws; the refusals; the templates."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from deepdrill.generator.exercise import get, make_variant
from deepdrill.generator.render import Question, Sheet, render_document
from deepdrill.generator.types.dropout import DROPPED, MIN_SIZE, STEPS, VALUE_BOUND
from deepdrill.grader.score import grade_question
from sweeps import sweep

from deepdrill.errors import ParamError

TYPE = "dropout"
OPTION_SETS = [({}, 250), ({"batch": 3}, 200), ({"phase": "test"}, 60),
               ({"scheme": "standard", "phase": "train"}, 60),
               ({"scheme": "inverted", "phase": "train", "units": 8}, 60),
               ({"scheme": "standard", "phase": "test", "batch": 2}, 60)]


def torch_oracle(x, mask, keep_prob, scheme, phase):
    """The layer's output from torch: torch ops for a given mask; torch's own dropout in
    evaluation mode for inverted dropout at test time."""
    xt = torch.tensor(np.asarray(x, dtype=float), dtype=torch.float64)
    mt = torch.tensor(np.asarray(mask, dtype=float), dtype=torch.float64)
    if scheme == "inverted":
        if phase == "train":
            return (xt * mt / keep_prob).numpy()
        return F.dropout(xt, p=1 - keep_prob, training=False).numpy()
    return (xt * mt).numpy() if phase == "train" else (xt * keep_prob).numpy()


@pytest.mark.parametrize("options, seeds", OPTION_SETS)
def test_seed_sweep_against_torch(options, seeds):
    for v in sweep(TYPE, options, seeds):
        p = v.params
        want = torch_oracle(p["activations"], p["mask"], p["keep_prob"], p["scheme"],
                            p["phase"])
        assert v.field("output").shape == list(want.shape)
        np.testing.assert_allclose(v.answers["output"], want, rtol=1e-12, atol=1e-12,
                                   err_msg=f"seed {v.seed}")
        for name, value in options.items():
            if name in ("scheme", "phase"):
                assert p[name] == value


def test_inverted_training_is_torchs_dropout_on_its_own_masks():
    """torch.nn.functional.dropout draws its own mask: read it back (x has no zeros) and
    the exercise's steps on that mask give torch's output exactly."""
    ex = get(TYPE)
    torch.manual_seed(0)
    for v in sweep(TYPE, {"scheme": "inverted", "phase": "train", "units": 8}, 60):
        p = v.params
        x = torch.tensor(p["activations"], dtype=torch.float64)
        y = F.dropout(x, p=1 - p["keep_prob"], training=True)
        mask = (y != 0).to(torch.int64).tolist()
        ours = ex.values({**p, "mask": mask})["output"]
        np.testing.assert_allclose(ours, y.numpy(), rtol=1e-12, atol=1e-15)


def test_expected_values_statistically():
    """PyTorch's dropout keeps E[y] = x in training and is the identity in evaluation; the
    standard scheme's test output p x is the mean of its training outputs x * m."""
    gen = torch.Generator().manual_seed(1234)
    x = torch.tensor([0.4, -1.2, 2.5, 0.8], dtype=torch.float64)
    samples = 200_000
    for keep in STEPS:
        torch.manual_seed(int(keep * 100))
        batch = x.repeat(samples, 1)
        mean = F.dropout(batch, p=1 - keep, training=True).mean(dim=0)
        spread = x.abs() * np.sqrt((1 - keep) / keep / samples)  # std error of the mean
        assert torch.all((mean - x).abs() <= 5 * spread), keep
        assert torch.equal(F.dropout(x, p=1 - keep, training=False), x)
        masks = torch.bernoulli(torch.full((samples, 4), keep, dtype=torch.float64),
                                generator=gen)
        standard_test = make_variant(TYPE, 0, {"activations": x.tolist(), "mask": [1, 0, 1, 1],
                                               "keep_prob": keep, "scheme": "standard",
                                               "phase": "test"}).answers["output"]
        spread = x.abs() * np.sqrt(keep * (1 - keep) / samples)
        assert torch.all(((x * masks).mean(dim=0) - torch.tensor(standard_test)).abs()
                         <= 5 * spread), keep


@pytest.mark.parametrize("scheme, phase, keep, output", [
    ("inverted", "train", 0.5, [2.4, 0, -1, 0.2]),
    ("inverted", "train", 0.8, [1.5, 0, -0.625, 0.125]),
    ("inverted", "test", 0.5, [1.2, 0.7, -0.5, 0.1]),
    ("standard", "train", 0.5, [1.2, 0, -0.5, 0.1]),
    ("standard", "test", 0.8, [0.96, 0.56, -0.4, 0.08]),
    ("standard", "test", 0.25, [0.3, 0.175, -0.125, 0.025]),
])
def test_hand_checked(scheme, phase, keep, output):
    v = make_variant(TYPE, 0, {"activations": [1.2, 0.7, -0.5, 0.1], "mask": [1, 0, 1, 1],
                               "keep_prob": keep, "scheme": scheme, "phase": phase})
    np.testing.assert_allclose(v.answers["output"], output, atol=1e-12)


X, M = [1.2, 0.7, -0.5, 0.1], [1, 0, 1, 1]


@pytest.mark.parametrize("scheme, phase, keep, mistakes", [
    ("inverted", "train", 0.8, {"wrong_phase": [1.2, 0, -0.5, 0.1],
                                "scaled_by_p": [0.96, 0, -0.4, 0.08],
                                "drop_probability": [6, 0, -2.5, 0.5]}),
    ("inverted", "test", 0.8, {"wrong_phase": [1.5, 0.875, -0.625, 0.125],
                               "mask_at_test": [1.2, 0, -0.5, 0.1],
                               "wrong_scheme": [0.96, 0.56, -0.4, 0.08]}),
    ("standard", "train", 0.8, {"wrong_phase": [0.96, 0, -0.4, 0.08],
                                "wrong_scheme": [1.5, 0, -0.625, 0.125]}),
    ("standard", "test", 0.8, {"wrong_phase": [1.2, 0.7, -0.5, 0.1],
                               "divided_by_p": [1.5, 0.875, -0.625, 0.125],
                               "drop_probability": [0.24, 0.14, -0.1, 0.02],
                               "mask_at_test": [0.96, 0, -0.4, 0.08]}),
])
def test_mistakes_by_hand(scheme, phase, keep, mistakes):
    v = make_variant(TYPE, 0, {"activations": X, "mask": M, "keep_prob": keep,
                               "scheme": scheme, "phase": phase})
    found = {m.name: m.answers["output"] for m in v.mistakes}
    assert set(found) == set(mistakes)
    for name, want in mistakes.items():
        np.testing.assert_allclose(found[name], want, atol=1e-12, err_msg=name)


def test_slips_combine_in_pairs():
    """Every pair swaps different steps: a student scaling by p at test time made two."""
    ex = get(TYPE)
    params = {"activations": X, "mask": M, "keep_prob": 0.8, "scheme": "inverted",
              "phase": "test"}
    by = {s.name: s for s in ex.slips(params)}
    for a, b in itertools.combinations(by.values(), 2):
        assert not set(a.swaps) & set(b.swaps)
    both = ex.values(params, [by["wrong_scheme"], by["mask_at_test"]])["output"]
    np.testing.assert_allclose(both, np.multiply(X, M) * 0.8)
    both = ex.values(params, [by["wrong_phase"], by["scaled_by_p"]])["output"]
    np.testing.assert_allclose(both, np.multiply(X, 0.8))
    both = ex.values(params, [by["wrong_phase"], by["mask_at_test"]])["output"]
    np.testing.assert_allclose(both, np.multiply(X, M) / 0.8)


def test_half_keep_probability_has_no_drop_probability_mistake():
    v = make_variant(TYPE, 0, {"activations": X, "mask": M, "keep_prob": 0.5})
    assert "drop_probability" not in {m.name for m in v.mistakes}  # 1 - 0.5 = 0.5


@pytest.mark.parametrize("options, seeds", OPTION_SETS)
def test_draws_are_hand_friendly(options, seeds):
    for v in sweep(TYPE, options, seeds):
        p = v.params
        x, m = np.asarray(p["activations"]), np.atleast_2d(p["mask"])
        step = STEPS[p["keep_prob"]]
        assert np.allclose(x / step, np.round(x / step)), (v.seed, x)
        assert np.all(np.abs(x) >= MIN_SIZE) and np.all(np.abs(x) <= VALUE_BOUND)
        assert np.all((m == 0).sum(axis=1) >= 1) and np.all(2 * (m == 0).sum(axis=1) <= m.shape[1])
        y = np.asarray(v.answers["output"], dtype=float)
        live = np.asarray(p["mask"]) == 1 if p["phase"] == "train" else np.ones(y.shape, bool)
        assert not np.any(np.isclose(y[live], 0) | np.isclose(y[live], 1)), v.seed
        assert np.all(np.round(y[live] * 1000, 6) == np.round(y[live] * 1000)), y  # short
    assert len({str(v.params) for v in sweep(TYPE, *OPTION_SETS[0])}) > 200


@pytest.mark.parametrize("options", [{}, {"batch": 3}])
def test_constant_answers_earn_at_most_a_dropped_units_share(options):
    for v in sweep(TYPE, options, 60):
        for c in (0, 1):
            answers = {"output": np.full(np.shape(v.answers["output"]), c).tolist()}
            score = grade_question(v, answers, 10).score / 10
            assert score <= DROPPED / (1 + DROPPED) + 1e-9, (v.seed, c, score)


def test_options_draw_what_they_say():
    v = make_variant(TYPE, 5, options={"batch": 4, "units": 3})
    assert np.shape(v.params["activations"]) == (4, 3) == np.shape(v.params["mask"])
    kinds = {(v.params["scheme"], v.params["phase"]) for v in sweep(TYPE, {}, 250)}
    assert kinds == {(s, ph) for s in ("inverted", "standard") for ph in ("train", "test")}


@pytest.mark.parametrize("pinned", [{"activations": [0.5, -1, 2]}, {"mask": [[1, 0], [0, 1]]},
                                    {"keep_prob": 0.9}, {"keep_prob": 1}])
def test_pinned_params_are_kept(pinned):
    v = make_variant(TYPE, 2, pinned)
    for k, value in pinned.items():
        assert v.params[k] == value
    assert np.shape(v.params["activations"]) == np.shape(v.params["mask"])


@pytest.mark.parametrize("params, words", [
    ({"activations": [1, 2], "mask": [1, 0, 1], "keep_prob": 0.5}, "shaped like"),
    ({"activations": [1, 2], "mask": [1, 0.5], "keep_prob": 0.5}, "0s and 1s"),
    ({"activations": [1, 2], "mask": [0, 0], "keep_prob": 0.5}, "all zeros"),
    ({"activations": [1, 2], "mask": [1, 0], "keep_prob": 0}, "greater than 0"),
    ({"activations": [1, 2], "mask": [1, 0], "keep_prob": 1.5}, "at most 1"),
    ({"activations": [1, 2], "mask": [1, 0], "keep_prob": 0.5, "scheme": "x"}, "scheme must"),
    ({"activations": [1, 2], "mask": [1, 0], "keep_prob": 0.5, "phase": "eval"}, "phase must"),
    ({"activations": [1], "mask": [1], "keep_prob": 0.5}, "2 to 8 numbers"),
    ({"activations": [1e9, 2], "mask": [1, 0], "keep_prob": 0.5}, "sheet's size"),
    ({"activations": "abc", "mask": [1, 0], "keep_prob": 0.5}, "finite numbers"),
])
def test_bad_params(params, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, params)


@pytest.mark.parametrize("options, words", [({"units": 9}, "option units"),
                                            ({"batch": 5}, "option batch"),
                                            ({"scheme": "dropconnect"}, "option scheme"),
                                            ({"phase": "eval"}, "option phase"),
                                            ({"size": 3}, "unknown option")])
def test_bad_options(options, words):
    with pytest.raises(ParamError, match=words):
        make_variant(TYPE, 0, options=options)


def test_templates_render():
    v = make_variant(TYPE, 0, {"activations": X, "mask": M, "keep_prob": 0.8,
                               "scheme": "inverted", "phase": "train"})
    sheet = Sheet("T", "C", [Question(1, 3, v)])
    problem = render_document([sheet], solutions=False)
    assert r"\emph{inverted} dropout" in problem and "dropped with probability 0.2" in problem
    assert r"m = \left(1,\ 0,\ 1,\ 1\right)" in problem and "E}[y_i]" not in problem
    solution = render_document([sheet], solutions=True)
    assert r"x \odot m = \left(1.2,\ 0,\ -0.5,\ 0.1\right)" in solution
    assert r"1/p = 1.25" in solution
    assert r"\mathbf{\left(1.5,\ 0,\ -0.625,\ 0.125\right)}" in solution
    test = make_variant(TYPE, 0, {"activations": [[1, 2], [3, 4]], "mask": [[1, 0], [0, 1]],
                                  "keep_prob": 0.5, "scheme": "standard", "phase": "test"})
    solution = render_document([Sheet("T", "C", [Question(1, 3, test)])], solutions=True)
    assert r"y = 0.5\, x = \mathbf{\begin{bmatrix}0.5 & 1 \\ 1.5 & 2\end{bmatrix}}" in solution
    assert "the mask of the training step is not used" in solution
