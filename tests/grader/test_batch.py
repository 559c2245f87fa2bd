"""Grading a class: every file reported once, bad files never stop the batch."""

import csv
import errno
import json
import os
from pathlib import Path

import pytest

from deepdrill.grader.batch import collect_files, grade_files, load_key, write_reports


def right_answers(key, sid):
    return {label: v.answers for label, v in key.students[sid].variants.items()}


@pytest.fixture
def class_folder(tmp_path, key):
    """A folder with one file of every kind a real class produces."""
    d = tmp_path / "subs"
    d.mkdir()

    def put(name, data, raw=None):
        p = d / name
        p.write_text(raw if raw is not None else json.dumps(data), encoding="utf-8")
        return p

    put("right.json", {"student_id": "s001", "answers": right_answers(key, "s001")})
    put("bom.json", None, "\ufeff" + json.dumps({"student_id": "s002",
                                                  "answers": right_answers(key, "s002")}))
    first = key.students["s003"].variants["q1"]
    q1_field = first.fields[0].name
    nan_text = json.dumps({"student_id": "s003", "answers": {"q1": {q1_field: "PLACEHOLDER"}}})
    put("nan.json", None, nan_text.replace('"PLACEHOLDER"', "NaN"))
    put("broken.json", None, '{"student_id": "s004", "answers": {')
    put("s005.json", None, "not json at all")  # unreadable, recognised by file name
    put("stranger.json", {"student_id": "zz-not-enrolled", "answers": {}})
    put("list.json", [1, 2, 3])
    put("empty.json", None, "")
    put("deep.json", None, "[" * 200 + "]" * 200)
    (d / "huge.json").write_bytes(b'{"student_id": "s006", "pad": "' + b"x" * 2_000_000 + b'"}')
    old = put("s001-old.json", {"student_id": "s001", "answers": {}})
    os.utime(old, (1_000_000, 1_000_000))  # older: superseded by right.json
    nested = d / "more"
    nested.mkdir()
    put("more/textnumbers.json", {"student_id": "s006",
                                  "answers": {"q1": {q1_field: "lots"}, "q9": {}}})
    put("S004.JSON", {"student_id": "s004", "answers": {}})  # upper case is still JSON
    put("notes.txt", None, "my answers are in the other file")
    (d / "__MACOSX").mkdir()
    put("__MACOSX/._right.json", None, "\x00\x05\x16\x07")
    put(".DS_Store", None, "")
    return d


def test_every_file_appears_once_with_a_status(key, class_folder):
    files, skipped = collect_files([class_folder])
    report = grade_files(key, files, skipped=skipped)
    on_disk = [str(p) for p in class_folder.rglob("*") if p.is_file()]
    assert sorted(e.file for e in report.entries) == sorted(on_disk)
    status = {os.path.basename(e.file): e.status for e in report.entries}
    assert status == {
        "S004.JSON": "graded", "notes.txt": "skipped", "._right.json": "skipped",
        ".DS_Store": "skipped",
        "right.json": "graded", "bom.json": "graded", "nan.json": "graded",
        "broken.json": "unreadable", "s005.json": "unreadable", "stranger.json": "unknown_student",
        "list.json": "unreadable", "empty.json": "unreadable", "deep.json": "unreadable",
        "huge.json": "unreadable", "s001-old.json": "superseded", "textnumbers.json": "graded",
    }
    for e in report.entries:
        if e.status != "graded":
            assert e.messages, e.file


def test_scores_and_messages(key, class_folder):
    report = grade_files(key, collect_files([class_folder])[0])
    by_name = {os.path.basename(e.file): e for e in report.entries}
    assert by_name["right.json"].score == pytest.approx(key.max_score)
    assert by_name["bom.json"].score == pytest.approx(key.max_score)
    nan = by_name["nan.json"]
    assert nan.score == 0
    assert any("NaN" in f.feedback for f in nan.questions["q1"].fields.values())
    assert "over the 1,000,000-byte limit" in by_name["huge.json"].messages[0]
    assert "not valid JSON" in by_name["broken.json"].messages[0]
    assert by_name["s005.json"].student_id == "s005"
    text = by_name["textnumbers.json"]
    assert "ignored unknown question(s): q9" in text.messages
    assert any("got text" in f.feedback for f in text.questions["q1"].fields.values())


