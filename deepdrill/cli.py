"""The `deepdrill` command: list, solve, check, build, grade, lookup, schema, export."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from deepdrill import __version__
from deepdrill.errors import DeepdrillError

MAIN_HELP = """deepdrill: randomized deep-learning exercises, worked solutions as PDF, and grading.

\b
Typical use:
  deepdrill list                                    exercise types
  deepdrill solve conv2d_forward --params '{...}'   a worked solution
  deepdrill build set3.toml --roster class.csv      one sheet per student
  deepdrill grade --key output/set3/key.json submissions/
  deepdrill lookup --key output/set3/key.json 4VA4-7P75   whose sheet or question

Run `deepdrill COMMAND --help` for each command's options.
"""


def _load_json_arg(value: str | None, what: str) -> Any:
    """JSON given inline, as @FILE, or @- for standard input."""
    if value is None:
        return None
    try:
        if value.startswith("@"):
            text = sys.stdin.read() if value == "@-" else Path(value[1:]).read_text(encoding="utf-8")
        else:
            text = value
        return json.loads(text)
    except OSError as err:
        raise DeepdrillError(f"{what}: cannot read {value[1:]}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise DeepdrillError(f"{what} is not valid JSON ({err.msg} at column {err.colno}); "
                             f"quote it in single quotes, or pass @FILE") from None


def _object_arg(value: str | None, what: str) -> dict[str, Any]:
    data = _load_json_arg(value, what)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DeepdrillError(f"{what} must be a JSON object, e.g. '{{\"logits\": [1, 2, 0]}}'")
    return data


class _Group(click.Group):
    """Prints deepdrill's own errors as one line (the traceback only with --debug).

    The ``export`` commands are imported only when asked for (or listed in --help): they
    bring lxml and jsonschema, a tenth of a second of every other command's start.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), "export"})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "export" and name not in self.commands:
            from deepdrill.export.commands import export

            self.add_command(export)
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DeepdrillError as err:
            if ctx.params.get("debug"):
                import traceback

                traceback.print_exc()
            click.secho(f"error: {err}", fg="red", err=True)
            sys.exit(2)


@click.group(cls=_Group, help=MAIN_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="deepdrill")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def cli(debug: bool) -> None:
    pass


# -- list ---------------------------------------------------------------------

@cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_types(as_json: bool) -> None:
    """List the exercise types, one line each."""
    from deepdrill.generator.exercise import all_types

    types = all_types()
    if as_json:
        click.echo(json.dumps([{"id": t.id, "title": t.title, "summary": t.summary,
                                "params": list(t.params), "options": t.options}
                               for t in types], indent=1))
        return
    width = max(len(t.id) for t in types)
    for t in types:
        click.echo(f"{t.id:<{width}}  {t.summary}")


# -- solve and check -------------------------------------------------------------

_params_opt = click.option("--params", "params_arg", metavar="JSON|@FILE",
                           help="Parameters to pin; any left out are randomized from the seed.")
_options_opt = click.option("--options", "options_arg", metavar="JSON|@FILE",
                            help="Size options of the type (see `deepdrill list --json`).")
_seed_opt = click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                         help="Seed for the parameters left out.")


def _variant(type_id: str, params_arg: str | None, options_arg: str | None, seed: int):
    from deepdrill.generator.exercise import make_variant

    return make_variant(type_id, seed, _object_arg(params_arg, "--params"),
                        _object_arg(options_arg, "--options"))


