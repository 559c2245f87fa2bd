"""Gradescope's side of ``deepdrill export gradescope``: one upload graded into results.json.

The zip's ``run_autograder`` runs ``python -m deepdrill.export.autograder`` once per
submission. It reads the student's JSON file from ``<root>/submission``, decides whose it
is, grades it against that student's stored variant with deepdrill's own grader, and
writes ``<root>/results/results.json``: one test per question (score, max_score, and the
named-mistake and carried-forward feedback as output), after a "Submission file" test
that says what was read. Whatever the upload holds, a results.json is written.

**Whose file it is.** The upload names a student (its ``student_id``); Gradescope's
``submission_metadata.json`` names the account that submitted it (``users[]``: email and,
where the course roster has one, ``sid``). A key student is recognised from the metadata
when their id equals a user's ``sid``, or their email (from the roster given to the
export) equals a user's email. Then:

* recognised, and the file names that student (or names no one): graded on their numbers;
* recognised, and the file names *another* student on the roster: not graded (0 points),
  as ``deepdrill grade`` counts such a file for neither: one student's answers are never
  scored on a classmate's numbers;
* recognised, and the file names no student on the roster (a typo): graded on the
  submitter's own numbers, with a note;
* not recognised (no sid in the metadata, no roster emails): graded on the numbers of the
  student the file names, and the output says the identity came from the file; with
  ``strict`` in the zip's settings, not graded.

The root is ``/autograder``, or ``--root``, or ``$DEEPDRILL_AUTOGRADER_ROOT`` (for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT_ENV = "DEEPDRILL_AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
KEY_FILE = "key.json"
CONFIG_FILE = "deepdrill_gradescope.json"
CONFIG_FORMAT = "deepdrill-gradescope/1"
VISIBILITIES = ("hidden", "after_due_date", "after_published", "visible")
SUBMISSION_TEST = "Submission file"


@dataclass(frozen=True)
class Settings:
    """What the export put beside the key in the zip."""

    emails: dict[str, str] = field(default_factory=dict)  # casefolded email -> student id
    strict: bool = False  # grade only students recognised from Gradescope's metadata
    expected: str = "after_due_date"  # visibility of the expected answers, or "none"
    max_bytes: int = 1_000_000

    def to_json(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Settings:
        if data.get("format") != CONFIG_FORMAT:
            raise ValueError(f"{CONFIG_FILE} is {data.get('format')!r}, not {CONFIG_FORMAT}")
        return cls(dict(data["emails"]), bool(data["strict"]), str(data["expected"]),
                   int(data["max_bytes"]))


@dataclass
class Verdict:
    """Whose variant the upload is graded on (None: not graded), and what to tell them."""

    student: str | None
    messages: list[str]


# -- whose file -------------------------------------------------------------------------------

def recognised(metadata: Any, students: set[str], settings: Settings) -> list[str]:
    """The key's students named by Gradescope's metadata (several for a group submission)."""
    users = metadata.get("users") if isinstance(metadata, dict) else None
    found: list[str] = []
    for u in users if isinstance(users, list) else []:
        if not isinstance(u, dict):
            continue
        sid = str(u.get("sid") or "").strip()
        email = str(u.get("email") or "").strip().casefold()
        sid_match = sid if sid in students else None
        who = sid_match or settings.emails.get(email)
        if who in students and who not in found:
            found.append(who)
    return found


def decide(claimed: str | None, known: list[str], students: set[str],
           settings: Settings) -> Verdict:
    """Whose numbers to grade on; see the module's docstring for the rules."""
    if known:
        return _decide_known(claimed, known, students)
    if settings.strict:
        return Verdict(None, ["your Gradescope account is not on this assignment's roster, so "
                              "the file was not graded; please ask your instructor"])
    if claimed is None:
        return Verdict(None, ['the file has no "student_id"; write the id from your problem '
                              'sheet there and submit again'])
    if claimed not in students:
        return Verdict(None, [f"student_id {claimed!r} is not on this assignment's roster; "
                              f"check it against your problem sheet and submit again"])
    return Verdict(claimed, [f"graded as student {claimed}, the student_id in the file"])


