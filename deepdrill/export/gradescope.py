"""``deepdrill export gradescope``: a complete Gradescope programming-assignment autograder.

The zip holds, at its root (Gradescope extracts it to ``/autograder/source``):

* ``setup.sh``: run once when Gradescope builds the image. Installs Python 3.11 or newer
  beside the system's ``python3`` (which Gradescope's own harness uses), a virtual
  environment in ``/opt/deepdrill-venv``, and deepdrill from the bundled wheel, with numpy
  and the rest from PyPI at the versions this machine has (``constraints.txt``; the newest
  that fit if those do not install there);
* ``run_autograder``: run per submission; ``python -m deepdrill.export.autograder`` grades
  the upload into ``results/results.json`` (see that module), and if Python cannot even
  start, the script writes a result saying so;
* ``deepdrill-<version>-py3-none-any.whl``: deepdrill itself, built from the installed
  package (it is not on PyPI);
* ``key.json``: the build's answer key, as it is (the zip is for instructors only);
* ``deepdrill_gradescope.json``: the roster emails and the export's settings.

The zip is the same byte for byte for the same key, roster, settings and deepdrill.
"""

from __future__ import annotations

import base64
import hashlib
import importlib
import io
import json
import re
import shlex
import zipfile
from importlib import metadata
from pathlib import Path

import click

from deepdrill.errors import DeepdrillError
from deepdrill.files import write_out

from .autograder import CONFIG_FILE, KEY_FILE, VISIBILITIES, Settings
from .commands import export
from deepdrill.generator.rosters import read_roster

# The installed package as pyproject.toml's package-dir lays it out: in an editable install
# these are separate folders of the checkout, in a wheel they sit under deepdrill/.
PACKAGES = ("deepdrill", "deepdrill.generator", "deepdrill.grader", "deepdrill.templates")
PACKAGE_FILES = (".py", ".j2", ".json")  # code, and the package data pyproject.toml ships
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same inputs give the same bytes
VENV = "/opt/deepdrill-venv"
GRADE_TIMEOUT_S = 300  # per submission; Gradescope's own default limit is 10 minutes
EXECUTABLE = 0o100755 << 16  # regular file, rwxr-xr-x, in a zip entry's external attributes
REGULAR = 0o100644 << 16


# -- the wheel ---------------------------------------------------------------------------------

def package_files() -> dict[str, bytes]:
    """Every file of the installed deepdrill package, by its path inside a wheel."""
    files: dict[str, bytes] = {}
    for name in PACKAGES:
        base = Path(importlib.import_module(name).__path__[0])
        prefix = name.replace(".", "/")
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base)
            if "__pycache__" in rel.parts or path.suffix not in PACKAGE_FILES or \
                    not path.is_file():
                continue
            files.setdefault(f"{prefix}/{rel.as_posix()}", path.read_bytes())
    return files


def build_wheel() -> tuple[str, bytes]:
    """A wheel of the installed deepdrill (file name, bytes): its package files and the
    installed METADATA, so pip installs it, and its dependencies, like any other."""
    try:
        dist = metadata.distribution("deepdrill")
    except metadata.PackageNotFoundError:
        raise DeepdrillError("deepdrill is not installed as a package, so it cannot be bundled; "
                             "install it (pip install -e .) and export again") from None
    version = dist.version
    info = f"deepdrill-{version}.dist-info"
    files = package_files()
    files[f"{info}/METADATA"] = wheel_metadata(dist).encode("utf-8")
    entry_points = dist.read_text("entry_points.txt")  # the `deepdrill` command
    if entry_points:
        files[f"{info}/entry_points.txt"] = entry_points.encode("utf-8")
    files[f"{info}/WHEEL"] = (b"Wheel-Version: 1.0\nGenerator: deepdrill export gradescope\n"
                              b"Root-Is-Purelib: true\nTag: py3-none-any\n")
    files[f"{info}/RECORD"] = _record(files, f"{info}/RECORD")
    return f"deepdrill-{version}-py3-none-any.whl", _zip(files)