def test_reports_on_disk(key, class_folder, tmp_path):
    report = grade_files(key, collect_files([class_folder])[0])
    csv_path, json_path = write_reports(report, tmp_path / "grades")
    with csv_path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by_id = {r["id"]: r for r in rows}
    for sid in key.students:  # a row per student on the roster, exactly once
        assert [r["id"] for r in rows].count(sid) == 1
    assert by_id["s001"]["status"] == "graded"
    assert float(by_id["s001"]["total"]) == pytest.approx(key.max_score)
    assert by_id["s005"]["status"] == "unreadable"
    assert by_id["zz-not-enrolled"]["status"] == "unknown_student"
    data = json.loads(json_path.read_text(encoding="utf-8"))
    assert len(data["submissions"]) == len(report.entries)
    q = data["submissions"][0]["questions"]
    for fields in (v["fields"] for v in q.values()):
        for f in fields.values():
            assert {"score", "max_score", "expected", "given", "feedback", "correct"} <= set(f)


def test_a_student_without_a_file_gets_a_row(key, tmp_path):
    report = grade_files(key, [])
    rows = report.student_rows()
    assert {r["status"] for r in rows} == {"no_submission"}
    assert len(rows) == len(key.students)


def test_a_key_saved_whole_by_another_tool_still_loads(tmp_path, example_build):
    data = json.loads((example_build / "key.json").read_text())
    (tmp_path / "key.json").write_text(json.dumps(data, indent=2))
    key = load_key(tmp_path / "key.json")
    original = load_key(example_build / "key.json")
    assert key.students["s003"].variants == original.students["s003"].variants


def as_format_2(path: Path, to: Path) -> None:
    """The key as deepdrill-key/2 stored it: every variant's fields and feedback inline."""
    from deepdrill.model.key import Shared, key_lines
    import orjson

    head, lines = key_lines(path.read_bytes())
    shared = Shared(head.pop("shared"))
    head["students"] = [{**d, "variants": {k: shared.inline(v) for k, v in d["variants"].items()}}
                        for d in map(orjson.loads, lines)]
    head["format"] = "deepdrill-key/2"
    to.write_bytes(orjson.dumps(head))


def test_the_students_lines_name_the_fields_and_feedback_their_variants_share(example_build):
    data = json.loads((example_build / "key.json").read_text())
    shared = data["shared"]
    assert len({json.dumps(f, sort_keys=True) for f in shared["fields"]}) == len(shared["fields"])
    assert len(set(shared["feedback"])) == len(shared["feedback"])
    used = set()
    for student in data["students"]:
        for v in student["variants"].values():
            assert all(type(f) is int for f in v["fields"])
            assert all(type(m["feedback"]) is int for m in v["mistakes"])
            used.update(v["fields"])
    assert used == set(range(len(shared["fields"])))  # a fresh build's table: all in use
    key = load_key(example_build / "key.json")
    for student in key.students.values():
        for v in student.variants.values():
            assert all(isinstance(f.name, str) and f.tolerance for f in v.fields)
            assert all(isinstance(m.feedback, str) and m.feedback for m in v.mistakes)


def test_a_key_of_format_2_grades_as_it_did(tmp_path, example_build, key, examples):
    """deepdrill-key/2 held every variant's fields and feedback inline: same variants,
    same report."""
    as_format_2(example_build / "key.json", tmp_path / "key2.json")
    old = load_key(tmp_path / "key2.json")
    for sid, student in key.students.items():
        assert {k: v.to_json() for k, v in old.students[sid].variants.items()} == \
            {k: v.to_json() for k, v in student.variants.items()}
        assert [v.mistakes for v in old.students[sid].variants.values()] == \
            [v.mistakes for v in student.variants.values()]
    files = collect_files([examples / "submissions"])[0]
    reports = [grade_files(k, files, workers=1).to_json() for k in (old, key)]
    for report in reports:
        report.pop("graded_at")
    assert reports[0] == reports[1]


def test_a_key_naming_a_field_it_does_not_hold_is_refused(tmp_path, example_build):
    from deepdrill.errors import DeepdrillError

    raw = (example_build / "key.json").read_text()
    head, first, rest = raw.split("\n", 2)
    first = first.replace('"fields":[', '"fields":[99999,', 1)
    (tmp_path / "key.json").write_text("\n".join([head, first, rest]))
    with pytest.raises(DeepdrillError, match="not a deepdrill answer key"):
        load_key(tmp_path / "key.json")


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(format="deepdrill-key/1"), "deepdrill-key/1 key"),
    (lambda d: d["type_versions"].update(softmax=99), "softmax was built as version 99"),
    (lambda d: d.update(format="other"), "not a deepdrill answer key"),
])
def test_keys_from_another_version_are_refused_with_a_message(tmp_path, example_build, change,
                                                               words):
    from deepdrill.errors import DeepdrillError

    data = json.loads((example_build / "key.json").read_text())
    change(data)
    (tmp_path / "key.json").write_text(json.dumps(data))
    with pytest.raises(DeepdrillError, match=words):
        load_key(tmp_path / "key.json")


