"""Class-scale benchmark: build a five-question assignment for a roster with PDFs, then grade.

    python benchmarks/class_scale.py            # 500 students, PDFs on
    python benchmarks/class_scale.py --students 100 --no-pdf

Prints the seconds of each phase, per student, the throughput, and the ratio to
the targets (build with PDFs for 500 students under 20 s; grading 500
submissions under 1 s) on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from deepdrill.generator.assignment import load_assignment, parse_roster
from deepdrill.generator.build import build
from deepdrill.grader.batch import collect_files, grade_files, load_key, write_reports

BUILD_TARGET_S = 20.0  # for 500 students, with PDFs
GRADE_TARGET_S = 1.0  # for 500 submissions
REFERENCE_STUDENTS = 500

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


def write_submissions(key_path: Path, folder: Path, seed: int = 0) -> int:
    """One submission per student: right, a typical mistake, or half garbage."""
    rng = random.Random(seed)
    key = json.loads(key_path.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    for s in key["students"]:
        answers = {}
        for label, v in s["variants"].items():
            roll = rng.random()
            a = dict(v["answers"])
            if roll < 0.3 and v["mistakes"]:
                a.update(v["mistakes"][0]["answers"])
            elif roll < 0.4:
                a = {k: "garbage" for k in a}
            answers[label] = a
        (folder / f"{s['id']}.json").write_text(json.dumps({"student_id": s["id"],
                                                             "answers": answers}))
    return len(key["students"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=REFERENCE_STUDENTS)
    ap.add_argument("--no-pdf", action="store_true")
    ap.add_argument("--keep", type=Path, help="keep the output in this folder")
    ap.add_argument("--assignment", type=Path, help="another assignment file to build")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="deepdrill-bench-"))
    out = args.keep or tmp / "out"
    try:
        (tmp / "a.toml").write_text(ASSIGNMENT)
        assignment = load_assignment(args.assignment or tmp / "a.toml")
        roster = "id,name\n" + "".join(f"s{i:04d},Student {i}\n" for i in range(args.students))
        students = parse_roster(roster)
        phases: dict[str, float] = {}

        def progress(label, total, body):
            t = time.perf_counter()
            result = body(lambda n: None)
            phases[label] = time.perf_counter() - t
            return result

        t0 = time.perf_counter()
        build(assignment, students, out, pdf=not args.no_pdf, progress=progress)
        build_s = time.perf_counter() - t0

        n_subs = write_submissions(out / "key.json", tmp / "subs")
        t0 = time.perf_counter()
        key = load_key(out / "key.json")
        report = grade_files(key, collect_files([tmp / "subs"]))
        write_reports(report, tmp / "grades")
        grade_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    n = args.students
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")
    print(f"build, {n} students x 5 questions, PDFs {'off' if args.no_pdf else 'on'}:")
    for label, s in phases.items():
        print(f"  {label:<12} {s:7.2f} s")
    print(f"  {'total':<12} {build_s:7.2f} s   {1000 * build_s / n:6.1f} ms/student   "
          f"{n / build_s:6.1f} students/s")
    scaled = build_s * REFERENCE_STUDENTS / n
    if not args.no_pdf:
        print(f"  vs target: {scaled:.2f} s per 500 students / {BUILD_TARGET_S:.0f} s = "
              f"{scaled / BUILD_TARGET_S:.2f} (below 1 meets it)")
    print(f"grade {n_subs} submissions:")
    print(f"  {'total':<12} {grade_s:7.2f} s   {1000 * grade_s / n_subs:6.2f} ms/submission   "
          f"{n_subs / grade_s:6.0f} submissions/s")
    g_scaled = grade_s * REFERENCE_STUDENTS / n_subs
    print(f"  vs target: {g_scaled:.2f} s per 500 submissions / {GRADE_TARGET_S:.0f} s = "
          f"{g_scaled / GRADE_TARGET_S:.2f} (below 1 meets it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