def wheel_metadata(dist: metadata.Distribution) -> str:
    """The core metadata pip needs (name, version, Python, dependencies), from the installed
    distribution, whichever form it has (a wheel's dist-info or a checkout's egg-info)."""
    meta = dist.metadata
    lines = ["Metadata-Version: 2.1", f"Name: {meta['Name']}", f"Version: {dist.version}"]
    lines += [f"{k}: {meta[k]}" for k in ("Summary", "Requires-Python") if meta[k]]
    lines += [f"Requires-Dist: {r}" for r in dist.requires or []]
    lines += [f"Provides-Extra: {e}" for e in meta.get_all("Provides-Extra") or []]
    return "\n".join(lines) + "\n"


def _record(files: dict[str, bytes], record: str) -> bytes:
    """The wheel's RECORD: each file's urlsafe-base64 sha256 (no padding) and size."""
    lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    lines.append(f"{record},,")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _zip(files: dict[str, bytes], executable: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, ZIP_TIME)
            info.external_attr = EXECUTABLE if name in executable else REGULAR
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buffer.getvalue()


def constraints() -> str:
    """deepdrill's runtime dependencies pinned to the versions installed here, so Gradescope
    grades with the numbers this machine grades with."""
    lines = ["# The versions deepdrill was exported with; setup.sh falls back to the newest",
             "# compatible ones if these do not install on Gradescope's Python."]
    for req in metadata.requires("deepdrill") or []:
        if "extra ==" in req:
            continue
        name = re.match(r"[A-Za-z0-9._-]+", req)
        if name is None:
            continue
        try:
            lines.append(f"{name.group(0)}=={metadata.version(name.group(0))}")
        except metadata.PackageNotFoundError:
            continue
    return "\n".join(lines) + "\n"


# -- the scripts -------------------------------------------------------------------------------

def setup_sh(wheel: str, title: str) -> str:
    return f"""#!/usr/bin/env bash
# deepdrill autograder for {_comment(title)}
# Gradescope runs this once, as root, while it builds the autograder image.
# deepdrill needs Python 3.11 or newer. It is installed beside the system's python3, which
# Gradescope's own harness runs on and which is left alone (Ubuntu 22.04, the default
# image, has 3.10; choosing Ubuntu 24.04 as the base image skips that install).
set -euo pipefail
cd "$(dirname "$0")"
VENV={shlex.quote(VENV)}
WHEEL={shlex.quote(wheel)}
export DEBIAN_FRONTEND=noninteractive

python_ok() {{
    command -v "$1" >/dev/null && "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))'
}}

apt-get update
PYTHON=""
for candidate in python3.13 python3.12 python3.11 python3; do
    if python_ok "$candidate"; then
        PYTHON="$candidate"
        break
    fi
done
if [ -z "$PYTHON" ]; then
    apt-get install -y python3.11 python3.11-venv
    PYTHON=python3.11
fi
if ! "$PYTHON" -m venv "$VENV"; then
    apt-get install -y "$PYTHON-venv"
    "$PYTHON" -m venv --clear "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip
if ! "$VENV/bin/python" -m pip install --constraint constraints.txt "$WHEEL"; then
    echo "setup.sh: the versions in constraints.txt do not install here; taking the newest that fit" >&2
    "$VENV/bin/python" -m pip install "$WHEEL"
fi
# Fail the build now, not at the first student's submission.
"$VENV/bin/python" -c 'import deepdrill.export.autograder, deepdrill.grader.batch'
"""


def run_autograder() -> str:
    return f"""#!/usr/bin/env bash
# deepdrill autograder: Gradescope runs this once per submission.
# deepdrill grades the uploaded JSON file against the student's own variant in key.json and
# writes results/results.json. If deepdrill cannot run at all, this script writes a result
# that says so, rather than leave the student with Gradescope's bare "autograder failed".
# DEEPDRILL_AUTOGRADER_ROOT and DEEPDRILL_AUTOGRADER_PYTHON stand in for /autograder and
# the installed Python when the autograder is tried outside Gradescope.
set -u
ROOT="${{DEEPDRILL_AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{DEEPDRILL_AUTOGRADER_PYTHON:-{VENV}/bin/python}}"
RESULTS="$ROOT/results/results.json"
mkdir -p "$ROOT/results"
rm -f "$RESULTS"
timeout {GRADE_TIMEOUT_S} "$PYTHON" -m deepdrill.export.autograder --root "$ROOT"
status=$?
if [ ! -s "$RESULTS" ]; then
    message="The autograder could not run deepdrill (exit status $status), so this submission was not graded. Please tell your instructor."
    printf '{{"score": 0, "output": "%s", "tests": []}}\\n' "$message" > "$RESULTS"
fi
exit 0
"""


