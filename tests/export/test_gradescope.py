"""The Gradescope autograder zip: its layout, its scripts, and its run_autograder grading
uploads in a folder laid out as Gradescope lays out /autograder, checked against the
results.json specification (Gradescope's autograder docs, digest section 1.3)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from deepdrill.cli import cli
from deepdrill.export import autograder
from deepdrill.grader.batch import load_key

FORMATS = {"text", "html", "simple_format", "md", "ansi"}
VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}
TOP_KEYS = {"score", "execution_time", "output", "output_format", "test_output_format",
            "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
            "leaderboard"}
TEST_KEYS = {"score", "max_score", "status", "name", "name_format", "number", "output",
             "output_format", "tags", "visibility", "extra_data"}
MOODLE_ROSTER = ("First name,Last name,ID number,Email address\n"
                 "Ada,Lovelace,s001,Ada@Example.edu\nGrace,Hopper,s003,grace@example.edu\n")


def check_results(data: Any, max_score: float) -> None:
    """results.json as Gradescope's specification describes it; the question tests'
    points add up to the assignment's, whatever the outcome."""
    assert isinstance(data, dict) and set(data) <= TOP_KEYS
    assert isinstance(data["score"], (int, float)) and isinstance(data["tests"], list)
    for k in ("output_format", "test_output_format", "test_name_format"):
        assert data.get(k, "text") in FORMATS
    for k in ("visibility", "stdout_visibility"):
        assert data.get(k, "visible") in VISIBILITY
    assert isinstance(data.get("output", ""), str) and isinstance(data.get("extra_data", {}), dict)
    for t in data["tests"]:
        assert set(t) <= TEST_KEYS and isinstance(t["name"], str) and isinstance(t["number"], str)
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert 0 <= t["score"] <= t["max_score"] + 1e-9
        assert t.get("status", "passed") in {"passed", "failed"}
        assert t.get("visibility", "visible") in VISIBILITY
        assert isinstance(t.get("output", ""), str) and "\r" not in t.get("output", "")
        assert all(isinstance(tag, str) for tag in t.get("tags", []))
    assert sum(t["max_score"] for t in data["tests"]) == pytest.approx(max_score)
    assert data["score"] == pytest.approx(sum(t["score"] for t in data["tests"]), abs=1e-3)
    json.dumps(data, allow_nan=False)


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory, example_build) -> Path:
    out = tmp_path_factory.mktemp("gs") / "autograder.zip"
    roster = out.parent / "moodle.csv"
    roster.write_text(MOODLE_ROSTER, encoding="utf-8")
    result = CliRunner().invoke(cli, ["export", "gradescope", "--key",
                                      str(example_build / "key.json"), "--out", str(out),
                                      "--roster", str(roster)])
    assert result.exit_code == 0, result.output
    assert "2 of 6 student(s) recognised by their email" in result.output
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory, zip_path) -> Path:
    """The zip's wheel installed by pip (as setup.sh does, without the dependencies, which
    this environment has)."""
    target = tmp_path_factory.mktemp("site")
    wheel = tmp_path_factory.mktemp("wheel")
    with zipfile.ZipFile(zip_path) as z:
        name = next(n for n in z.namelist() if n.endswith(".whl"))
        z.extract(name, wheel)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                    "--target", str(target), str(wheel / name)], check=True, capture_output=True)
    return target


@pytest.fixture
def max_score(example_build) -> float:
    return load_key(example_build / "key.json").max_score


def lay_out(root: Path, zip_path: Path, files: dict[str, bytes],
            users: list[dict[str, Any]] | None = None) -> Path:
    """/autograder as Gradescope prepares it before run_autograder."""
    (root / "source").mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    (root / "submission").mkdir()
    for name, data in files.items():
        (root / "submission" / name).write_bytes(data)
    (root / "results").mkdir()
    meta = {"id": 1, "created_at": "2026-03-02T14:05:09-08:00", "submission_method": "upload",
            "assignment": {"title": "PS3", "total_points": "50.0"}, "previous_submissions": [],
            "users": users if users is not None else []}
    (root / "submission_metadata.json").write_text(json.dumps(meta))
    return root


