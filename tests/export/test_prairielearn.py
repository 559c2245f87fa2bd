"""The PrairieLearn questions: info.json as PrairieLearn's schema requires it, and the
generated server.py run as PrairieLearn runs it (generate, then grade with the data dict
in PrairieLearn's shapes), grading with deepdrill's own grader."""

from __future__ import annotations

import importlib.util
import json
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepdrill.cli import cli
from deepdrill.export.prairielearn import SLICE, _split
from deepdrill.generator.exercise import make_variant
from deepdrill.model.variant import Variant


@pytest.fixture(scope="module")
def course(examples: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pl")
    result = CliRunner().invoke(cli, ["export", "prairielearn", "--assignment",
                                      str(examples / "assignment.toml"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _questions(course: Path) -> list[Path]:
    return sorted(p.parent for p in course.glob("questions/deepdrill/*/*/info.json"))


def _server(folder: Path):
    spec = importlib.util.spec_from_file_location(f"pl_server_{folder.name}",
                                                  folder / "server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _data(seed: int) -> dict:
    return {"params": {}, "correct_answers": {}, "variant_seed": seed, "submitted_answers": {},
            "raw_submitted_answers": {}, "partial_scores": {}, "feedback": {},
            "format_errors": {}, "score": 0}


def _as_submitted(value):
    """What PrairieLearn's inputs hand to grade(): arrays wrapped by pl.to_json."""
    if isinstance(value, list):
        return {"_type": "ndarray", "_value": value, "_dtype": "float64"}
    return float(value)


def test_a_question_directory_per_question_with_a_valid_info_json(course, example_assignment):
    folders = _questions(course)
    assert [f.name for f in folders] == sorted(f"{q.label}_{q.type}"
                                               for q in example_assignment.questions)
    for f in folders:
        info = json.loads((f / "info.json").read_text())
        assert {"uuid", "type", "title", "topic"} <= set(info) and info["type"] == "v3"
        uuid.UUID(info["uuid"])
        assert (f / "question.html").is_file() and (f / "server.py").is_file()
    assert len({json.loads((f / "info.json").read_text())["uuid"] for f in folders}) == len(folders)


def test_exporting_again_keeps_each_questions_uuid(course, examples):
    before = {f.name: json.loads((f / "info.json").read_text())["uuid"] for f in _questions(course)}
    CliRunner().invoke(cli, ["export", "prairielearn", "--assignment",
                             str(examples / "assignment.toml"), "--out", str(course)])
    after = {f.name: json.loads((f / "info.json").read_text())["uuid"] for f in _questions(course)}
    assert before == after


@pytest.mark.parametrize("seed", [3, 12345])
def test_generate_draws_deepdrills_variant_and_right_answers_score_full(course, example_assignment,
                                                                       seed):
    for folder, q in zip(_questions(course), sorted(example_assignment.questions,
                                                     key=lambda q: f"{q.label}_{q.type}")):
        server = _server(folder)
        data = _data(seed)
        server.generate(data)
        json.dumps(data)  # everything PrairieLearn stores must be JSON
        stored = Variant.from_json(data["params"]["deepdrill"])
        assert stored == make_variant(q.type, seed, q.params, q.options, q.tolerances)
        names = [i["name"] for i in data["params"]["inputs"]]
        assert len(names) == len(set(names)) and set(names) == set(data["correct_answers"])
        data["submitted_answers"] = {k: _as_submitted(v) for k, v in data["correct_answers"].items()}
        server.grade(data)
        assert data["score"] == pytest.approx(1.0), (folder.name, data["feedback"])
        assert all(p["score"] == pytest.approx(1.0) for p in data["partial_scores"].values())


def test_a_named_mistake_loses_credit_and_is_named_in_the_feedback(course):
    folder = next(f for f in _questions(course) if f.name.endswith("conv2d_forward"))
    server = _server(folder)
    data = _data(99)
    server.generate(data)
    variant = Variant.from_json(data["params"]["deepdrill"])
    mistake = next(m for m in variant.mistakes if m.name == "flipped_kernel")
    wrong = dict(variant.answers, **mistake.answers)
    data["submitted_answers"] = {name: _as_submitted(value) for f in variant.fields
                                 for name, value in _split(f, wrong[f.name])}
    server.grade(data)
    assert data["score"] < 1
    assert mistake.feedback in data["feedback"]["output"]
    assert data["partial_scores"]["output"]["score"] < 1


def test_blank_and_bad_inputs_become_zero_credit_not_an_exception(course):
    folder = next(f for f in _questions(course) if f.name.endswith("batchnorm_forward"))
    server = _server(folder)
    data = _data(5)
    server.generate(data)
    data["submitted_answers"] = {name: "not a number" for name in data["correct_answers"]}
    server.grade(data)
    assert data["score"] == 0
    data["submitted_answers"] = {}
    server.grade(data)
    assert data["score"] == 0


def test_fields_beyond_two_dimensions_become_one_matrix_input_per_slice():
    v = make_variant("conv2d_forward", 1, options={"out_channels": 2})
    f = v.field("output")
    parts = _split(f, v.answers["output"])
    assert [name for name, _ in parts] == [f"output{SLICE}1", f"output{SLICE}2"]
    assert all(isinstance(value[0], list) for _, value in parts)