def _comment(text: str) -> str:
    """An assignment title as one comment line (no newline can end the comment early)."""
    return json.dumps(text)


# -- the zip ------------------------------------------------------------------------------------

def roster_emails(path: Path, students: set[str]) -> tuple[dict[str, str], list[str]]:
    """Emails of the key's students from a roster file (casefolded email -> id), and notes."""
    try:
        roster = read_roster(path.read_bytes(), str(path))
    except OSError as err:
        raise DeepdrillError(f"cannot read roster {path}: {err.strerror}") from None
    emails = {e.email.casefold(): e.id for e in roster.entries if e.email and e.id in students}
    notes = [f"{len(emails)} of {len(students)} student(s) recognised by their email from "
             f"{path.name}"]
    if not any(e.email for e in roster.entries):
        notes = [f"{path.name} has no email column: students are recognised by Gradescope's "
                 f"sid (or by the id in their file) only"]
    return emails, notes


def autograder_zip(key_path: Path, settings: Settings) -> bytes:
    """The autograder zip for the key at ``key_path``."""
    from deepdrill.grader.batch import load_key

    key = load_key(key_path)  # refuse a file that is not a key now, not on Gradescope
    wheel, wheel_bytes = build_wheel()
    files = {
        "setup.sh": setup_sh(wheel, key.title).encode("utf-8"),
        "run_autograder": run_autograder().encode("utf-8"),
        wheel: wheel_bytes,
        "constraints.txt": constraints().encode("utf-8"),
        KEY_FILE: key_path.read_bytes(),
        CONFIG_FILE: (json.dumps(settings.to_json(), indent=1, sort_keys=True) + "\n").encode(),
    }
    return _zip(files, executable=("setup.sh", "run_autograder"))


def write_autograder(key_path: Path, out: Path, roster_path: Path | None = None,
                     strict: bool = False, expected: str = "after_due_date",
                     max_bytes: int = 1_000_000) -> list[str]:
    """The autograder zip of a build in ``out``; returns the notes on the roster's emails."""
    from deepdrill.grader.batch import load_key

    emails: dict[str, str] = {}
    notes: list[str] = []
    if roster_path is not None:
        emails, notes = roster_emails(roster_path, set(load_key(key_path).students))
    write_out(out, autograder_zip(key_path, Settings(emails, strict, expected, max_bytes)))
    return notes


@export.command("gradescope")
@click.option("--key", "key_path", required=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The key.json written by `deepdrill build`.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The zip to write [default: autograder.zip beside the key].")
@click.option("--roster", "roster_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A roster with an email column (e.g. Moodle's participants export): "
                   "recognises students by their Gradescope email.")
@click.option("--strict", is_flag=True,
              help="Grade only students recognised from Gradescope's account details (sid or "
                   "roster email), never by the id in their file alone.")
@click.option("--expected", type=click.Choice([*VISIBILITIES, "none"]), default="after_due_date",
              show_default=True,
              help="When students see the expected answers (a test worth 0 points).")
@click.option("--max-bytes", type=click.IntRange(min=1), default=1_000_000, show_default=True,
              help="Larger uploads are not read.")
def gradescope(key_path: Path, out: Path | None, roster_path: Path | None, strict: bool,
               expected: str, max_bytes: int) -> None:
    """A Gradescope autograder zip for a build: upload it under Configure Autograder.

    Students upload their submission.json; the autograder grades it on their own numbers
    with deepdrill's grader, one test per question with the feedback `deepdrill grade`
    gives. A file is matched to its student by Gradescope's account details (the roster
    sid, or the email from --roster) and by the file's student_id: a file submitted for
    another student on the roster is not graded.

    Set the assignment's points in Gradescope to the assignment's total. The default base
    image (Ubuntu 22.04) works; Ubuntu 24.04 builds faster (its Python is new enough).

    \b
    Example:
      deepdrill export gradescope --key output/set3/key.json --out autograder.zip
    """
    out = out or key_path.parent / "autograder.zip"
    notes = write_autograder(key_path, out, roster_path, strict, expected, max_bytes)
    for note in notes:
        click.echo(f"  {note}")
    click.echo(f"wrote {out}: upload it in Gradescope under Configure Autograder")