def upload(examples: Path, name: str, **changes: Any) -> bytes:
    data = json.loads((examples / "submissions" / f"{name}.json").read_text(encoding="utf-8"))
    data.update(changes)
    return json.dumps(data).encode()


def run_script(root: Path, site: Path, python: str = sys.executable) -> dict[str, Any]:
    env = {**os.environ, "DEEPDRILL_AUTOGRADER_ROOT": str(root),
           "DEEPDRILL_AUTOGRADER_PYTHON": python, "PYTHONPATH": str(site)}
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


def run_in_process(root: Path) -> dict[str, Any]:
    assert autograder.main(["--root", str(root)]) == 0
    return json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))


# -- the zip ------------------------------------------------------------------------------------

def test_zip_layout_scripts_and_determinism(zip_path, example_build):
    with zipfile.ZipFile(zip_path) as z:
        infos = {i.filename: i for i in z.infolist()}
        assert set(infos) == {"setup.sh", "run_autograder", "deepdrill-0.1.0-py3-none-any.whl",
                              "constraints.txt", "key.json", "deepdrill_gradescope.json"}
        for script in ("setup.sh", "run_autograder"):
            text = z.read(script)
            assert text.startswith(b"#!/usr/bin/env bash\n") and b"\r" not in text
            assert infos[script].external_attr >> 16 == 0o100755
        assert z.read("key.json") == (example_build / "key.json").read_bytes()
        settings = json.loads(z.read("deepdrill_gradescope.json"))
        assert settings["emails"] == {"ada@example.edu": "s001", "grace@example.edu": "s003"}
        assert "numpy==" in z.read("constraints.txt").decode()
    again = zip_path.parent / "again.zip"
    roster = zip_path.parent / "moodle.csv"
    CliRunner().invoke(cli, ["export", "gradescope", "--key", str(example_build / "key.json"),
                             "--out", str(again), "--roster", str(roster)])
    assert again.read_bytes() == zip_path.read_bytes()


def test_wheel_is_complete_and_its_record_true(zip_path, tmp_path):
    with zipfile.ZipFile(zip_path) as z:
        (tmp_path / "w.whl").write_bytes(z.read("deepdrill-0.1.0-py3-none-any.whl"))
    with zipfile.ZipFile(tmp_path / "w.whl") as w:
        names = set(w.namelist())
        assert {"deepdrill/export/autograder.py", "deepdrill/grader/batch.py",
                "deepdrill/grader/schemas/submission.schema.json",
                "deepdrill/templates/sheet.tex.j2", "deepdrill/generator/types/softmax.py",
                "deepdrill-0.1.0.dist-info/METADATA"} <= names
        assert not any("__pycache__" in n for n in names)
        assert "Requires-Dist: numpy" in w.read("deepdrill-0.1.0.dist-info/METADATA").decode()
        for line in w.read("deepdrill-0.1.0.dist-info/RECORD").decode().splitlines():
            name, digest, size = line.rsplit(",", 2)
            if digest:
                data = w.read(name)
                want = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
                assert digest == "sha256=" + want.decode() and int(size) == len(data)


