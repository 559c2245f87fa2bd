"""Builds as one unit: late enrolment reuses unchanged sheets byte for byte, a failed,
killed or concurrent build leaves the previous one intact, and nothing lingers."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pikepdf
import pytest

import deepdrill.files as files
import deepdrill.generator.build as build_module
from deepdrill.errors import DeepdrillError
from deepdrill.generator.assignment import Student, load_assignment
from deepdrill.generator.build import build

ROOT = Path(__file__).resolve().parents[2]
CLASS = [Student("s001", "Ada"), Student("s002", "Bo"), Student("s003", "Cy")]


def digests(out: Path) -> dict[str, str]:
    """Every file of a build (the lock and the manifest's build time aside) by its hash."""
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != files.LOCK}


def key_lines(out: Path) -> dict[str, bytes]:
    head, lines = build_module.read_key_lines((out / "key.json").read_bytes())
    return {s["id"]: line for s, line in zip(head["roster"], lines)}


def stored_variants(out: Path) -> dict[str, dict[str, dict]]:
    """Each student's variants as the key stores them, its shared fields and feedback texts
    read back (their indices depend on the order students were first built in)."""
    from deepdrill.grader.batch import load_key
    return {sid: {label: v.to_json() for label, v in s.variants.items()}
            for sid, s in load_key(out / "key.json").students.items()}


def leftovers(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(".deepdrill-") and p.is_dir()]


@pytest.fixture
def assignment():
    return load_assignment(ROOT / "examples" / "assignment.toml")


@pytest.fixture
def built_chunks(monkeypatch):
    """The students each chunk of a build was asked to make (in this process)."""
    made: list[str] = []
    real = build_module._build_chunk

    def spy(assignment, students, *args):
        made.extend(s.id for s in students)
        return real(assignment, students, *args)
    monkeypatch.setattr(build_module, "_build_chunk", spy)
    return made


@pytest.mark.slow
@pytest.mark.usefixtures("needs_pdflatex")
def test_late_enrolment_builds_only_the_newcomers(tmp_path, assignment, built_chunks):
    out = tmp_path / "out"
    build(assignment, CLASS, out, workers=1)
    before, old_lines = digests(out), key_lines(out)
    built_chunks.clear()
    notes: list[str] = []
    late = [*CLASS[:2], Student("s010", "Late"), CLASS[2]]
    build(assignment, late, out, workers=1, notes=notes)
    assert built_chunks == ["s010"]
    assert any("reused the sheets of 3 student(s)" in n for n in notes)
    after = digests(out)
    for path, digest in before.items():
        if path.startswith(("students/", "solutions/")):
            assert after[path] == digest, path  # byte for byte
    assert {p for p in after if "s010" in p} == {
        "students/s010/problems.pdf", "students/s010/submission.json",
        "students/s010/answers.html", "solutions/s010.pdf"}
    new_lines = key_lines(out)
    assert list(new_lines) == ["s001", "s002", "s010", "s003"]
    assert all(new_lines[k] == line for k, line in old_lines.items())
    manifest = json.loads((out / "manifest.json").read_text())
    for kind in ("problems", "solutions"):  # the class PDF in roster order, every page once
        with pikepdf.open(out / f"{kind}.pdf") as pdf:
            assert len(pdf.pages) == sum(s["pages"][kind] for s in manifest["students"])
    fresh = tmp_path / "fresh"
    build(assignment, late, fresh, workers=1)
    assert stored_variants(fresh) == stored_variants(out)  # reuse gives what a fresh build gives
    assert list(stored_variants(out)) == list(new_lines)


def test_students_off_the_roster_leave_and_a_renamed_one_is_rebuilt(tmp_path, assignment,
                                                                     built_chunks):
    out = tmp_path / "out"
    build(assignment, CLASS, out, pdf=False, workers=1)
    built_chunks.clear()
    build(assignment, [CLASS[0], Student("s002", "Bo Renamed")], out, pdf=False, workers=1)
    assert built_chunks == ["s002"]
    assert sorted(p.name for p in (out / "students").iterdir()) == ["s001", "s002"]
    assert json.loads((out / "students/s002/submission.json").read_text())["name"] == "Bo Renamed"
    built_chunks.clear()
    build(assignment, [CLASS[0]], out, pdf=False, workers=1, fresh=True)
    assert built_chunks == ["s001"]


