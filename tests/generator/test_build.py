"""Building a class: deterministic variants, distinct students, nothing leaks from the key."""

import json
import re

import numpy as np
import pytest

from deepdrill.errors import DeepdrillError
from deepdrill.generator.assignment import Student, parse_assignment, parse_roster
from deepdrill.generator.build import build, make_variants, safe_folder
from deepdrill.model.fields import flatten
from deepdrill.generator.render import render_document

SIMPLE = {"title": "T", "seed": 5, "questions": [{"type": "conv2d_forward", "points": 4}]}


def test_layout(example_build, example_students):
    assert (example_build / "key.json").exists()
    manifest = json.loads((example_build / "manifest.json").read_text())
    assert manifest["assignment"]["sha256"] and manifest["deepdrill_version"]
    assert [s["id"] for s in manifest["students"]] == [s.id for s in example_students]
    assert all(isinstance(s["seed"], int) for s in manifest["students"])
    for s in manifest["students"]:
        sub = json.loads((example_build / "students" / s["folder"] / "submission.json").read_text())
        assert sub["student_id"] == s["id"]


def test_same_inputs_same_numbers_and_students_differ(tmp_path, example_assignment,
                                                      example_students):
    a = make_variants(example_assignment, example_students)
    b = make_variants(example_assignment, example_students)
    assert [x.variants["q1"].to_json() for x in a] == [x.variants["q1"].to_json() for x in b]
    sheets = [json.dumps({k: v.params for k, v in x.variants.items()}, sort_keys=True) for x in a]
    assert len(set(sheets)) == len(sheets), "two students got the same numbers"


def test_a_students_variant_does_not_depend_on_the_rest_of_the_roster(example_assignment):
    alone = make_variants(example_assignment, [Student("s042", "A")])[0]
    crowd = make_variants(example_assignment, [Student(f"x{i}", "B") for i in range(5)]
                          + [Student("s042", "A")])[-1]
    assert alone.variants["q1"].to_json() == crowd.variants["q1"].to_json()
    assert alone.seed == crowd.seed


def test_the_key_is_one_json_document_with_a_student_per_line(example_build, example_students):
    raw = (example_build / "key.json").read_text()
    key = json.loads(raw)  # any JSON tool reads it whole
    assert key["format"] == "deepdrill-key/3" and key["type_versions"]["softmax"] >= 1
    assert [s["id"] for s in key["roster"]] == [s["id"] for s in key["students"]] == \
        [s.id for s in example_students]
    lines = raw.splitlines()
    assert len(lines) == len(example_students) + 2
    assert all(json.loads(line.rstrip(","))["id"] == s.id
               for line, s in zip(lines[1:-1], example_students))


def test_the_key_never_leaks_into_student_files(example_build):
    key = json.loads((example_build / "key.json").read_text())
    for s in key["roster"]:
        sub = json.loads((example_build / "students" / s["folder"] / "submission.json").read_text())
        for label, fields in sub["answers"].items():
            assert all(v is None for f in fields.values() for v in flatten(f))
        assert "mistakes" not in json.dumps(sub)


def poison(value):
    if isinstance(value, (list, tuple)):
        return type(value)(poison(v) for v in value)
    return np.full(np.shape(value), 987654.321) if np.ndim(value) else 987654.321


def test_problem_sheets_show_no_answers(example_assignment, example_students):
    from deepdrill.generator.build import sheets
    builds = make_variants(example_assignment, example_students[:2])
    for sheet in sheets(example_assignment, builds):
        for q in sheet.questions:  # poison the answers: the problem sheet must not print them
            for f in q.variant.fields:
                q.variant.answers[f.name] = poison(q.variant.answers[f.name])
                for step in f.steps:  # the worked solution prints the steps' values
                    q.variant.values[step] = poison(q.variant.values[step])
    problems = render_document(sheets(example_assignment, builds), solutions=False)
    assert "987654" not in problems and "Solution" not in problems
    assert "987654" in render_document(sheets(example_assignment, builds), solutions=True)


