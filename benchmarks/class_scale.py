"""Class-scale benchmark: build a five-question assignment for a roster with PDFs, then grade.

    python benchmarks/class_scale.py            # 500 students, PDFs on
    python benchmarks/class_scale.py --students 10000 --no-pdf   # the grading target
    python benchmarks/class_scale.py --repeat 5    # median and slowest of 5 runs

Prints the seconds of each phase, per student, the throughput, the build's ratio to
the LaTeX floor (pdflatex alone over the same documents on every core), and the ratio to
the targets on the 2-core reference machine: build with PDFs for 500 students
under 20 s; grade 10,000 submissions (carried-forward credit on, the class's
answers mixed as MIX says) under 3 s, timed as a TA waits for it: the `deepdrill grade`
command in a process of its own, from Python's start to both reports written (the same
grading in the benchmark's own process, imports done, is printed beside it). Each run
also times a fixed loop on every core just before grading (the machine check): this
VM's speed drifts, and grading with it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from deepdrill.generator.assignment import load_assignment, parse_roster
from deepdrill.generator.build import build, chunk_size, make_variants, sheets
from deepdrill.generator.pdf import compile_tex
from deepdrill.generator.render import render_document
from deepdrill.grader.batch import collect_files, grade_files, load_key, write_reports

BUILD_TARGET_S = 20.0  # for 500 students, with PDFs
GRADE_TARGET_S = 3.0  # for GRADE_REFERENCE submissions
GRADE_REFERENCE = 10_000
REFERENCE_STUDENTS = 500
CHECK_LOOP = 5_000_000  # additions in the machine check's loop
CHECK_REFERENCE_S = 0.23  # what it took on 2026-11-30, a quiet moment

ASSIGNMENT = """
title = "Benchmark: five questions"
course = "DL 101"
seed = 7

[[questions]]
type = "cnn_layer_table"
points = 10

[[questions]]
type = "conv2d_forward"
points = 10
options = { bias = true }

[[questions]]
type = "cross_entropy"
points = 10

[[questions]]
type = "batchnorm_forward"
points = 10

[[questions]]
type = "conv_cost"
points = 10
"""


# What a class hands in, per question (the rest of the shares: the key verbatim).
MIX = {
    "rounded": 0.15,  # every real number rounded to three figures, some written as text
    "mistake": 0.25,  # a recognised mistake, later fields computed from it (carried forward)
    "slip": 0.10,  # one entry of one field wrong by a number no mistake explains
    "garbage": 0.05,  # text where the numbers go
    "blank": 0.05,  # nothing for this question
}


def student_answers(v: dict, rng: random.Random) -> dict | None:
    """One student's answers to one stored variant, drawn from MIX."""
    roll, a = rng.random(), dict(v["answers"])
    for kind, share in MIX.items():
        if roll < share:
            break
        roll -= share
    else:
        return a
    if kind == "rounded":
        return {k: _rounded(x, rng) for k, x in a.items()}
    if kind == "mistake" and v["mistakes"]:
        return {**a, **rng.choice(v["mistakes"])["answers"]}
    if kind == "slip":
        name = rng.choice(sorted(a))
        return {**a, name: _one_off(a[name], rng)}
    if kind == "garbage":
        return {k: "garbage" for k in a}
    return None if kind == "blank" else a


def _rounded(x, rng):
    if isinstance(x, list):
        return [_rounded(y, rng) for y in x]
    if isinstance(x, float):
        return f"{x:.3g}" if rng.random() < 0.3 else float(f"{x:.3g}")
    return x


def _one_off(x, rng):
    """The value with its first entry changed to a number nothing explains (a formula:
    one nothing explains either)."""
    if isinstance(x, list):
        return [_one_off(x[0], rng)] + x[1:] if x else x
    if isinstance(x, str):
        return f"3*({x}) + 7"
    return x * 3 + 7