def test_forked_workers_report_exactly_what_one_process_does(tmp_path, key, examples):
    """Workers send back packed results; the report must not change for it."""
    import shutil

    folder = tmp_path / "many"
    folder.mkdir()
    subs = sorted((examples / "submissions").glob("*.json"))
    for i in range(120):  # more than PARALLEL_FROM files, so the workers are used
        shutil.copy(subs[i % len(subs)], folder / f"{i:03d}-{subs[i % len(subs)].name}")
    files = collect_files([folder])[0]
    one = grade_files(key, files, workers=1).to_json()
    two = grade_files(key, files, workers=2).to_json()
    for report in (one, two):
        report.pop("graded_at")
    assert json.loads(orjson_dumps(two)) == json.loads(orjson_dumps(one))
    assert two["students"] == one["students"]


def test_workers_results_come_back_through_files_or_else_the_pipe(tmp_path, key, examples,
                                                                monkeypatch):
    """Each chunk a worker grades comes back through a nameless file the parent made
    (nothing left behind); when a file cannot be made or written (a full disk), through
    the pool's pipe, with the same report. The parent grades the chunks no worker has
    started."""
    import os
    import shutil
    import tempfile

    from deepdrill.grader import batch

    folder = tmp_path / "many"
    folder.mkdir()
    subs = sorted((examples / "submissions").glob("*.json"))
    for i in range(150):
        shutil.copy(subs[i % len(subs)], folder / f"{i:03d}-{subs[i % len(subs)].name}")
    files = collect_files([folder])[0]
    spooled = []
    real_spooled = batch._spooled
    monkeypatch.setattr(batch, "_spooled", lambda result, fd: spooled.append(
        type(result).__name__) or real_spooled(result, fd))
    want = grade_files(key, files, workers=1).to_json()
    want.pop("graded_at")

    def same(report):
        report = report.to_json()
        report.pop("graded_at")
        return json.loads(orjson_dumps(report)) == json.loads(orjson_dumps(want))

    assert same(grade_files(key, files, workers=2))
    assert spooled and set(spooled) == {"int"}  # every chunk through its file
    # (the forked worker's: this process grades the chunks no worker has started)
    assert len(spooled) < len(batch.shrinking_chunks(files, 2))
    spooled.clear()

    def full(fd, data, offset):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "pwrite", full)  # (the workers are forked: they inherit it)
    assert same(grade_files(key, files, workers=2))
    assert spooled and set(spooled) == {"list"}  # every chunk through the pipe
    spooled.clear()

    def no_temp():
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tempfile, "TemporaryFile", no_temp)
    assert same(grade_files(key, files, workers=2))
    assert set(spooled) == {"list"}


def orjson_dumps(data):
    import orjson

    return orjson.dumps(data)


def test_huge_integers_cost_one_field_and_the_reports_are_still_written(tmp_path, key):
    answers = right_answers(key, "s001")
    answers["q1"] = {**answers["q1"], "total_params": 2 ** 70}  # a count field
    answers["q5"] = {**answers["q5"], "mean": int("9" * 400)}  # a real field
    d = tmp_path / "subs"
    d.mkdir()
    (d / "s001.json").write_text(json.dumps({"student_id": "s001", "answers": answers}))
    report = grade_files(key, collect_files([d])[0], workers=1)
    e = report.entries[0]
    assert e.status == "graded"
    assert "too large" in e.questions["q1"].fields["total_params"].feedback
    assert "too large" in e.questions["q5"].fields["mean"].feedback
    assert e.questions["q2"].score == e.questions["q2"].max_score
    csv_path, json_path = write_reports(report, tmp_path / "out")
    given = json.loads(json_path.read_text())["submissions"][0]["questions"]["q1"]["fields"]
    assert given["total_params"]["given"].startswith("<a whole number of 22 digits")