@pytest.mark.parametrize("sid, folder", [
    ("s001", "s001"), ("../../etc/passwd", "etc_passwd-"), ("a/b", "a_b-"), (".hidden", "hidden-"),
    ("", "student-"), ("Zoë 1", "Zo_1-"), ("a_b", "a_b"), ("x" * 5000, "x" * 64 + "-"),
])
def test_safe_folders(sid, folder):
    name = safe_folder(sid, set())
    assert name == folder if not folder.endswith("-") else \
        (name.startswith(folder) and len(name) == len(folder) + 6)
    assert "/" not in name and not name.startswith(".")


def test_folders_are_unique_and_do_not_depend_on_the_roster_order():
    ids = ("a/b", "a_b", "a:b", "a b")
    taken: set[str] = set()
    one = [safe_folder(x, taken) for x in ids]
    taken = set()
    two = [safe_folder(x, taken) for x in reversed(ids)][::-1]
    assert one == two and len(set(one)) == 4 and one[1] == "a_b"


def test_hostile_roster_builds_inside_out(tmp_path):
    a = parse_assignment(SIMPLE)
    students = parse_roster("id,name\n../../escape,X\n/abs/path,Y\n")
    build(a, students, tmp_path / "out", pdf=False, workers=1)
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("submission.json")}
    assert all(str(p).startswith("out/students/") for p in made)
    assert len(made) == 2


@pytest.mark.parametrize("text, words", [
    ("name\nAda\n", "must name an 'id' and a 'name' column"),
    ("id,name\ns1,A\ns1,B\n", "already used on line 2"),
    ("id,name\n,A\n", "has no id"),
    ("id,name\n", "no students"),
])
def test_roster_errors(text, words):
    with pytest.raises(DeepdrillError, match=words):
        parse_roster(text)


def test_roster_accepts_bom_and_other_column_names():
    assert parse_roster("\ufeffStudent_ID,Name\n7,Ada\n") == [Student("7", "Ada")]


@pytest.mark.parametrize("change, words", [
    ({"seed": -1}, "seed: -1 is less than the minimum"),
    ({"questions": []}, "questions"),
    ({"questions": [{"type": "conv2d_forward"}]}, "'points' is a required property"),
    ({"questions": [{"type": "nope", "points": 1}]}, "unknown exercise type 'nope'"),
    ({"questions": [{"type": "conv2d_forward", "points": 1, "params": {"kernal": 1}}]},
     "q1 \\(conv2d_forward\\): unknown parameter\\(s\\) kernal"),
    ({"questions": [{"type": "conv2d_forward", "points": 1, "options": {"sise": 4}}]},
     "unknown option\\(s\\) sise"),
    ({"questions": [{"type": "conv2d_forward", "points": 1,
                     "tolerances": {"outptu": {"rtol": 0.1}}}]}, "unknown field\\(s\\) outptu"),
    ({"questions": [{"type": "conv2d_forward", "points": 1,
                     "params": {"input": [[1, 2]], "kernel": [[1, 2, 3]]}}]}, "does not fit"),
    ({"colour": "red"}, "Additional properties are not allowed"),
])
def test_assignment_errors_say_where(change, words):
    with pytest.raises(DeepdrillError, match=words):
        parse_assignment({**SIMPLE, **change})


def test_pinned_params_and_tolerances_reach_the_variant():
    a = parse_assignment({**SIMPLE, "questions": [{
        "type": "conv2d_forward", "points": 2, "params": {"stride": 2},
        "tolerances": {"output": {"sigfigs": 2}}}]})
    v = make_variants(a, [Student("s1", "A")])[0].variants["q1"]
    assert v.params["stride"] == 2
    assert v.field("output").tolerance.sigfigs == 2


@pytest.mark.parametrize("question, words", [
    ({"points": float("inf")}, "questions[1].points is inf"),
    ({"tolerances": {"output": {"rtol": float("nan")}}}, "tolerances.output.rtol is nan"),
    ({"tolerances": {"output": {"atol": float("inf")}}}, "atol is inf"),
    ({"carry_forward": float("nan")}, "carry_forward is nan"),
])
def test_non_finite_points_and_tolerances_are_refused(question, words):
    data = {**SIMPLE, "questions": [{**SIMPLE["questions"][0], **question}]}
    with pytest.raises(DeepdrillError, match=re.escape(words)):
        parse_assignment(data)