def _decide_known(claimed: str | None, known: list[str], students: set[str]) -> Verdict:
    if claimed in known:
        return Verdict(claimed, [f"graded as student {claimed}, your Gradescope account"])
    if claimed is not None and claimed in students:
        return Verdict(None, [f"the file is for student {claimed}, but was submitted from the "
                              f"account of {' / '.join(known)}: not graded; submit the file "
                              f"for your own problem sheet"])
    if len(known) > 1:
        return Verdict(None, [f"a group submission ({', '.join(known)}): the file's "
                              f'"student_id" must say whose problem sheet it answers'])
    why = "no student_id" if claimed is None else f"student_id {claimed!r}, not on the roster,"
    return Verdict(known[0], [f"the file has {why} so it was graded as student {known[0]}, "
                              f"your Gradescope account"])


# -- the upload --------------------------------------------------------------------------------

def find_upload(folder: Path) -> tuple[Path | None, str]:
    """The one file to grade among the uploaded ones, or None and why not."""
    files = sorted(p for p in folder.rglob("*") if _visible(p.relative_to(folder))
                   and p.is_file() and not p.is_symlink()) if folder.is_dir() else []
    jsons = [p for p in files if p.suffix.lower() == ".json"]
    named = [p for p in jsons if p.name.lower() == "submission.json"]
    if len(jsons) == 1 or len(named) == 1:
        return (jsons[0] if len(jsons) == 1 else named[0]), ""
    names = ", ".join(p.name for p in files[:10])
    if jsons:
        return None, f"upload exactly one .json file (found: {names})"
    if len(files) == 1:
        return files[0], ""
    return None, ("no file was uploaded" if not files
                  else f"no .json file was uploaded (found: {names})")


def _visible(relative: Path) -> bool:
    return not any(part.startswith(".") or part == "__MACOSX" for part in relative.parts)


# -- grading ---------------------------------------------------------------------------------

def autograde(root: Path) -> dict[str, Any]:
    """The results object for the submission laid out under ``root``."""
    from deepdrill.grader.batch import load_key
    from deepdrill.grader.submission import read_submission

    started = time.monotonic()
    source = root / "source"
    key = load_key(source / KEY_FILE)
    settings = Settings.from_json(json.loads((source / CONFIG_FILE).read_text(encoding="utf-8")))
    metadata = _read_metadata(root / "submission_metadata.json")
    known = recognised(metadata, set(key.students), settings)
    print(f"deepdrill {_version()} from {Path(__file__).parent}; metadata users: "
          f"{_users(metadata)}; recognised: {known or 'nobody'}")
    path, problem = find_upload(root / "submission")
    if path is None:
        results = _not_graded(key, [problem], settings)
    else:
        sub = read_submission(path, settings.max_bytes)
        if sub.error:
            results = _not_graded(key, [f"{path.name}: {sub.error}", *sub.notes], settings)
        else:
            verdict = decide(sub.student_id, known, set(key.students), settings)
            results = _graded(key, verdict, sub.answers or {}, [*sub.notes], path.name, settings)
    results["execution_time"] = round(time.monotonic() - started, 3)
    return results


def _graded(key: Any, verdict: Verdict, answers: dict[str, Any], notes: list[str],
            filename: str, settings: Settings) -> dict[str, Any]:
    from deepdrill.grader.score import grade_question

    if verdict.student is None:
        return _not_graded(key, [*verdict.messages, *notes], settings, student=None)
    student = key.students[verdict.student]
    unknown = sorted(set(answers) - {q.label for q in key.questions})
    if unknown:
        notes.append("ignored unknown question(s): " + ", ".join(u[:20] for u in unknown[:10]))
    graded = {q.label: grade_question(student.variants[q.label], answers.get(q.label),
                                      q.points, q.policy) for q in key.questions}
    tests = [_submission_test(True, [f"read {filename}", *verdict.messages, *notes])]
    tests += [_question_test(i, q, graded[q.label]) for i, q in enumerate(key.questions, 1)]
    tests += _expected_tests(key, student, settings)
    score = sum(r.score for r in graded.values())
    carried = sum(r.carried for r in graded.values())
    summary = (f"{student.name} ({student.id}): {score:.4g} of {key.max_score:g} points on your "
               f"own numbers" + (f", {carried:.4g} of them carried forward from your own "
                                 f"earlier values" if carried else "") + ".")
    return _results(round(score, 4), summary, tests, student.id, "graded")


