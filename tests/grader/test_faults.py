"""The grader under faults: a full disk, a read-only or busy --out, a kill -9.

Whatever happens, the previous grades.csv and report.json stay whole and the grader says
what happened in one line (exit status 2), leaving no temporary file or worker behind.
"""

import contextlib
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from deepdrill.cli import cli
from deepdrill.grader import batch
from deepdrill.grader.batch import LOCK_FILE, grade_files, write_reports


@pytest.fixture
def grade(example_build, examples):
    """`deepdrill grade` of the example submissions (or the given ones) into ``out``."""
    def run(out, *submissions):
        args = ["grade", "--key", str(example_build / "key.json"),
                *map(str, submissions or [examples / "submissions"]), "--out", str(out), "-q"]
        return CliRunner().invoke(cli, args, catch_exceptions=False)
    return run


@pytest.fixture
def previous(tmp_path, grade, examples):
    """A folder holding the good reports of an earlier run; returns it and their bytes."""
    out = tmp_path / "grades"
    assert grade(out, examples / "submissions" / "s001.json").exit_code == 0
    return out, snapshot(out)


def snapshot(out):
    return {name: (out / name).read_bytes() for name in ("grades.csv", "report.json")}


def leftovers(out):
    return sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp"))


def says_intact(result, *words):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) == 1
    assert "the previous grades.csv and report.json there, if any, are intact" in result.output
    for w in words:
        assert w in result.output


def test_reports_are_forced_to_disk_then_replaced_report_json_first(tmp_path, key, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(Path(b).name) or
                        real_replace(a, b))
    out = tmp_path / "out"
    write_reports(grade_files(key, [], workers=1), out)
    assert events == ["fsync", "fsync", "report.json", "grades.csv"]
    assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "grades.csv", "report.json"]


def test_a_full_disk_leaves_the_previous_reports_whole(previous, grade, monkeypatch):
    out, before = previous
    real_fsync, calls = os.fsync, []

    def fsync(fd):  # report.json's temporary file is whole; grades.csv's meets a full disk
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    result = grade(out)
    says_intact(result, f"cannot write the reports in {out}: No space left on device")
    assert snapshot(out) == before and leftovers(out) == []


@pytest.mark.parametrize("how", ["simulated", "chmod"])
def test_a_read_only_out_leaves_the_previous_reports_whole(previous, grade, monkeypatch, how,
                                                          chmod_binds):
    out, before = previous
    if how == "chmod":
        if not chmod_binds:
            pytest.skip("chmod does not keep root out; the simulated case stands in")
        out.chmod(0o555)
    else:  # as a read-only folder does: existing files open, no new file can be made
        real_open = os.open

        def guarded(path, flags, *args, **kwargs):
            if flags & os.O_CREAT and Path(path).parent == out and not os.path.exists(path):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            return real_open(path, flags, *args, **kwargs)
        monkeypatch.setattr(os, "open", guarded)
    try:
        result = grade(out)
    finally:
        out.chmod(0o755)
    says_intact(result, f"cannot write the reports in {out}: Permission denied",
                "grade into a folder you can write (--out)")
    assert snapshot(out) == before and leftovers(out) == []