def test_another_assignment_file_reuses_nothing(tmp_path, assignment, built_chunks):
    out = tmp_path / "out"
    build(assignment, CLASS, out, pdf=False, workers=1)
    edited = tmp_path / "a.toml"
    edited.write_text((ROOT / "examples/assignment.toml").read_text().replace("seed = 2026",
                                                                             "seed = 2027"))
    built_chunks.clear()
    build(load_assignment(edited), CLASS, out, pdf=False, workers=1)
    assert built_chunks == [s.id for s in CLASS]


def test_a_build_that_fails_midway_leaves_the_previous_one_intact(tmp_path, assignment,
                                                                   monkeypatch):
    out = tmp_path / "out"
    build(assignment, CLASS, out, pdf=False, workers=1)
    before = digests(out)
    real = build_module.write_json
    written = []

    def disk_fills_up(path, data):
        written.append(path)
        if len(written) > 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, data)
    monkeypatch.setattr(build_module, "write_json", disk_fills_up)
    with pytest.raises(DeepdrillError, match="disk is full.*nothing there was changed"):
        build(assignment, [*CLASS, Student("s004", "D")], out, pdf=False, workers=1,
              fresh=True)
    assert digests(out) == before
    assert leftovers(out) == []


def test_an_unwritable_folder_is_one_line(tmp_path, assignment, monkeypatch):
    def read_only(folder):
        raise OSError(errno.EROFS, "Read-only file system", str(folder))
    monkeypatch.setattr(build_module, "staging", read_only)
    with pytest.raises(DeepdrillError, match="could not build into .*read-only file system"):
        build(assignment, CLASS, tmp_path / "out", pdf=False, workers=1)


def test_a_switch_over_cut_short_is_completed_by_the_next_run(tmp_path, assignment,
                                                              monkeypatch):
    out = tmp_path / "out"
    build(assignment, CLASS, out, pdf=False, workers=1)
    renames = []
    real = os.rename

    def killed_after_two(src, dst):
        if len(renames) == 2:
            raise KeyboardInterrupt  # as if killed between two renames
        renames.append(dst)
        real(src, dst)
    monkeypatch.setattr(files.os, "rename", killed_after_two)
    new_class = [CLASS[0], Student("s009", "New")]
    with pytest.raises(KeyboardInterrupt):
        build(assignment, new_class, out, pdf=False, workers=1, fresh=True)
    monkeypatch.setattr(files.os, "rename", real)
    # half switched: the journal says what is left, and the build's janitor (or, had it been
    # killed too, the next run) completes it
    deadline = time.monotonic() + 20
    while (out / files.JOURNAL).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with files.locked(out, "test"):
        files.settle(out)
    assert list(key_lines(out)) == ["s001", "s009"]
    assert sorted(p.name for p in (out / "students").iterdir()) == ["s001", "s009"]
    assert leftovers(out) == [] and not (out / files.JOURNAL).exists()


def test_two_builds_into_one_folder_do_not_mix(tmp_path, assignment, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(files, "LOCK_WAIT_S", 0.2)
    with open(out / files.LOCK, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DeepdrillError, match="another deepdrill run is writing into"):
            build(assignment, CLASS, out, pdf=False, workers=1)
    assert not (out / "key.json").exists()


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working folder lies in ``folder`` (pdflatex runs in the staging
    folder) or whose parent is ``parent``."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if str(folder) in os.readlink(proc / "cwd"):
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def _children_of(pid: int) -> list[int]:
    kids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(proc.name))
    return kids


@pytest.mark.slow
@pytest.mark.usefixtures("needs_pdflatex")
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_kill_9_during_a_build_leaves_no_worker_no_staging_and_the_previous_build(tmp_path,
                                                                                   assignment):
    out = tmp_path / "out"
    build(assignment, CLASS, out, pdf=False, workers=1)
    before = digests(out)
    roster = tmp_path / "roster.csv"
    roster.write_text("id,name\n" + "".join(f"k{i:03d},K {i}\n" for i in range(120)))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "deepdrill"), "build",
                             str(ROOT / "examples/assignment.toml"), "--roster", str(roster),
                             "--out", str(out), "--jobs", "2", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not _children_of(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the workers are typesetting
    workers = _children_of(proc.pid)
    assert workers, "the build had no workers to kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while (_processes_in(out) or any(Path(f"/proc/{w}").exists() and
                                     "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]
                                     for w in workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _processes_in(out), "pdflatex or a worker outlived the killed build"
    deadline = time.monotonic() + 20  # the build's janitor tidies its staging folder
    while leftovers(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(out) == [], "the killed build left its staging folder behind"
    assert digests(out) == before  # the killed build changed nothing