def _not_graded(key: Any, messages: list[str], settings: Settings,
                student: str | None = None) -> dict[str, Any]:
    why = messages[0] if messages else "not graded"
    tests = [_submission_test(False, messages)]
    tests += [{"name": _question_name(q), "number": str(i), "score": 0.0,
               "max_score": q.points, "output": f"not graded: {why}"}
              for i, q in enumerate(key.questions, 1)]
    return _results(0.0, f"Not graded: {why}", tests, student, "not_graded")


def _results(score: float, output: str, tests: list[dict[str, Any]], student: str | None,
             status: str) -> dict[str, Any]:
    return {"score": score, "output": output, "output_format": "text",
            "test_output_format": "text", "test_name_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests,
            "extra_data": {"deepdrill_version": _version(), "student_id": student,
                           "status": status}}


def _submission_test(ok: bool, lines: list[str]) -> dict[str, Any]:
    return {"name": SUBMISSION_TEST, "number": "0", "score": 0.0, "max_score": 0.0,
            "status": "passed" if ok else "failed", "output": "\n".join(lines)}


def _question_test(number: int, q: Any, result: Any) -> dict[str, Any]:
    lines = [f"{name}: {f.score:.4g}/{f.max_score:.4g}  {f.feedback}"
             for name, f in result.fields.items()]
    lines += [f"note: {n}" for n in result.notes]
    tags = [f"mistake:{f.mistake}" for f in result.fields.values() if f.mistake]
    if result.carried:
        tags.append("carried_forward")
    test = {"name": _question_name(q), "number": str(number), "score": round(result.score, 4),
            "max_score": q.points, "output": "\n".join(lines)}
    return {**test, "tags": sorted(set(tags))} if tags else test


def _expected_tests(key: Any, student: Any, settings: Settings) -> list[dict[str, Any]]:
    if settings.expected not in VISIBILITIES:
        return []
    lines = [f"{q.label}.{name}: {json.dumps(value)}"
             for q in key.questions
             for name, value in student.variants[q.label].answers.items()]
    return [{"name": "Expected answers", "number": str(len(key.questions) + 1), "score": 0.0,
             "max_score": 0.0, "status": "passed", "visibility": settings.expected,
             "output": "\n".join(lines)}]


def _question_name(q: Any) -> str:
    from deepdrill.generator.exercise import get

    try:
        return f"{q.label}: {get(q.type).title}"
    except Exception:  # a title is only a label: never let it cost the grade
        return f"{q.label}: {q.type}"


def _read_metadata(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        print(f"submission metadata not read ({err}); students are known by their files only")
        return None


def _users(metadata: Any) -> str:
    users = metadata.get("users") if isinstance(metadata, dict) else None
    if not isinstance(users, list):
        return "none"
    return "; ".join(f"{u.get('email')} sid={u.get('sid')}" for u in users if isinstance(u, dict))


def _version() -> str:
    from deepdrill import __version__

    return __version__


# -- entry point -------------------------------------------------------------------------------

def write_results(results: dict[str, Any], root: Path) -> Path:
    """results.json written whole (a temporary file renamed), never half a file."""
    folder = root / "results"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / ".results.json.tmp"
    tmp.write_text(json.dumps(results, ensure_ascii=False, allow_nan=False, indent=1) + "\n",
                   encoding="utf-8")
    os.replace(tmp, folder / "results.json")
    return folder / "results.json"


def failed(err: BaseException) -> dict[str, Any]:
    """What the student sees when deepdrill itself failed: 0 points and who to tell."""
    return {"score": 0.0, "output": "The autograder failed on this submission (a problem in "
                                    "the autograder, not necessarily in your file); please tell "
                                    "your instructor.", "output_format": "text", "tests": [],
            "extra_data": {"error": f"{type(err).__name__}: {err}"[:500]}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Grade one Gradescope submission with deepdrill.")
    parser.add_argument("--root", type=Path,
                        default=Path(os.environ.get(ROOT_ENV) or DEFAULT_ROOT),
                        help=f"Gradescope's folder [default: ${ROOT_ENV} or {DEFAULT_ROOT}]")
    root = parser.parse_args(argv).root
    try:
        results = autograde(root)
    except Exception as err:  # never Gradescope's bare "autograder failed"
        traceback.print_exc(file=sys.stdout)  # stdout: instructors only
        results = failed(err)
    write_results(results, root)
    print(f"score {results['score']}: {results['output']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