def write_submissions(key_path: Path, folder: Path, seed: int = 0) -> int:
    """One submission per student, each question answered as MIX says."""
    rng = random.Random(seed)
    key = json.loads(key_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for s in key["students"]:
        answers = {label: student_answers(v, rng) for label, v in s["variants"].items()}
        (folder / f"{s['id']}.json").write_text(json.dumps({"student_id": s["id"],
                                                             "answers": answers}))
    return len(key["students"])


def cpu_seconds() -> float:
    """CPU time of this process and every finished child (workers, pdflatex), user + system."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _loop(_: int) -> float:
    t0, x = time.perf_counter(), 0
    for i in range(CHECK_LOOP):
        x += i
    return time.perf_counter() - t0


def machine_check() -> float:
    """Seconds a fixed pure-Python loop takes on every core at once (the slowest core):
    this VM's speed at the moment, to read the grading time against. The same code's
    grading time was seen to vary by a quarter within an hour, and this with it."""
    workers = os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
        return max(pool.map(_loop, range(workers)))


def latex_floor(assignment, students, tmp: Path) -> float:
    """Seconds pdflatex alone takes over the build's documents (the same chunks, both
    sheet kinds), on every core: the least a build with PDFs can take."""
    workers = os.cpu_count() or 1
    size = chunk_size(len(students), workers)
    jobs = []
    for n, a in enumerate(range(0, len(students), size)):
        chunk = sheets(assignment, make_variants(assignment, students[a:a + size]))
        for solutions in (False, True):
            work = tmp / f"floor{n}-{solutions}"
            work.mkdir(parents=True)
            jobs.append((render_document(chunk, solutions), work))
    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: compile_tex(*job), jobs))
    return time.perf_counter() - t0


def compile_bytecode() -> None:
    """deepdrill's modules compiled to bytecode, as pip compiles a package it installs and
    as Python writes it on a module's first import. A machine that sets
    PYTHONDONTWRITEBYTECODE (this workplace's do) never writes it: every run compiled the
    modules changed since their last .pyc again, some 30 ms of each `deepdrill grade`
    that no TA waits for."""
    import compileall

    import deepdrill
    import deepdrill.generator
    import deepdrill.grader
    for package in (deepdrill, deepdrill.generator, deepdrill.grader):
        for folder in package.__path__:
            compileall.compile_dir(folder, quiet=1)


def run_once(args: argparse.Namespace) -> dict[str, float]:
    """One build and one grading run, timed: wall-clock and CPU seconds of each."""
    tmp = Path(tempfile.mkdtemp(prefix="deepdrill-bench-"))
    out = args.keep or tmp / "out"
    try:
        (tmp / "a.toml").write_text(ASSIGNMENT)
        assignment = load_assignment(args.assignment or tmp / "a.toml")
        roster = "id,name\n" + "".join(f"s{i:04d},Student {i}\n" for i in range(args.students))
        students = parse_roster(roster)

        t0, c0 = time.perf_counter(), cpu_seconds()
        build(assignment, students, out, pdf=not args.no_pdf)
        build_s, build_cpu = time.perf_counter() - t0, cpu_seconds() - c0

        floor_s = 0.0 if args.no_pdf else latex_floor(assignment, students, tmp)
        n_subs = write_submissions(out / "key.json", tmp / "subs")
        check_s = machine_check()
        # As a TA grades: the command in a process of its own (Python's start and the
        # imports included), the summary table printed as it is on a terminal.
        t0, c0 = time.perf_counter(), cpu_seconds()
        ran = subprocess.run([sys.executable, "-c", "from deepdrill.cli import main; main()",
                              "grade", "--key", str(out / "key.json"), "--out",
                              str(tmp / "grades"), str(tmp / "subs")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        grade_s, grade_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        csv = tmp / "grades" / "grades.csv"
        rows = len(csv.read_text().splitlines()) - 1 if csv.exists() else 0
        if ran.returncode or rows != n_subs:
            sys.exit(f"deepdrill grade failed ({ran.returncode}; {rows} rows in grades.csv):\n"
                     f"{ran.stderr}")
        # As earlier benchmarks did: load, grade and write in this process (imports done).
        t0 = time.perf_counter()
        key = load_key(out / "key.json")
        report = grade_files(key, collect_files([tmp / "subs"])[0])
        write_reports(report, tmp / "grades_here")
        here_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"build_s": build_s, "build_cpu": build_cpu, "grade_s": grade_s,
            "grade_cpu": grade_cpu, "here_s": here_s, "submissions": n_subs,
            "floor_s": floor_s, "check_s": check_s}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=REFERENCE_STUDENTS)
    ap.add_argument("--no-pdf", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="run N times and report the median and the slowest run")
    ap.add_argument("--keep", type=Path, help="keep the output in this folder")
    ap.add_argument("--assignment", type=Path, help="another assignment file to build")
    args = ap.parse_args()

    n = args.students
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; "
          f"{n} students x 5 questions, PDFs {'off' if args.no_pdf else 'on'}")
    compile_bytecode()
    runs = []
    for i in range(args.repeat):
        r = run_once(args)
        runs.append(r)
        floor = f" (pdflatex alone: {r['floor_s']:.2f} s)" if r["floor_s"] else ""
        print(f"run {i + 1}: build {r['build_s']:6.2f} s wall, {r['build_cpu']:6.1f} s CPU{floor};"
              f"   grade {r['grade_s']:5.2f} s wall, {r['grade_cpu']:5.2f} s CPU"
              f" (in this process: {r['here_s']:.2f} s)"
              f"   (machine check {r['check_s']:.3f} s)", flush=True)

    n_subs = runs[0]["submissions"]
    build_s = [r["build_s"] for r in runs]
    grade_s = [r["grade_s"] for r in runs]
    print(f"build ({len(runs)} run(s)):")
    print(f"  median {statistics.median(build_s):6.2f} s   slowest {max(build_s):6.2f} s   "
          f"{1000 * statistics.median(build_s) / n:6.1f} ms/student   "
          f"{n / statistics.median(build_s):6.1f} students/s")
    if not args.no_pdf:
        floor = statistics.median(r["floor_s"] for r in runs)
        print(f"  the LaTeX floor (pdflatex alone over the same documents, every core): "
              f"{floor:.2f} s; build / floor = {statistics.median(build_s) / floor:.2f} "
              f"(aim: 1.2 or less)")
        for what, value in (("median", statistics.median(build_s)), ("slowest", max(build_s))):
            scaled = value * REFERENCE_STUDENTS / n
            print(f"  vs target ({what}): {scaled:.2f} s per 500 students / "
                  f"{BUILD_TARGET_S:.0f} s = {scaled / BUILD_TARGET_S:.2f} (below 1 meets it)")
    print(f"grade {n_subs} submissions ({len(runs)} run(s)), timed as a TA waits for "
          f"`deepdrill grade` (a fresh process: start, imports, key, grading, both reports):")
    print(f"  median {statistics.median(grade_s):6.2f} s   slowest {max(grade_s):6.2f} s   "
          f"{1000 * statistics.median(grade_s) / n_subs:6.2f} ms/submission   "
          f"{n_subs / statistics.median(grade_s):6.0f} submissions/s")
    for what, value in (("median", statistics.median(grade_s)), ("slowest", max(grade_s))):
        scaled = value * GRADE_REFERENCE / n_subs
        print(f"  vs target ({what}): {scaled:.2f} s per {GRADE_REFERENCE:,} submissions / "
              f"{GRADE_TARGET_S:.0f} s = {scaled / GRADE_TARGET_S:.2f} (below 1 meets it)")
    print(f"  in the benchmark's own process (imports done; what earlier sessions reported): "
          f"median {statistics.median(r['here_s'] for r in runs):.2f} s")
    print(f"machine check (a fixed loop on every core at once, just before grading): median "
          f"{statistics.median(r['check_s'] for r in runs):.3f} s, slowest "
          f"{max(r['check_s'] for r in runs):.3f} s; {CHECK_REFERENCE_S} s on a quiet day")
    print("CPU seconds count the work on every core; the VM's speed drifts between sessions, "
          "so compare runs made in one session, and read them against the machine check.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