def test_an_out_folder_that_cannot_be_made_is_one_line(tmp_path, grade, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    monkeypatch.setattr(Path, "mkdir", refuse)
    says_intact(grade(tmp_path / "new"), "Permission denied")


def hold_lock(out):
    """The lock as another grader holds it (a second open file: flock sees two owners)."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def test_a_second_grader_into_the_same_out_waits_then_refuses(previous, grade, monkeypatch):
    out, before = previous
    monkeypatch.setattr(batch, "LOCK_WAIT_S", 0.3)
    fd = hold_lock(out)
    try:
        started = time.monotonic()
        result = grade(out)
        waited = time.monotonic() - started
    finally:
        os.close(fd)
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1, result.output
    assert f"another deepdrill run is writing into {out}" in result.output
    assert waited >= 0.3
    assert snapshot(out) == before
    assert grade(out).exit_code == 0  # once it is free, grading goes on


def test_a_grader_that_waits_goes_on_when_the_other_finishes(previous, grade):
    out, before = previous
    fd = hold_lock(out)
    threading.Timer(0.5, os.close, [fd]).start()  # the other grader finishes
    assert grade(out).exit_code == 0
    assert snapshot(out) != before


def test_temporary_files_of_a_killed_writer_are_removed_by_the_next(tmp_path, key):
    out = tmp_path / "out"
    out.mkdir()
    for stale in (".grades.csv.0a1b2c.tmp", ".report.json.3d4e5f.tmp"):
        (out / stale).write_text("half a report")
    (out / "notes.tmp").write_text("the TA's")  # not ours: kept
    write_reports(grade_files(key, [], workers=1), out)
    assert leftovers(out) == ["notes.tmp"]


# -- kill -9, and a plain kill --------------------------------------------------------


def children(pid):
    """Process ids whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        if entry.name.isdigit() and int(stat.rpartition(")")[2].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def running(pid, marker):
    """Whether ``pid`` is still a live process whose command line holds ``marker`` (a
    forked worker keeps its parent's; a zombie has none)."""
    try:
        return marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def with_marker(marker):
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and running(int(e.name), marker)]


def kill_all(marker):
    """Leave nothing running, even when the test fails."""
    for pid in with_marker(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def many_submissions(tmp_path, key):
    """3,000 files of the example class, each with every question's first recognised mistake
    (the grader's slowest path), so grading lasts long enough to be killed."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(3000):
        sid = list(key.students)[i % len(key.students)]
        answers = {}
        for label, v in key.students[sid].variants.items():
            mistakes = v.mistakes
            answers[label] = {**v.answers, **(mistakes[0].answers if mistakes else {})}
        (folder / f"{sid}-{i:04d}.json").write_text(json.dumps({"student_id": sid,
                                                                "answers": answers}))
    return folder


@pytest.mark.skipif(not sys.platform.startswith("linux") or (os.cpu_count() or 1) < 2,
                    reason="needs Linux (/proc, PR_SET_PDEATHSIG) and two cores for workers")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "kill"])
def test_a_killed_grader_leaves_no_worker_and_no_temporary_file(
        example_build, previous, many_submissions, sig):
    out, before = previous
    exe = Path(sys.executable).with_name("deepdrill")
    proc = subprocess.Popen([str(exe), "grade", "--key", str(example_build / "key.json"),
                             str(many_submissions), "--out", str(out), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    marker = str(many_submissions)
    workers = []
    try:
        deadline = time.monotonic() + 60
        while not workers and proc.poll() is None and time.monotonic() < deadline:
            workers = [p for p in children(proc.pid) if running(p, marker)]
            time.sleep(0.005)
        assert workers, "grading ended before it could be killed: give it more files"
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=60)
        deadline = time.monotonic() + 5
        while with_marker(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert with_marker(marker) == [], "workers outlived the grader"
    finally:
        proc.kill()
        proc.wait()
        kill_all(marker)
    assert snapshot(out) == before and leftovers(out) == []
    if sig == signal.SIGTERM:  # a plain kill is heard: one line, and exit status 2
        assert proc.returncode == 2 and len(err.splitlines()) == 1, err
        assert "interrupted before the reports were written" in err and "are intact" in err


def random_json(rng, leaves, deepest, leaf_share, list_share, keys=None):
    """A random value of lists and objects (up to 3 items each, nested up to ``deepest``
    + 1 levels) with ``leaves`` at the ends; an object's keys are its item numbers, each
    after one of ``keys`` if given."""
    def value(level=0):
        r = rng.random()
        if level > deepest or r < leaf_share:
            return rng.choice(leaves)
        if r < list_share:
            return [value(level + 1) for _ in range(rng.randrange(4))]
        return {(rng.choice(keys) if keys else "") + str(i): value(level + 1)
                for i in range(rng.randrange(4))}
    return value()


def test_a_submissions_depth_and_range_are_measured_as_a_walk_leaf_by_leaf_measures_them():
    import random
    from deepdrill.grader.submission import _measure

    def walked(data):
        low, high = -2.0 ** 63, 2.0 ** 64
        if not isinstance(data, (list, dict)):
            return 0, type(data) is float and not low < data < high
        deepest, beyond, stack = 0, False, [(data, 1)]
        while stack:
            value, level = stack.pop()
            deepest = max(deepest, level)
            for child in value.values() if isinstance(value, dict) else value:
                if isinstance(child, (list, dict)):
                    stack.append((child, level + 1))
                elif type(child) is float and not low < child < high:
                    beyond = True
        return deepest, beyond

    rng = random.Random(1)
    leaves = [1, -3, 2.5, 1e19, -1e19, 2.0 ** 64, -2.0 ** 63, "x", None, True, 1e300,
              float("inf"), 2 ** 64 - 1]

    for _ in range(20_000):
        v = random_json(rng, leaves, deepest=5, leaf_share=0.4, list_share=0.7)
        assert _measure(v) == walked(v), v


def test_a_submissions_depth_read_from_its_text_is_the_depth_of_its_value():
    """Most files' depth is counted from their brackets; strings holding brackets, quotes
    or escapes, numbers beyond 64-bit integers and deep nesting all come out as a walk of
    the parsed value says."""
    import json
    import random
    from deepdrill.grader.submission import MAX_DEPTH, Submission, _parse_json, depth

    rng = random.Random(2)
    leaves = [1, -3, 2.5, 1e-05, 3e19, 2 ** 70, -(2 ** 63) - 1, 123456789012345678, "x",
              "[", "]]{", '"', '\\"[', "é[", None, True]

    deep_seen = 0
    for _ in range(5000):
        v = random_json(rng, leaves, deepest=20, leaf_share=0.35, list_share=0.75,
                        keys=["a", "[b", "c}"])
        for text in (json.dumps(v), json.dumps(v, ensure_ascii=False, indent=1)):
            sub = Submission(Path("x.json"))
            data, deep = _parse_json(text.encode(), sub)
            assert data == json.loads(text) and sub.error is None
            assert deep == depth(data) or (deep > MAX_DEPTH and depth(data) > MAX_DEPTH), text
            deep_seen = max(deep_seen, deep)
    assert deep_seen > MAX_DEPTH


def test_pieces_written_as_they_are_survive_short_writes_and_a_full_disk(tmp_path, monkeypatch):
    """temp_beside writes a piece that is a list of buffers with writev: every byte in
    order when each call writes only part of what it was given (up to 7 bytes here, and
    more buffers than one call takes), and nothing left behind when the disk fills."""
    from deepdrill import files

    real_writev = os.writev

    def short(fd, buffers):
        return real_writev(fd, [bytes(b"".join(bytes(b) for b in buffers)[:7])])
    monkeypatch.setattr(os, "writev", short)
    pieces = [b"head:", [b"a", b"", b"bcdefghij", b",", b"k" * 20],
              [b"%d," % i for i in range(3000)], b"end"]
    tmp = files.temp_beside(tmp_path / "r.json", pieces)
    want = b"head:abcdefghij," + b"k" * 20 + b"".join(b"%d," % i for i in range(3000)) + b"end"
    assert tmp.read_bytes() == want
    tmp.unlink()

    calls = []

    def full(fd, buffers):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        return short(fd, buffers)
    monkeypatch.setattr(os, "writev", full)
    with pytest.raises(OSError, match="No space"):
        files.temp_beside(tmp_path / "r.json", pieces)
    assert list(tmp_path.iterdir()) == []
