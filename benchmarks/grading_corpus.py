"""Grading equivalence: many kinds of answers over every example homework, graded by two
versions of deepdrill and compared. Speed work on the grader must leave every report as it
was; this is how it was checked.

    python benchmarks/grading_corpus.py build /tmp/corpus            # keys, ~30,000 files
    python benchmarks/grading_corpus.py grade /tmp/corpus /tmp/before
    ... change the grader ...
    python benchmarks/grading_corpus.py grade /tmp/corpus /tmp/after
    python benchmarks/grading_corpus.py compare /tmp/before /tmp/after

Each student of each homework (120 per homework) hands in one file per kind of answer to
each question: the key; every number rounded to three and to two figures (some as text);
every recognised mistake, exact and rounded; every pair of mistakes; one entry changed to a
number nothing explains; text; nothing; an empty object; zeros; lists of the wrong shape;
half the fields; a mistake with an unknown field. ``compare`` checks the files' order, every
field of every file in ``report.json`` (the time of grading aside) and ``grades.csv``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STUDENTS = 120
DEEPDRILL = str(Path(sys.executable).with_name("deepdrill"))


def rounded(x: Any, rng: random.Random, figures: int = 3) -> Any:
    if isinstance(x, list):
        return [rounded(y, rng, figures) for y in x]
    if isinstance(x, float):
        text = f"{x:.{figures}g}"
        return text if rng.random() < 0.3 else float(text)
    return x


def off(x: Any) -> Any:
    """The value with its first entry a number no mistake explains."""
    if isinstance(x, list):
        return [off(x[0])] + x[1:] if x else x
    return f"3*({x}) + 7" if isinstance(x, str) else x * 3 + 7


def answers_to(variant: dict[str, Any], rng: random.Random) -> list[Any]:
    """One answer to a question per kind, in a fixed order."""
    key, mistakes = variant["answers"], variant["mistakes"]
    out: list[Any] = [dict(key), {k: rounded(x, rng) for k, x in key.items()},
                      {k: rounded(x, rng, 2) for k, x in key.items()}]
    for m in mistakes:
        out.append({**key, **m["answers"]})
        out.append({k: rounded(x, rng) for k, x in {**key, **m["answers"]}.items()})
    for a, b in itertools.combinations(mistakes, 2):
        out.append({**key, **a["answers"], **b["answers"]})
    field = rng.choice(sorted(key))
    out += [{**key, field: off(key[field])}, {k: "garbage" for k in key}, None, {},
            {k: 0 for k in key}, {k: [0] * 3 for k in key},
            {k: x if i % 2 else None for i, (k, x) in enumerate(key.items())}]
    if mistakes:
        m = rng.choice(mistakes)
        out.append({**{k: rounded(x, rng) for k, x in key.items()}, **m["answers"], "extra": 1})
    return out


def build(corpus: Path) -> None:
    for toml in sorted(EXAMPLES.glob("*.toml")):
        home = corpus / toml.stem
        home.mkdir(parents=True, exist_ok=True)
        roster = home / "roster.csv"
        roster.write_text("id,name\n" + "".join(f"s{i:03d},Student {i}\n"
                                                for i in range(STUDENTS)))
        subprocess.run([DEEPDRILL, "build", str(toml), "--roster", str(roster), "--out",
                        str(home / "build"), "--no-pdf"], check=True, capture_output=True)
        lines = (home / "build" / "key.json").read_text().splitlines()[1:-1]
        rng = random.Random(toml.stem)
        files = 0
        for student in (json.loads(line.rstrip(",")) for line in lines):
            kinds = {q: answers_to(v, rng) for q, v in student["variants"].items()}
            folder = home / "submissions" / student["id"]
            folder.mkdir(parents=True, exist_ok=True)
            for j in range(max(map(len, kinds.values()))):
                answers = {q: each[j] if j < len(each) else rng.choice(each)
                           for q, each in kinds.items()}
                (folder / f"{j:02d}.json").write_text(json.dumps(
                    {"student_id": student["id"], "answers": answers}))
                files += 1
        print(f"{toml.stem}: {files} files")


def grade(corpus: Path, out: Path) -> None:
    for home in sorted(p for p in corpus.iterdir() if p.is_dir()):
        subprocess.run([DEEPDRILL, "grade", "--key", str(home / "build" / "key.json"),
                        str(home / "submissions"), "--out", str(out / home.name), "-q"],
                       check=True, capture_output=True)
        print(f"{home.name}: graded")


def compare(before: Path, after: Path) -> int:
    differ = 0
    for old in sorted(p for p in before.iterdir() if p.is_dir()):
        new = after / old.name
        a, b = (json.loads((d / "report.json").read_text()) for d in (old, new))
        for report in (a, b):
            report.pop("graded_at")
        same = a == b and (old / "grades.csv").read_bytes() == (new / "grades.csv").read_bytes()
        if not same:
            differ += 1
            files = {e["file"]: e for e in a["submissions"]}
            changed = [e["file"] for e in b["submissions"] if files.get(e["file"]) != e]
            print(f"{old.name}: DIFFERENT ({len(changed)} files, e.g. {changed[:3]})")
        else:
            print(f"{old.name}: same ({len(a['submissions'])} files)")
    return 1 if differ else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("build").add_argument("corpus", type=Path)
    g = sub.add_parser("grade")
    g.add_argument("corpus", type=Path)
    g.add_argument("out", type=Path)
    c = sub.add_parser("compare")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = ap.parse_args()
    if args.command == "build":
        build(args.corpus)
    elif args.command == "grade":
        grade(args.corpus, args.out)
    else:
        return compare(args.before, args.after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
