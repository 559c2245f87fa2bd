"""The answer key's layout on disk, read the same way by the build (reusing a previous
build's students) and the grader: one JSON document whose first line holds the format,
the assignment and the roster, then one line per student."""

from __future__ import annotations

from typing import Any

import orjson


def read_key_lines(raw: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The header and the students' lines of a key as the build lays it out
    (:func:`deepdrill.generator.build.key_bytes`); ValueError for any other layout."""
    first, _, rest = raw.partition(b"\n")
    lines = rest.rstrip().split(b"\n")
    if not first.endswith(b'"students":[') or not lines or lines[-1] != b"]}":  # not ours
        raise ValueError("not a key laid out one student per line")
    students = [line.rstrip(b",") for line in lines[:-1] if line.strip()]
    return orjson.loads(first + b"]}"), students