def test_no_spreadsheet_formula_reaches_grades_csv(tmp_path, key):
    d = tmp_path / "subs"
    d.mkdir()
    (d / "x.json").write_text(json.dumps({"student_id": "=HYPERLINK(\"http://x\")",
                                          "answers": {}}))
    report = grade_files(key, collect_files([d])[0], workers=1)
    csv_path, _ = write_reports(report, tmp_path / "out")
    with csv_path.open(encoding="utf-8") as fh:
        cells = [row[0] for row in csv.reader(fh)]
    assert "'=HYPERLINK(\"http://x\")" in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for c in cells)


def test_file_names_that_are_not_utf8_or_hold_escapes_are_shown_harmlessly(tmp_path, key):
    import os

    d = tmp_path / "subs"
    d.mkdir()
    latin1 = os.path.join(os.fsencode(d), b"\xe9t\xe9.json")  # from a Windows zip
    with open(latin1, "w", encoding="utf-8") as fh:
        fh.write(json.dumps({"student_id": "s002", "answers": right_answers(key, "s002")}))
    (d / "\x1b[31mred.json").write_text(json.dumps({"student_id": "s003", "answers": {}}))
    report = grade_files(key, collect_files([d])[0], workers=1)
    csv_path, json_path = write_reports(report, tmp_path / "out")
    files = sorted(e.file for e in report.entries)
    assert files[0].endswith("\\x1b[31mred.json") and files[1].endswith("\\xe9t\\xe9.json")
    rows = {r["id"]: r for r in report.student_rows()}
    assert rows["s002"]["total"] == key.max_score and rows["s003"]["status"] == "graded"
    assert "\x1b" not in csv_path.read_text(encoding="utf-8") + json_path.read_text()


def test_a_pipe_or_device_named_on_the_command_line_is_refused_not_read(tmp_path, key):
    import os

    fifo = tmp_path / "s001.json"
    os.mkfifo(fifo)
    report = grade_files(key, [fifo, Path("/dev/zero")], workers=1)
    assert [e.status for e in report.entries] == ["unreadable", "unreadable"]
    assert all("not a regular file" in e.messages[0] for e in report.entries)


def test_links_and_pipes_in_a_folder_are_listed_never_left_out(tmp_path, key, examples):
    d = tmp_path / "subs"
    d.mkdir()
    (d / "link.json").symlink_to(examples / "submissions" / "s001.json")
    (d / "dangling.json").symlink_to(tmp_path / "nowhere.json")
    (d / "loop").symlink_to(d)  # a folder that contains itself: not walked forever
    os.mkfifo(d / "pipe.json")
    files, skipped = collect_files([d])
    report = grade_files(key, files, workers=1, skipped=skipped)
    by_name = {Path(e.file).name: e for e in report.entries}
    assert by_name["link.json"].status == "graded"
    assert by_name["dangling.json"].status == "skipped"
    assert "dangling symlink" in by_name["dangling.json"].messages[0]
    assert by_name["pipe.json"].status == "skipped"
    assert "not a regular file" in by_name["pipe.json"].messages[0]


def put_json(folder, name, data, mtime=None):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_file_named_for_one_student_never_takes_anothers_grade(tmp_path, key):
    """A newer s001.json saying s002 used to supersede s002's own file, silently."""
    d = tmp_path / "subs"
    put_json(d, "s002-final.json", {"student_id": "s002", "answers": right_answers(key, "s002")},
             mtime=1_000_000)
    put_json(d, "s001.json", {"student_id": "s002", "answers": right_answers(key, "s001")})
    report = grade_files(key, collect_files([d])[0], workers=1)
    by_name = {os.path.basename(e.file): e for e in report.entries}
    assert by_name["s002-final.json"].status == "graded"
    held = by_name["s001.json"]
    assert held.status == "id_mismatch"
    assert held.messages[0].startswith("named for s001 but says student_id s002: not counted")
    assert f"{key.max_score:.4g} on s001's" in held.messages[0]  # they are s001's answers
    rows = {r["id"]: r for r in report.student_rows()}
    assert rows["s002"]["status"] == "graded" and rows["s002"]["total"] == key.max_score
    assert rows["s002"]["file"].endswith("s002-final.json")
    assert rows["s002"]["notes"] == [
        ("s001.json also claims s002 (named for s001); not counted: rename the file or fix its "
         "student_id, then grade again")]
    assert rows["s001"]["status"] == "id_mismatch" and rows["s001"]["total"] == 0
    assert rows["s001"]["file"].endswith("s001.json")
    assert rows["s001"]["notes"][0].startswith("s001.json says student_id s002; not counted")
    assert report.counted().keys() == {"s002"}