@cli.command()
@click.argument("type_id", metavar="TYPE")
@_params_opt
@_options_opt
@_seed_opt
@click.option("--json", "fmt", flag_value="json", help="Print {type, seed, params, answers}.")
@click.option("--tex", "fmt", flag_value="tex", help="Print the worked solution as LaTeX.")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the worked solution as a PDF to this file.")
def solve(type_id: str, params_arg: str | None, options_arg: str | None, seed: int,
          fmt: str | None, pdf_out: Path | None) -> None:
    """The worked solution of exercise TYPE.

    \b
    Example:
      deepdrill solve conv2d_forward --json \\
        --params '{"input": [[1,2,0],[0,1,3],[2,1,1]], "kernel": [[1,-1],[0,2]]}'
    """
    from deepdrill.generator.render import Question, Sheet, render_document

    v = _variant(type_id, params_arg, options_arg, seed)
    if pdf_out is not None or fmt == "tex":
        from deepdrill.generator.exercise import get

        sheet = Sheet(get(type_id).title, "deepdrill", [Question(1, 1, v)])
        tex = render_document([sheet], solutions=True)
        if fmt == "tex":
            click.echo(tex, nl=False)
        if pdf_out is not None:
            _compile_one(tex, pdf_out)
            click.echo(f"wrote {pdf_out}", err=fmt == "tex")
        return
    if fmt == "json":
        click.echo(json.dumps({"type": v.type, "seed": v.seed, "params": v.params,
                               "answers": v.answers}))
        return
    click.echo(f"{v.type} (seed {v.seed})\nparameters:")
    for k, val in v.params.items():
        click.echo(f"  {k}: {json.dumps(val)}")
    click.echo("answers:")
    for k, val in v.answers.items():
        click.echo(f"  {k}: {json.dumps(val)}")
    click.echo("(--tex or --pdf FILE for the worked solution; --json for scripts)")


def _compile_one(tex: str, out: Path) -> None:
    from deepdrill.generator.pdf import compile_tex

    with tempfile.TemporaryDirectory(prefix="deepdrill-") as tmp:
        pdf = compile_tex(tex, Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pdf, out)


@cli.command()
@click.argument("type_id", metavar="TYPE")
@_params_opt
@_options_opt
@_seed_opt
@click.option("--answers", "answers_arg", metavar="JSON|@FILE", required=True,
              help='The answers to grade: {"field": value, ...}.')
