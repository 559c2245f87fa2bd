"""softmax against torch.softmax, on hundreds of random variants and hand-checked cases."""

import math

import numpy as np
import pytest
import torch

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, render_document

SEEDS = range(300)


@pytest.mark.parametrize("options", [{}, {"batch": 3}, {"classes": 5}])
def test_seed_sweep_against_torch(options):
    for seed in SEEDS:
        v = make_variant("softmax", seed, options=options)
        z = torch.tensor(v.params["logits"], dtype=torch.float64)
        np.testing.assert_allclose(v.answers["probabilities"], torch.softmax(z, -1).numpy(),
                                   rtol=1e-12)
        assert np.shape(v.answers["probabilities"]) == tuple(z.shape)


def test_draws_are_hand_friendly_and_deterministic():
    for seed in SEEDS:
        v = make_variant("softmax", seed)
        z = np.asarray(v.params["logits"])
        assert np.all(z * 10 == np.round(z * 10)) and np.abs(z).max() <= 3
        top = np.sort(z)
        assert top[-1] > top[-2], "tie for the largest logit"
        assert v == make_variant("softmax", seed)


@pytest.mark.parametrize("logits, probs", [
    ([0, 0], [0.5, 0.5]),
    ([math.log(1), math.log(3)], [0.25, 0.75]),
    ([[0, math.log(2), math.log(5)]], [[0.125, 0.25, 0.625]]),
])
def test_hand_checked(logits, probs):
    v = make_variant("softmax", 0, {"logits": logits})
    np.testing.assert_allclose(v.answers["probabilities"], probs)


def test_mistakes():
    v = make_variant("softmax", 0, {"logits": [1, 2, 1]})
    by = {m.name: m.answers["probabilities"] for m in v.mistakes}
    np.testing.assert_allclose(by["ratio_of_logits"], [0.25, 0.5, 0.25])
    np.testing.assert_allclose(by["log_softmax"],
                               torch.log_softmax(torch.tensor([1., 2, 1], dtype=torch.float64),
                                                 -1).numpy())
    assert "ratio_of_logits" not in {m.name for m in make_variant("softmax", 0, {"logits": [1, -1]}).mistakes}


@pytest.mark.parametrize("logits", [[1], [[1, 2], [3]], [float("nan"), 1], "x", [1, 100]])
def test_bad_logits(logits):
    with pytest.raises(ParamError):
        make_variant("softmax", 0, {"logits": logits})


@pytest.mark.parametrize("options", [{}, {"batch": 2}])
def test_templates_render(options):
    v = make_variant("softmax", 4, options=options)
    sheet = Sheet("T", "C", [Question(1, 2, v)])
    assert "Exponentials" not in render_document([sheet], solutions=False)
    solution = render_document([sheet], solutions=True)
    assert "Exponentials" in solution and r"\mathbf{" in solution
