"""Export benchmark: Moodle XML and Canvas QTI for a class's variants, per variant.

    python benchmarks/export_speed.py                  # 500 variants of a five-question assignment
    python benchmarks/export_speed.py --variants 2000 --repeat 5

Builds the assignment with `--no-pdf` first (not timed), then times loading the key plus
writing each export, and prints milliseconds per variant (one student's five questions)
against the target of 3 ms per variant on the 2-core reference machine: wall-clock, and
this process's CPU time (steadier when other work shares the machine). Each export loads
the key afresh and keeps nothing from the one before. The assignment's types have no
figures: a figure costs a pdflatex run, timed by the build, not here.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from deepdrill.export.moodle import bank_xml
from deepdrill.export.qti import quiz_zip
from deepdrill.export.questions import load_export
from deepdrill.generator.assignment import numbered_students, parse_assignment
from deepdrill.generator.build import build

TARGET_MS = 3.0  # per variant (a student's whole assignment), each export
ASSIGNMENT = {
    "title": "Export benchmark", "course": "DL 101", "seed": 2026,
    "questions": [
        {"type": "conv2d_forward", "points": 10, "params": {"padding": 1},
         "options": {"bias": True}},
        {"type": "softmax", "points": 4},
        {"type": "cross_entropy", "points": 8, "options": {"batch": 2}},
        {"type": "batchnorm_forward", "points": 8},
        {"type": "cnn_layer_table", "points": 10},
    ],
}


def run_once(key: Path, variants: int) -> dict[str, float]:
    """Seconds (wall-clock, and CPU) for each export, each from the key on disk (as the
    CLI runs it)."""
    times = {}
    for name, write in (("moodle", bank_xml), ("canvas-qti", quiz_zip)):
        start, cpu = time.perf_counter(), time.process_time()
        data = write(load_export(key, variants))
        times[name] = time.perf_counter() - start
        times[f"{name} cpu"] = time.process_time() - cpu
        times[f"{name} bytes"] = len(data)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    assignment = parse_assignment(ASSIGNMENT, source="benchmark")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "build"
        build(assignment, numbered_students(args.variants), out, pdf=False)
        runs = [run_once(out / "key.json", args.variants) for _ in range(args.repeat)]
    print(f"{args.variants} variants of a {len(ASSIGNMENT['questions'])}-question assignment, "
          f"median of {args.repeat} runs (key loading included):")
    for name in ("moodle", "canvas-qti"):
        seconds = statistics.median(r[name] for r in runs)
        per = 1000 * seconds / args.variants
        cpu = 1000 * statistics.median(r[f"{name} cpu"] for r in runs) / args.variants
        size = runs[0][f"{name} bytes"] / 1e6
        print(f"  {name:<11} {seconds:6.2f} s  {per:5.2f} ms/variant  ({per / TARGET_MS:.2f} x "
              f"the {TARGET_MS:g} ms target; CPU {cpu:5.2f} ms/variant)  {size:.1f} MB")


if __name__ == "__main__":
    main()
