"""The Python API for LMS scripts: the README's example end to end, and the command
going through it."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from deepdrill import api
from deepdrill.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_runs_end_to_end(tmp_path):
    assignment = api.load_assignment(ROOT / "examples" / "assignment.toml")
    notes: list[str] = []
    students = api.load_roster(ROOT / "examples" / "roster.csv", notes)
    built = api.build(assignment, students, tmp_path / "set3", pdf=False, workers=1)
    assert built.key.exists() and len(built.manifest["students"]) == len(students)
    graded = api.grade(built.key, [ROOT / "examples" / "submissions"], out=tmp_path / "grades",
                       workers=1)
    rows = {r.id: r for r in graded.rows}
    assert rows["s001"].total == assignment_total(assignment) and rows["s001"].status == "graded"
    assert rows["s006"].status == "no_submission"
    assert graded.report_json.exists() and graded.grades_csv.exists()
    bank = api.export_moodle(built.key, tmp_path / "bank.xml", variants=2)
    assert bank.read_bytes().startswith(b"<?xml")
    moodle = api.moodle_grades(graded.report_json, tmp_path / "moodle.csv")
    assert isinstance(moodle, list)
    with open(tmp_path / "moodle.csv", newline="", encoding="utf-8") as fh:
        assert len(list(csv.reader(fh))) >= len(students)


def assignment_total(assignment) -> float:
    return sum(q.points for q in assignment.questions)


def test_the_command_is_a_thin_layer_over_the_api(tmp_path, monkeypatch, example_build):
    calls = []
    real = api.grade

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(api, "grade", spy)
    result = CliRunner().invoke(cli, ["grade", "--key", str(example_build / "key.json"),
                                      str(ROOT / "examples" / "submissions"), "--out",
                                      str(tmp_path / "g"), "-q"])
    assert result.exit_code == 0, result.output
    assert calls and (tmp_path / "g" / "grades.csv").exists()


def test_a_key_read_in_the_background_loads_as_one_read_at_once(example_build, tmp_path):
    """The grade command starts reading the key while its modules load (read_soon): the
    same key, and a key that cannot be read is reported as one read at once would be."""
    import pytest

    from deepdrill.errors import DeepdrillError
    from deepdrill.files import read_soon

    path = example_build / "key.json"
    soon = api.load_key(path, read_soon(path))
    at_once = api.load_key(path)
    assert soon.students.keys() == at_once.students.keys() and soon.title == at_once.title
    assert [v.answers for v in soon.students["s001"].variants.values()] == \
        [v.answers for v in at_once.students["s001"].variants.values()]
    for missing in (tmp_path / "gone.json", tmp_path):  # no such file; a folder
        with pytest.raises(DeepdrillError) as soon_err:
            api.load_key(missing, read_soon(missing))
        with pytest.raises(DeepdrillError) as at_once_err:
            api.load_key(missing)
        assert str(soon_err.value) == str(at_once_err.value)
        assert str(soon_err.value).startswith(f"cannot read key {missing}: ")