def test_a_claimed_student_without_a_file_of_their_own_is_marked_in_both_rows(tmp_path, key):
    d = tmp_path / "subs"
    put_json(d, "s001.json", {"student_id": "s002", "answers": {}})
    report = grade_files(key, collect_files([d])[0], workers=1)
    rows = {r["id"]: r for r in report.student_rows()}
    for sid in ("s001", "s002"):
        assert rows[sid]["status"] == "id_mismatch" and rows[sid]["total"] == 0
        assert rows[sid]["file"].endswith("s001.json") and len(rows[sid]["notes"]) == 1
    csv_path, json_path = write_reports(report, tmp_path / "out")
    with csv_path.open(encoding="utf-8") as fh:
        notes = {r["id"]: r["notes"] for r in csv.DictReader(fh)}
    assert notes["s001"].startswith("s001.json says student_id s002")
    assert notes["s002"].startswith("s001.json also claims s002")
    assert notes["s003"] == ""
    students = json.loads(json_path.read_text())["students"]
    assert next(r for r in students if r["id"] == "s002")["notes"] == rows["s002"]["notes"]


def test_files_whose_name_is_no_student_or_agrees_keep_newest_wins(tmp_path, key):
    d = tmp_path / "subs"
    put_json(d, "submission.json", {"student_id": "s002", "answers": {}})  # not a roster name
    put_json(d, "old/s003.json", {"student_id": "s003", "answers": {}}, mtime=1_000_000)
    put_json(d, "new/s003.json", {"student_id": "s003", "answers": right_answers(key, "s003")})
    report = grade_files(key, collect_files([d])[0], workers=1)
    status = {e.file.split(str(d))[1]: e.status for e in report.entries}
    assert status == {"/submission.json": "graded", "/old/s003.json": "superseded",
                      "/new/s003.json": "graded"}
    rows = {r["id"]: r for r in report.student_rows()}
    assert rows["s003"]["total"] == key.max_score and rows["s003"]["notes"] == []


def forbid(request, how, path, owner, name):
    """Make ``path`` unreadable: really (chmod 000, where that binds: not for root), or by
    making the call ``owner.name`` that reads it fail as it does for a TA who may not."""
    if how == "chmod":
        if not request.getfixturevalue("chmod_binds"):
            pytest.skip("chmod does not keep root out; the simulated case stands in")
        path.chmod(0)
        return
    monkeypatch = request.getfixturevalue("monkeypatch")
    real = getattr(owner, name)

    def guarded(p, *args, **kwargs):
        if os.fspath(p) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(p, *args, **kwargs)
    monkeypatch.setattr(owner, name, guarded)


@pytest.mark.parametrize("how", ["simulated", "chmod"])
def test_a_folder_that_cannot_be_listed_is_reported_never_left_out(tmp_path, key, request, how):
    d = tmp_path / "subs"
    put_json(d, "s001.json", {"student_id": "s001", "answers": {}})
    locked = d / "late"
    put_json(locked, "s002.json", {"student_id": "s002", "answers": {}})
    forbid(request, how, locked, os, "scandir")
    try:
        files, skipped = collect_files([d])
    finally:
        locked.chmod(0o755)
    report = grade_files(key, files, workers=1, skipped=skipped)
    by_name = {os.path.basename(e.file): e for e in report.entries}
    assert set(by_name) == {"s001.json", "late"}
    assert by_name["late"].status == "skipped"
    assert "folder cannot be listed (Permission denied)" in by_name["late"].messages[0]


@pytest.mark.parametrize("how", ["simulated", "chmod"])
def test_an_unreadable_file_is_reported_with_its_reason(tmp_path, key, request, how):
    d = tmp_path / "subs"
    path = put_json(d, "s001.json", {"student_id": "s001", "answers": {}})
    forbid(request, how, path, os, "open")
    try:
        report = grade_files(key, collect_files([d])[0], workers=1)
    finally:
        path.chmod(0o644)
    [e] = report.entries
    assert e.status == "unreadable" and e.student_id == "s001"
    assert e.messages[0] == "cannot read file: Permission denied"


