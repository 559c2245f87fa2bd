"""`deepdrill export ...`: one subcommand per target system. Each exporter module defines
its subcommand on :data:`export` and is imported at the bottom of this file."""

from __future__ import annotations

import click


@click.group(help="Export a build's variants or a class's grades for an LMS or autograder.")
def export() -> None:
    pass


# The exporters' subcommands (each module adds its own with @export.command()).
from . import gradebook  # noqa: E402,F401  (canvas-grades, moodle-grades)
from . import gradescope  # noqa: E402,F401
from . import moodle  # noqa: E402,F401  (moodle: the question bank)
from . import qti  # noqa: E402,F401  (canvas-quiz)
from . import prairielearn  # noqa: E402,F401
