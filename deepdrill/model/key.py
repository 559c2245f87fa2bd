"""The answer key's layout on disk, read the same way by the build (reusing a previous
build's students) and the grader: one JSON document whose first line holds the format,
the assignment and the roster, then one line per student."""

from __future__ import annotations

from typing import Any

import orjson

_BLANK = b" \t\r\n"


def read_key_lines(raw: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """The header and the students' lines of a key as the build lays it out
    (:func:`deepdrill.generator.build.key_bytes`); ValueError for any other layout."""
    head, lines = key_lines(raw)
    return head, [bytes(line) for line in lines]


def key_lines(raw: bytes) -> tuple[dict[str, Any], list[memoryview]]:
    """:func:`read_key_lines` with each student's line a view into ``raw``, not a copy
    (orjson reads views; a class's key is a hundred megabytes, and copying it line by
    line was most of the time the grader took to load it)."""
    first = raw.find(b"\n")
    end = len(raw)
    while end and raw[end - 1] in _BLANK:
        end -= 1
    last = raw.rfind(b"\n", 0, end)
    if first < 0 or not raw.endswith(b'"students":[', 0, first) or \
            last < first or raw[last + 1:end] != b"]}":  # not ours
        raise ValueError("not a key laid out one student per line")
    view = memoryview(raw)
    lines = []
    start = first + 1
    while start < last:
        stop = raw.find(b"\n", start, last)
        stop = last if stop < 0 else stop
        if raw[start] not in _BLANK or raw[start:stop].strip():
            cut = stop
            while cut > start and raw[cut - 1] == 0x2C:  # trailing commas
                cut -= 1
            lines.append(view[start:cut])
        start = stop + 1
    return orjson.loads(raw[:first] + b"]}"), lines
