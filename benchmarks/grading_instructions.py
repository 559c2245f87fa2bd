"""Instructions per graded submission, counted by valgrind's callgrind: a measure of the
grader's work that does not drift with the VM's speed (its timings drift by up to a factor
of two between sessions, and by 10-20 % within one).

    python benchmarks/grading_instructions.py                 # 300 students, whole pipeline
    python benchmarks/grading_instructions.py --part keyline  # one part of it only

It builds the class-scale benchmark's assignment (``class_scale.py``) for a roster without
PDFs, writes the same mix of submissions, and runs one process under callgrind that grades
N of them (read, key line, questions, packing the results, as a grading worker does) and
one that grades none; the difference over N is the cost of a submission. ``--part`` counts
only reading the file (``read``), parsing the student's key line into variants
(``keyline``), or grading without packing the results (``grade``). Valgrind runs Python
about 50 times slower: 300 submissions take about a minute.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from class_scale import ASSIGNMENT, write_submissions  # noqa: E402

from deepdrill.generator.assignment import load_assignment, parse_roster  # noqa: E402
from deepdrill.generator.build import build  # noqa: E402

# What the measured process does: load the key, then grade the first N files in order.
CHILD = """
import gc, sys
from pathlib import Path
import deepdrill.generator.build
from deepdrill.generator.exercise import all_types
import deepdrill.grader.batch as batch
from deepdrill.grader.submission import read_submission
all_types()
n, part, key_path, subs = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
files = batch.collect_files([subs])[0][:n]
key = batch.load_key(key_path)
gc.freeze(); gc.disable()  # as in a grading worker
for f in files:
    if part == "all":
        batch._grade_file(key, f, batch.MAX_BYTES).pack()
    elif part == "grade":
        batch._grade_file(key, f, batch.MAX_BYTES)
    elif part == "read":
        read_submission(f)
    elif part == "keyline":
        key.students[batch.file_stem(f)].variants
    key.students[batch.file_stem(f)].forget_variants()  # as a worker does
"""


def instructions(n: int, part: str, key: Path, subs: Path) -> int:
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                           sys.executable, "-c", CHILD, str(n), part, str(key), str(subs)],
                          capture_output=True, text=True, check=True)
    found = re.search(r"Collected\s*:\s*(\d+)", done.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--students", type=int, default=300, help="submissions to grade (300)")
    ap.add_argument("--part", choices=("all", "grade", "read", "keyline"), default="all")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: sudo apt-get install valgrind", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="deepdrill-instr-"))
    try:
        (tmp / "a.toml").write_text(ASSIGNMENT)
        roster = "id,name\n" + "".join(f"s{i:04d},Student {i}\n" for i in range(args.students))
        build(load_assignment(tmp / "a.toml"), parse_roster(roster), tmp / "out", pdf=False)
        write_submissions(tmp / "out" / "key.json", tmp / "subs")
        with ThreadPoolExecutor(2) as pool:  # the two runs side by side
            none, some = pool.map(lambda n: instructions(n, args.part, tmp / "out" / "key.json",
                                                         tmp / "subs"), (0, args.students))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per = (some - none) / args.students
    print(f"{args.part}: {per / 1e6:.3f} million instructions per submission "
          f"({args.students} submissions of the class-scale benchmark's assignment)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
