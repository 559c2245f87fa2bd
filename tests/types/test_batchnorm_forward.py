"""batchnorm_forward against torch.nn.functional.batch_norm (training mode, float64)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepdrill.errors import ParamError
from deepdrill.generator.exercise import make_variant
from deepdrill.generator.render import Question, Sheet, render_document

SEEDS = range(250)


def torch_oracle(x, gamma, beta, eps):
    t = torch.tensor(np.asarray(x, dtype=float).reshape(len(x), -1), dtype=torch.float64)
    d = t.shape[1]
    g = torch.tensor(np.broadcast_to(np.asarray(gamma, dtype=float), (d,)).copy())
    b = torch.tensor(np.broadcast_to(np.asarray(beta, dtype=float), (d,)).copy())
    # torch refuses eps = 0 in training mode; 1e-15 changes nothing at these tolerances
    out = F.batch_norm(t, None, None, weight=g, bias=b, training=True, eps=max(eps, 1e-15))
    mean = t.mean(0)
    var = t.var(0, unbiased=False)
    xhat = (t - mean) / torch.sqrt(var + eps)
    squeeze = np.ndim(x) == 1
    pick = (lambda a: a.numpy().reshape(-1)) if squeeze else (lambda a: a.numpy())
    return {"mean": pick(mean)[0] if squeeze else pick(mean),
            "variance": pick(var)[0] if squeeze else pick(var),
            "normalized": pick(xhat), "output": pick(out)}


@pytest.mark.parametrize("options, pinned", [
    ({}, {}), ({"features": 3}, {}), ({"n": 4}, {}), ({"n": 6, "features": 2}, {}),
    ({}, {"eps": 0.5}), ({"features": 2}, {"eps": 1e-5}),
])
def test_seed_sweep_against_torch(options, pinned):
    for seed in SEEDS:
        v = make_variant("batchnorm_forward", seed, pinned, options)
        p = v.params
        want = torch_oracle(p["x"], p["gamma"], p["beta"], float(p["eps"]))
        for name in ("mean", "variance", "normalized", "output"):
            np.testing.assert_allclose(v.answers[name], want[name], rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name}, seed {seed}")


def test_draws_are_hand_friendly():
    for seed in SEEDS:
        v = make_variant("batchnorm_forward", seed)
        std = np.sqrt(v.answers["variance"])
        assert std > 0 and (2 * std).is_integer(), "standard deviation should be exact"
        assert len(set(v.params["x"])) >= 3
        assert v == make_variant("batchnorm_forward", seed)


@pytest.mark.parametrize("x, gamma, beta, answers", [
    ([1, 2, 3, 6], 1, 0, {"mean": 3, "variance": 3.5}),
    ([2, 4, 4, 4, 5, 5, 7, 9], 2, 1, {"mean": 5, "variance": 4,
                                      "normalized": [-1.5, -.5, -.5, -.5, 0, 0, 1, 2],
                                      "output": [-2, 0, 0, 0, 1, 1, 3, 5]}),
    ([[0, 1], [2, 3]], [1, 2], [0, 1], {"mean": [1, 2], "variance": [1, 1],
                                        "output": [[-1, -1], [1, 3]]}),
])
def test_hand_checked(x, gamma, beta, answers):
    v = make_variant("batchnorm_forward", 0, {"x": x, "gamma": gamma, "beta": beta})
    for name, value in answers.items():
        np.testing.assert_allclose(v.answers[name], value)


def test_mistakes():
    v = make_variant("batchnorm_forward", 0, {"x": [2, 4, 4, 4, 5, 5, 7, 9], "gamma": 2, "beta": 1})
    by = {m.name: m.answers for m in v.mistakes}
    assert by["sample_variance"]["variance"] == pytest.approx(32 / 7)
    np.testing.assert_allclose(by["divided_by_variance"]["normalized"],
                               np.array([-3, -1, -1, -1, 0, 0, 2, 4]) / 4)
    np.testing.assert_allclose(by["affine_before_normalising"]["output"],
                               [-1.5, -.5, -.5, -.5, 0, 0, 1, 2])


@pytest.mark.parametrize("pinned, words", [
    ({"x": [1]}, "at least 2"), ({"x": [1, 1, 1]}, "zero variance"),
    ({"x": [[1, 2], [3, 4]], "gamma": [1, 2, 3]}, "one value per feature"),
    ({"eps": -1}, "eps must be at least 0"),
])
def test_bad_params(pinned, words):
    with pytest.raises(ParamError, match=words):
        make_variant("batchnorm_forward", 0, pinned)


def test_unsupported_size_is_a_clear_error():
    with pytest.raises(ParamError, match="between 4 and 6"):
        make_variant("batchnorm_forward", 0, options={"n": 9})


@pytest.mark.parametrize("options", [{}, {"features": 2}])
def test_templates_render(options):
    v = make_variant("batchnorm_forward", 2, options=options)
    sheet = Sheet("T", "C", [Question(1, 4, v)])
    solution = render_document([sheet], solutions=True)
    assert "Mean:" in solution and r"\toprule" in solution
    assert "Mean:" not in render_document([sheet], solutions=False)
