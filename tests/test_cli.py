"""The deepdrill command as users call it."""

import json

import pytest
from click.testing import CliRunner

from deepdrill.cli import cli

CONV = '{"input": [[1,2,0],[0,1,3],[2,1,1]], "kernel": [[1,-1],[0,2]]}'


@pytest.fixture
def run():
    runner = CliRunner()

    def invoke(*args, ok=True):
        result = runner.invoke(cli, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) is ok, result.output
        return result
    return invoke


def test_list(run):
    out = run("list").output
    assert "conv2d_forward" in out
    data = json.loads(run("list", "--json").output)
    assert {"id", "title", "summary", "params", "options"} <= set(data[0])


def test_solve_json_gives_the_issue_example(run):
    data = json.loads(run("solve", "conv2d_forward", "--params", CONV, "--json").output)
    assert data["answers"] == {"output": [[1, 8], [1, 0]]}
    assert data["params"]["stride"] == 1 and data["type"] == "conv2d_forward"


def test_solve_reads_params_from_a_file(run, tmp_path):
    (tmp_path / "p.json").write_text(CONV)
    data = json.loads(run("solve", "conv2d_forward", "--params", f"@{tmp_path / 'p.json'}",
                          "--json").output)
    assert data["answers"]["output"] == [[1, 8], [1, 0]]


def test_solve_tex_is_a_whole_document(run):
    tex = run("solve", "conv2d_forward", "--params", CONV, "--tex").output
    assert r"\documentclass" in tex.split("\n", 3)[1] and tex.rstrip().endswith(r"\end{document}")
    assert r"1\cdot 1 + 2\cdot (-1) + 0\cdot 0 + 1\cdot 2 = \mathbf{1}" in tex


def test_check_json(run):
    out = run("check", "conv2d_forward", "--params", CONV, "--answers",
              '{"output": [[1, 8], [1, 1]]}', "--json").output
    data = json.loads(out)
    assert data["score"] == 0.75 and data["max_score"] == 1
    f = data["fields"]["output"]
    assert set(f) == {"correct", "score", "max_score", "expected", "given", "feedback",
                      "mistake", "carried_forward", "consistent_with"}
    assert f["expected"] == [[1, 8], [1, 0]] and f["given"] == [[1, 8], [1, 1]]


def test_check_json_names_the_mistake_and_carried_forward_credit(run):
    flipped = json.loads(run("check", "conv2d_forward", "--params", CONV, "--answers",
                             '{"output": [[3, 6], [-1, 2]]}', "--json").output)
    assert flipped["fields"]["output"]["mistake"] == "flipped_kernel"
    bn = '{"x": [1, 3, 5, 7], "gamma": 1, "beta": 0}'
    own = json.loads(run("check", "batchnorm_forward", "--params", bn, "--answers",
                         '{"mean": 5, "variance": 6}', "--json").output)
    assert own["score"] == 1 and own["carried_forward"] == 1
    assert own["fields"]["variance"]["consistent_with"] == {"mean": 5.0}
    half = json.loads(run("check", "batchnorm_forward", "--params", bn, "--answers",
                          '{"mean": 5, "variance": 6}', "--carry-forward", "0.5",
                          "--json").output)
    assert half["score"] == 0.5
    run("check", "batchnorm_forward", "--params", bn, "--answers", "{}", "--carry-forward",
        "lots", ok=False)


@pytest.mark.parametrize("args, words", [
    (("solve", "nope"), "unknown exercise type 'nope'"),
    (("solve", "conv2d_forward", "--params", "{bad"), "--params is not valid JSON"),
    (("solve", "conv2d_forward", "--params", "[1]"), "--params must be a JSON object"),
    (("solve", "conv2d_forward", "--params", '{"kernel": [[1,2],[3,4]], "input": [[1]]}'),
     "does not fit"),
    (("build", "{examples}/assignment.toml"), "give either --roster CSV or --variants N"),
])
def test_errors_are_one_clear_line(run, args, words, examples):
    result = run(*(a.replace("{examples}", str(examples)) for a in args), ok=False)
    assert result.exit_code == 2
    assert words in result.output
    assert "Traceback" not in result.output


def test_build_then_grade_without_pdf(run, tmp_path, examples):
    EXAMPLES = examples
    out = tmp_path / "out"
    run("build", str(EXAMPLES / "assignment.toml"), "--roster", str(EXAMPLES / "roster.csv"),
        "--out", str(out), "--no-pdf", "-q")
    assert (out / "key.json").exists() and not (out / "problems.pdf").exists()
    result = run("grade", "--key", str(out / "key.json"), str(EXAMPLES / "submissions"),
                 "--out", str(tmp_path / "grades"))
    assert "question" in result.output and "unreadable" in result.output
    assert (tmp_path / "grades" / "grades.csv").exists()


def test_variants_without_roster(run, tmp_path, examples):
    EXAMPLES = examples
    run("build", str(EXAMPLES / "assignment.toml"), "--variants", "3", "--out",
        str(tmp_path / "v"), "--no-pdf", "-q")
    manifest = json.loads((tmp_path / "v" / "manifest.json").read_text())
    assert [s["id"] for s in manifest["students"]] == ["v001", "v002", "v003"]


def test_schema_ships_and_validates_a_blank_submission(run, example_build):
    import jsonschema
    schema = json.loads(run("schema").output)
    for sub in (example_build / "students").glob("*/submission.json"):
        jsonschema.validate(json.loads(sub.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"student_id": "x", "answers": {"q1": {"output": "abc"}}}, schema)
    jsonschema.validate({"student_id": "x", "answers": {"q1": {"output": [["1/4", 2.5e-3]]}}},
                        schema)


def test_grading_imports_nothing_it_does_not_use(example_build, examples, tmp_path):
    """`deepdrill grade` starts fast: no template engine, schema validator, LMS formats or
    sympy (the example's types derive nothing when grading). Each cost a tenth of a second
    or more of every grading run."""
    import os
    import subprocess
    import sys

    code = f"""
import sys
from deepdrill.cli import main
sys.argv = ["deepdrill", "grade", "--key", {str(example_build / "key.json")!r},
            "--out", {str(tmp_path / "g")!r}, {str(examples / "submissions")!r}]
main()
"""
    # -X importtime lists every module imported, on standard error (the command ends its
    # process itself: nothing can run after it)
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    run = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True,
                         text=True, check=True, env=buffered)
    imported = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()
                if line.startswith("import time:")}
    assert "deepdrill.grader.score" in imported  # (the listing is what it seems)
    heavy = ("sympy", "jinja2", "jsonschema", "lxml", "pylatex", "pikepdf")
    assert not [m for m in heavy if m in imported]
    # its output (to a pipe: buffered) flushed before the command ends its process
    assert run.stdout.rstrip().endswith(f"wrote {tmp_path / 'g' / 'grades.csv'} and "
                                        f"{tmp_path / 'g' / 'report.json'}")
    assert (tmp_path / "g" / "grades.csv").exists()