def test_links_that_loop_or_lead_to_folders_are_listed_not_followed(tmp_path, key):
    d = tmp_path / "subs"
    put_json(d, "s001.json", {"student_id": "s001", "answers": {}})
    (d / "self.json").symlink_to(d / "self.json")  # a link to itself
    (d / "ping.json").symlink_to(d / "pong.json")
    (d / "pong.json").symlink_to(d / "ping.json")
    (d / "again").symlink_to(d)  # a folder that contains itself
    (tmp_path / "elsewhere").mkdir()
    (d / "elsewhere").symlink_to(tmp_path / "elsewhere")
    files, skipped = collect_files([d])
    report = grade_files(key, files, workers=1, skipped=skipped)
    by_name = {os.path.basename(e.file): e for e in report.entries}
    assert sorted(by_name) == sorted(os.listdir(d))  # every entry, exactly once
    assert by_name["s001.json"].status == "graded"
    for name in ("self.json", "ping.json", "pong.json"):
        assert by_name[name].status == "skipped"
        assert "loops back on itself" in by_name[name].messages[0]
    for name in ("again", "elsewhere"):
        assert by_name[name].status == "skipped"
        assert "a link to a folder, not followed" in by_name[name].messages[0]


def test_chunks_shrink_and_keep_every_file_in_order():
    from deepdrill.grader.batch import SMALLEST_CHUNK, shrinking_chunks
    for n, workers in [(0, 2), (1, 2), (99, 2), (10_000, 2), (3_001, 3), (500, 8)]:
        chunks = shrinking_chunks(list(range(n)), workers)
        assert [x for c in chunks for x in c] == list(range(n))
        sizes = [len(c) for c in chunks]
        assert sizes == sorted(sizes, reverse=True)
        assert all(s >= SMALLEST_CHUNK for s in sizes[:-1]) and all(sizes)


def test_files_are_named_as_paths_name_them(tmp_path, monkeypatch):
    """collect_files gives paths as text, and the grader takes their stems as Path would:
    a report names a file as it always did, from any folder given, the current one too."""
    from deepdrill.grader.batch import file_stem
    for name in ["s001.json", "a.b.json", ".json", "x.", "..json", "x..json", "noext",
                 "caf\udce9.json"]:
        assert file_stem(f"class/{name}") == Path("class", name).stem == file_stem(Path(name))
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    for name in ["s001.json", "sub/s002.json", "sub/deeper/s003.JSON"]:
        (tmp_path / name).write_text("{}")
    monkeypatch.chdir(tmp_path)
    for root in [".", "./", "sub/..", str(tmp_path), str(tmp_path) + "//"]:
        files, _ = collect_files([Path(root)])
        assert all(type(f) is str for f in files)
        assert files == [str(Path(root, name)) for name in
                         ["s001.json", "sub/deeper/s003.JSON", "sub/s002.json"]], root


def test_a_stored_variant_reads_as_the_variant_it_stores(key):
    """The grader's variants (mistakes made into objects only when asked for) are the
    key's variants."""
    from deepdrill.model.variant import StoredVariant, Variant
    import orjson
    for student in list(key.students.values())[:5]:
        raw = student.raw if isinstance(student.raw, dict) else orjson.loads(student.raw)
        for label, data in raw["variants"].items():
            stored = student.variants[label]
            plain = Variant.from_json(student.shared.inline(data))
            assert isinstance(stored, StoredVariant)
            assert stored.to_json() == plain.to_json() and stored.mistakes == plain.mistakes
            assert stored.fields == plain.fields and stored.params == plain.params


@pytest.mark.parametrize("piece", [1, 3, 500])
def test_report_json_written_in_pieces_is_the_report_in_one(key, class_folder, monkeypatch,
                                                             piece):
    import re

    import orjson
    import deepdrill.grader.batch as batch

    monkeypatch.setattr(batch, "REPORT_PIECE", piece)
    files, skipped = collect_files([class_folder])
    report = grade_files(key, files, skipped=skipped)
    rows = report.student_rows()
    whole = orjson.dumps(report.to_json(rows), option=orjson.OPT_APPEND_NEWLINE)
    def joined(pieces):  # (a piece is bytes, or a list of them written as they are)
        return b"".join(b"".join(p) if isinstance(p, list) else p for p in pieces)
    pieces = joined(report.json_pieces(rows))
    at = re.compile(rb'"graded_at":"[^"]*"')
    assert at.sub(b"", pieces) == at.sub(b"", whole) and len(report.entries) > 3
    assert joined(batch.Report(key, []).json_pieces()).endswith(b'"submissions":[]}\n')
    write_reports(report, class_folder.parent / "out")  # the file holds what they make
    on_disk = (class_folder.parent / "out" / "report.json").read_bytes()
    assert at.sub(b"", on_disk) == at.sub(b"", whole)