@click.option("--points", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Points for the question [default: 1 per field].")
@click.option("--all-or-nothing", is_flag=True, help="No per-entry credit for arrays.")
@click.option("--carry-forward", default="full", show_default=True, metavar="full|none|SHARE",
              help="Credit for an answer computed right from your own wrong earlier answers.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(type_id: str, params_arg: str | None, options_arg: str | None, seed: int,
          answers_arg: str, points: float | None, all_or_nothing: bool, carry_forward: str,
          as_json: bool) -> None:
    """Grade one set of answers to exercise TYPE (the batch grader's code path).

    \b
    Example (a wrong mean, and a variance computed right from it):
      deepdrill check batchnorm_forward --params '{"x": [1, 3, 5, 7], "gamma": 1, "beta": 0}' \\
        --answers '{"mean": 5, "variance": 6}'
    """
    from deepdrill.grader.score import CreditPolicy, grade_question

    v = _variant(type_id, params_arg, options_arg, seed)
    answers = _load_json_arg(answers_arg, "--answers")
    result = grade_question(v, answers, points or float(len(v.fields)),
                            CreditPolicy(per_entry=not all_or_nothing,
                                         carry_forward=_carry_share(carry_forward)))
    if as_json:
        data = result.to_json()
        keys = ("correct", "score", "max_score", "expected", "given", "feedback", "mistake",
                "carried_forward", "consistent_with")
        click.echo(json.dumps({"score": data["score"], "max_score": data["max_score"],
                               "carried_forward": data["carried_forward"],
                               "fields": {k: {kk: f.get(kk) for kk in keys}
                                          for k, f in data["fields"].items()},
                               "notes": data["notes"]}))
        return
    for name, f in result.fields.items():
        mark = click.style("ok", fg="green") if f.correct else \
            click.style("cf", fg="yellow") if f.carried else click.style("--", fg="red")
        points = f"{f.score:g}/{f.max_score:g}" if f.max_score else "given, no points"
        click.echo(f"{mark} {name}: {points}  {f.feedback}")
    for note in result.notes:
        click.echo(f"   note: {note}")
    click.echo(f"score: {result.score:g}/{result.max_score:g}")


def _carry_share(value: str) -> float:
    from deepdrill.generator.assignment import carry_share

    try:
        share = carry_share(value if value in ("full", "none") else float(value))
    except ValueError:
        share = -1.0
    if not 0 <= share <= 1:
        raise DeepdrillError(f"--carry-forward takes full, none or a share from 0 to 1, "
                             f"not {value!r}")
    return share


# -- build and grade --------------------------------------------------------------

def _progress(quiet: bool) -> Callable[[str, int, Callable[[Callable[[int], None]], Any]], Any]:
    def phase(label: str, total: int, body: Callable[[Callable[[int], None]], Any]) -> Any:
        if quiet or not sys.stderr.isatty():  # a bar only where someone watches it
            return body(lambda n: None)
        with click.progressbar(length=total, label=f"{label:<11}", file=sys.stderr,
                               show_pos=True) as bar:
            return body(bar.update)
    return phase


@cli.command()
@click.argument("assignment_file", metavar="ASSIGNMENT.toml",
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--roster", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="CSV with an id and a name column, or a Canvas gradebook or Moodle "
                   "participants/grades export as downloaded: one personal sheet per student.")
@click.option("--variants", type=click.IntRange(min=1), help="Without a roster: N numbered variants.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Output folder [default: output/<assignment name>].")
@click.option("--no-pdf", is_flag=True, help="Skip LaTeX: key, manifest and submission files only.")
@click.option("--jobs", type=click.IntRange(min=1), help="Parallel pdflatex runs [default: cores].")
@click.option("--fresh", is_flag=True,
              help="Build every sheet again instead of reusing unchanged students' sheets.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
def build(assignment_file: Path, roster: Path | None, variants: int | None, out: Path | None,
          no_pdf: bool, jobs: int | None, fresh: bool, quiet: bool) -> None:
    """Build personal problem and solution sheets for a class.

    Writes into --out: key.json (instructor only), manifest.json, problems.pdf and
    solutions.pdf (everyone, for printing), students/<id>/ with what each student is
    handed (problems.pdf and a blank submission.json), and solutions/<id>.pdf (for after
    the deadline).

    The build is switched over as one unit at the end: interrupted or failed, it leaves
    the previous build in --out intact. Building again with the same assignment file
    (late enrolment, a renamed student) reuses every sheet that would not change and
    compiles only the others; students no longer on the roster are removed.
    """
    from deepdrill import api
    from deepdrill.generator.assignment import numbered_students

    if (roster is None) == (variants is None):
        raise DeepdrillError("give either --roster CSV or --variants N")
    assignment = api.load_assignment(assignment_file)
    notes: list[str] = []  # the roster's columns and skipped rows, then the build's own
    if roster is not None:
        students = api.load_roster(roster, notes)
        roster_info = {"file": str(roster), "sha256": _sha256(roster), "students": len(students)}
    else:
        students, roster_info = numbered_students(variants or 0), {"variants": variants}
    out = out or Path("output") / assignment_file.stem
    notes += api.build(assignment, students, out, pdf=not no_pdf, roster_info=roster_info,
                       workers=jobs, progress=_progress(quiet), fresh=fresh).notes
    click.echo(f"built {len(students)} sheet(s) of {len(assignment.questions)} question(s) in {out}/")
    for note in notes:
        click.echo(f"  {note}")
    click.echo(f"  answer key (instructor only): {out / 'key.json'}")
    if not no_pdf:
        click.echo(f"  for printing: {out / 'problems.pdf'}, {out / 'solutions.pdf'}")
        click.echo(f"  to hand out: {out / 'students'}/<id>/ (problems.pdf, submission.json)")
        click.echo(f"  after the deadline: {out / 'solutions'}/<id>.pdf")
    else:
        click.echo(f"  to hand out: {out / 'students'}/<id>/submission.json")


@cli.command()
@click.option("--key", "key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The key.json written by `deepdrill build`.")
@click.argument("submissions", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder [default: a 'grades' folder beside the key].")
@click.option("--max-bytes", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Larger submission files are not read.")
@click.option("--pdf", is_flag=True,
              help="Also typeset a feedback PDF per student (feedback/<id>.pdf, all of them in "
                   "feedback.pdf) and the class report (class_report.pdf).")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no table.")
def grade(key_path: Path, submissions: tuple[Path, ...], out: Path | None, max_bytes: int,
          pdf: bool, quiet: bool) -> None:
    """Grade SUBMISSIONS (files, or folders of *.json files) against each student's variant.

    Writes grades.csv (a row per student) and report.json (per student, question and
    field: score, expected, given, feedback). A file that cannot be graded gets its
    reason in the report; the run goes on. Other entries in a folder (not .json, hidden,
    links to folders, folders that cannot be listed) are listed in the report as skipped.
    A file named for one student that says it is another's counts for neither, and both
    students' rows say so. Both reports are replaced together, or not at all; one
    grader at a time writes into --out.

    With --pdf: each student's feedback sheet (their answers beside the expected ones,
    wrong entries marked, the named mistakes, carried-forward credit, the scores) and the
    class report (score distribution, each question's and field's difficulty and
    discrimination, the common mistakes, the files not graded, who submitted nothing).
    """
    import signal

    from deepdrill.files import read_soon
    key_bytes = read_soon(key_path)  # read while the grader's modules load

    from deepdrill import api
    from deepdrill.grader.batch import out_locked

    key = api.load_key(key_path, key_bytes)
    out = out or key_path.parent / "grades"
    plain_kill = signal.signal(signal.SIGTERM, signal.default_int_handler)  # as Ctrl-C
    result = None
    try:
        with out_locked(out):  # refused now, not after grading, if another grader writes there
            # graded: the reports are written whole; a signal then waits until they are
            result = api.grade(key, submissions, out, max_bytes=max_bytes,
                               progress=_holding_signals_after(_progress(quiet)))
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        if result is not None:
            raise DeepdrillError(f"interrupted after the reports were written; grades.csv and "
                                 f"report.json in {out} are whole and new") from None
        raise DeepdrillError(f"interrupted before the reports were written; the previous "
                             f"grades.csv and report.json in {out}, if any, are intact") from None
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.signal(signal.SIGTERM, plain_kill)
    if not quiet:
        _print_summary(result.report)
    click.echo(f"wrote {result.grades_csv} and {result.report_json}")
    if pdf:
        api.typeset_reports(key, result.report_json, out, _progress(quiet))
        click.echo(f"wrote {out / 'feedback'}/<id>.pdf (all in "
                   f"{out / 'feedback' / 'feedback.pdf'}) and {out / 'class_report.pdf'}")
    _end_now()  # (the report and key are not freed object by object)


def _holding_signals_after(progress: Callable[..., Any]) -> Callable[..., Any]:
    """The progress wrapper, made to hold Ctrl-C and kill once every file is graded, until
    the reports are written (the grade command then unblocks them)."""
    import signal

    def phase(label: str, total: int, body: Callable[[Callable[[int], None]], Any]) -> Any:
        def run(tick: Callable[[int], None]) -> Any:
            done = 0

            def counted(n: int) -> None:
                nonlocal done
                done += n
                tick(n)
                if done >= total:
                    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            return body(counted)
        return progress(label, total, run)
    return phase


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _print_summary(report: Any) -> None:
    counted = report.counted()
    n = max(len(counted), 1)
    click.echo(f"\n{'question':<9} {'type':<20} {'points':>6} {'mean':>7} {'full marks':>10} "
               f"{'carried fwd':>11}")
    questions = report.key.questions
    sums = [0.0] * len(questions)  # per question: its points,
    carried_sums = [0.0] * len(questions)  # the part carried forward,
    full = [0] * len(questions)  # and the students with full marks
    total = total_carried = 0.0
    for e in counted.values():  # one pass: a class is thousands of entries
        each = e.question_totals()
        for i, q in enumerate(questions):
            score, carried = each.get(q.label, (0.0, 0.0))
            sums[i] += score
            carried_sums[i] += carried
            full[i] += abs(score - q.points) < 1e-9
        total += e.score
        total_carried += e.carried
    for i, q in enumerate(questions):
        click.echo(f"{q.label:<9} {q.type:<20} {q.points:>6g} {sums[i] / n:>7.2f} "
                   f"{full[i]:>4}/{len(counted):<5} {carried_sums[i] / n:>11.2f}")
    click.echo(f"{'total':<9} {'':<20} {report.key.max_score:>6g} {total / n:>7.2f} "
               f"{'':>10} {total_carried / n:>11.2f}")
    click.echo("(mean points per counted student; 'carried fwd' is the part of the mean earned "
               "by answers right from the student's own wrong earlier ones)")
    click.echo("\nfiles: " + ", ".join(f"{v} {k}" for k, v in sorted(report.status_counts().items()))
               + f"; students without a counted submission: "
                 f"{len(report.key.students) - len(counted)}")
    problems = [e for e in report.entries if e.status != "graded"]
    for e in problems[:20]:
        click.echo(f"  {e.status:<16} {e.file}: {'; '.join(e.messages)[:120]}")
    if len(problems) > 20:
        click.echo(f"  ... and {len(problems) - 20} more in report.json")


@cli.command()
@click.option("--key", "key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The key.json written by `deepdrill build`.")
@click.argument("codes", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print what each code names, with the variant.")
def lookup(key_path: Path, codes: tuple[str, ...], as_json: bool) -> None:
    """Find the student and question a printed code belongs to.

    Every sheet prints a sheet code (under the student's name and at the foot of every
    page) and every question a question code, e.g. 4VA4-7P75: so a paper with a smudged
    name, or a photo of one question, leads back to the key. Case, hyphens and spaces do
    not matter, and I, L and O are read as 1, 1 and 0. A code with a misread character
    fails its check character; the codes of the key one character away are suggested.
    """
    from deepdrill.grader.lookup import codes_in, find

    known = codes_in(key_path)  # the key read once for every code asked
    found = [find(key_path, c, known) for c in codes]
    if as_json:
        click.echo(json.dumps([{"code": f.code, "student_id": f.student_id, "name": f.name,
                                "folder": f.folder, "question": f.label, "variant": f.variant}
                               for f in found], indent=2))
        return
    for f in found:
        click.echo(f.describe())


@cli.command()
@click.argument("which", type=click.Choice(["submission", "assignment"]), default="submission")
@click.option("--path", "show_path", is_flag=True, help="Print the installed file's path instead.")
def schema(which: str, show_path: bool) -> None:
    """Print the JSON Schema of submission files (or of assignments), for LMS scripts."""
    package = "deepdrill.grader" if which == "submission" else "deepdrill.generator"
    from importlib import resources

    ref = resources.files(package).joinpath(f"schemas/{which}.schema.json")
    if show_path:
        click.echo(str(ref))
    else:
        click.echo(ref.read_text(encoding="utf-8"), nl=False)


_AS_COMMAND = False  # set by main(): this process is the `deepdrill` command, not a test


def _end_now() -> None:
    """End the `deepdrill` command's process here, its output flushed. Freeing a class's
    key and report one object at a time took 60 ms of the 3 s a TA waits for 10,000
    submissions; the system frees a process's memory at once. Only at a command's
    successful end, and not when the commands run inside another program (a test)."""
    if _AS_COMMAND:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def main() -> None:
    global _AS_COMMAND
    _AS_COMMAND = True
    cli(prog_name="deepdrill")