def test_setup_sh_is_sound_bash(zip_path, tmp_path):
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(tmp_path)
    for script in ("setup.sh", "run_autograder"):
        subprocess.run(["bash", "-n", str(tmp_path / script)], check=True)
    setup = (tmp_path / "setup.sh").read_text()
    assert "set -euo pipefail" in setup and "--constraint constraints.txt" in setup
    assert "deepdrill-0.1.0-py3-none-any.whl" in setup and "python3.11" in setup
    if shutil.which("shellcheck"):
        done = subprocess.run(["shellcheck", "setup.sh", "run_autograder"], cwd=tmp_path,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout


# -- run_autograder, from the installed wheel ------------------------------------------------------

def test_run_autograder_grades_an_upload(tmp_path, zip_path, site, examples, max_score):
    root = lay_out(tmp_path / "autograder", zip_path, {"s003.json": upload(examples, "s003")},
                   users=[{"email": "grace@example.edu", "id": 7, "name": "Grace Hopper"}])
    data = run_script(root, site)
    check_results(data, max_score)
    assert data["score"] == pytest.approx(25.0)
    tests = {t["name"].split(":")[0]: t for t in data["tests"]}
    assert tests["Submission file"]["status"] == "passed"
    assert "your Gradescope account" in tests["Submission file"]["output"]
    assert "carried forward" in tests["q5"]["output"] and "sample variance" in tests["q5"]["output"]
    assert "mistake:sample_variance" in tests["q5"]["tags"]
    assert tests["Expected answers"]["visibility"] == "after_due_date"
    assert data["extra_data"]["student_id"] == "s003"


def test_run_autograder_reports_an_unreadable_upload(tmp_path, zip_path, site, examples,
                                                     max_score):
    root = lay_out(tmp_path / "autograder", zip_path,
                   {"answers.json": (examples / "submissions" / "s005.json").read_bytes()})
    data = run_script(root, site)
    check_results(data, max_score)
    assert data["score"] == 0
    assert data["tests"][0]["status"] == "failed"
    assert "not valid JSON" in data["output"]


def test_run_autograder_writes_a_result_when_python_cannot_start(tmp_path, zip_path, site,
                                                                 max_score):
    root = lay_out(tmp_path / "autograder", zip_path, {"x.json": b"{}"})
    data = run_script(root, site, python=str(tmp_path / "no-such-python"))
    assert data["score"] == 0 and data["tests"] == []
    assert "could not run deepdrill" in data["output"]


# -- whose file, and what cannot be graded -----------------------------------------------------------

@pytest.mark.parametrize("files, users, score, words", [
    ({"s001.json": "s001"}, [], 50, "the student_id in the file"),  # nobody recognised
    ({"mine.json": "s001"}, [{"email": "ADA@example.edu"}], 50, "your Gradescope account"),
    ({"s002.json": "s002"}, [{"email": "x@y", "sid": "s001"}], 0,
     "the file is for student s002, but was submitted from the account of s001"),
    ({"s003.json": ("s003", {"student_id": "s00x"})}, [{"sid": "s003"}], 25.0,
     "student_id 's00x', not on the roster, so it was graded as student s003"),
    ({"s999.json": "s999"}, [], 0, "'s999' is not on this assignment's roster"),
    ({"a.json": "s001", "b.json": "s002"}, [], 0, "upload exactly one .json file"),
    ({}, [], 0, "no file was uploaded"),
    ({"answers.txt": "s002"}, [], 50, "the student_id in the file"),  # one file, any name
    ({"s001.json": "s001"}, [{"sid": "s001"}, {"sid": "s002"}], 50, "your Gradescope account"),
    ({"s001.json": ("s001", {"student_id": None})}, [{"sid": "s001"}, {"sid": "s002"}], 0,
     "a group submission (s001, s002)"),
])
def test_whose_file(tmp_path, zip_path, examples, max_score, files, users, score, words):
    data_files = {}
    for name, spec in files.items():
        who, changes = spec if isinstance(spec, tuple) else (spec, {})
        data_files[name] = upload(examples, who, **changes)
    data = run_in_process(lay_out(tmp_path / "autograder", zip_path, data_files, users))
    check_results(data, max_score)
    assert data["score"] == pytest.approx(score)
    assert words in data["tests"][0]["output"]


def test_strict_refuses_an_unrecognised_account(tmp_path, zip_path, examples, max_score):
    root = lay_out(tmp_path / "autograder", zip_path, {"s001.json": upload(examples, "s001")},
                   users=[{"email": "stranger@example.edu"}])
    settings_file = root / "source" / "deepdrill_gradescope.json"
    settings = json.loads(settings_file.read_text())
    settings_file.write_text(json.dumps({**settings, "strict": True, "expected": "none"}))
    data = run_in_process(root)
    check_results(data, max_score)
    assert data["score"] == 0 and "not on this assignment's roster" in data["output"]
    assert not any(t["name"] == "Expected answers" for t in data["tests"])


def test_a_broken_key_still_gives_a_result(tmp_path, zip_path, examples):
    root = lay_out(tmp_path / "autograder", zip_path, {"s001.json": upload(examples, "s001")})
    (root / "source" / "key.json").write_text("{")
    (root / "submission_metadata.json").write_text("not json")
    data = run_in_process(root)
    assert data["score"] == 0 and data["tests"] == []
    assert "tell your instructor" in data["output"]
