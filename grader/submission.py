"""Reading one submission file: bytes, then JSON, then the expected structure.

Nothing here raises on a student's file: every problem becomes a message on the
:class:`Submission`, and whatever can be salvaged is kept for grading.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .numbers import NonFinite

MAX_BYTES = 1_000_000  # default size limit of one submission file
MAX_DEPTH = 16  # nesting of lists and objects; answers need at most 6
# orjson reads whole numbers from -2^63 up to 2^64 as integers, any others as floats (one
# just below -2^63 as the float -2^63 itself: a float there is re-read too)
_WHOLE_FROM, _WHOLE_TO = -2.0 ** 63, 2.0 ** 64
_NUMBERS = frozenset((int, float))


@dataclass
class Submission:
    path: str | Path
    student_id: str | None = None
    answers: dict[str, Any] | None = None
    error: str | None = None  # why nothing in the file could be graded
    notes: list[str] = field(default_factory=list)
    mtime: float = 0.0


def read_submission(path: str | Path, max_bytes: int = MAX_BYTES) -> Submission:
    sub = Submission(path)
    too_large = (f"file is over the {max_bytes:,}-byte limit (raise it with --max-bytes if "
                 f"this is genuine)")
    try:
        # opened without waiting (a FIFO would wait for a writer), then looked at
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            info = os.fstat(fd)
            sub.mtime = info.st_mtime
            if not stat.S_ISREG(info.st_mode):  # a FIFO or /dev/zero would be read forever
                sub.error = "not a regular file (a pipe, a device or a folder); not read"
                return sub
            if info.st_size > max_bytes:
                sub.error = too_large.replace("file is over",
                                              f"file is {info.st_size:,} bytes, over")
                return sub
            raw = _read_up_to(fd, max_bytes + 1)  # the limit holds: the file may grow
        finally:
            os.close(fd)
        if len(raw) > max_bytes:
            sub.error = too_large
            return sub
    except OSError as err:
        sub.error = f"cannot read file: {err.strerror}"
        return sub
    data, deep = _parse_json(raw, sub)
    if data is not None and deep > MAX_DEPTH:
        sub.error = f"lists or objects nested more than {MAX_DEPTH} deep"
    elif data is not None:
        _read_structure(data, sub)
    return sub


def _read_up_to(fd: int, limit: int) -> bytes:
    """Up to ``limit`` bytes of an open file (os.read may return less than asked)."""
    chunks = []
    while limit > 0:
        chunk = os.read(fd, limit)
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def depth(data: Any) -> int:
    """How deeply lists and objects nest (iterative: no recursion on hostile input)."""
    return _measure(data)[0]


def _measure(data: Any) -> tuple[int, bool]:
    """How deeply lists and objects nest, and whether a float lies beyond 64-bit integers
    (one walk; in a list of numbers, any number beyond them says so: orjson gives no such
    integer, and re-reading with ``json`` is right either way)."""
    if not isinstance(data, (list, dict)):
        return 0, type(data) is float and not _WHOLE_FROM < data < _WHOLE_TO
    deepest, beyond, stack = 0, False, [(data, 1)]
    while stack:
        value, level = stack.pop()
        if level > deepest:
            deepest = level
        items = value.values() if isinstance(value, dict) else value
        kinds = set(map(type, items))
        if kinds <= _NUMBERS:  # the common case, a list of numbers, checked at C speed
            if float in kinds and not beyond:
                beyond = not (_WHOLE_FROM < min(items) and max(items) < _WHOLE_TO)
            continue
        for child in items:
            if isinstance(child, (list, dict)):
                stack.append((child, level + 1))
            elif type(child) is float and not _WHOLE_FROM < child < _WHOLE_TO:
                beyond = True
    return deepest, beyond


# Bytes of JSON text for the two scans below: every byte but brackets, quotes and
# backslashes (deleted); digits as 0, exponent marks as e, the rest as blanks.
_NOT_MARKS = bytes(c for c in range(256) if c not in b'[]{}"\\')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_NUMERALS = bytes(ord("0") if chr(c).isdigit() and c < 128 else ord("e") if c in b"eE"
                  else ord(" ") for c in range(256))
_LONG_RUN = b"0" * 19  # |x| >= 2^63 written out takes 19 digits or more


def _maybe_beyond(raw: bytes) -> bool:
    """Whether a number in the text could lie beyond 64-bit integers: one written with 19
    digits or more in a row, or with an exponent. (Digits in strings may say yes too;
    then the parsed value is walked, which is exact.)"""
    numerals = raw.translate(_NUMERALS)
    return _LONG_RUN in numerals or b"0e" in numerals


def _depth_of_text(raw: bytes) -> int | None:
    """How deeply lists and objects nest in JSON text (valid: orjson has read it), from its
    brackets outside strings; None when a string holds an escape (a quote, perhaps) or
    the nesting is deeper than MAX_DEPTH: then the parsed value is walked."""
    marks = raw.translate(None, _NOT_MARKS)
    if b"\\" in marks:
        return None
    if b'"' in marks:  # without escapes, quotes pair up: every other run is in a string
        marks = b"".join(marks.split(b'"')[::2])
    marks = marks.translate(_ONE_KIND)
    deep = 0
    while marks:  # each pass takes away the innermost pairs: one level
        inner = marks.replace(b"[]", b"")
        if len(inner) == len(marks) or deep == MAX_DEPTH:
            return None
        marks, deep = inner, deep + 1
    return deep


def _parse_json(raw: bytes, sub: Submission) -> tuple[Any, int]:
    """The file's JSON and its depth (None and 0, with ``sub.error`` set, if it has none)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        sub.error = "file is not UTF-8 text"
        return None, 0
    if not text.strip():
        sub.error = "file is empty"
        return None, 0
    try:  # orjson reads a file several times faster than the standard library, which reads
        # what orjson refuses (NaN, a lone surrogate) or explains a mistake, below
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        pass
    else:
        deep = None if _maybe_beyond(raw) else _depth_of_text(raw)
        if deep is not None:  # (the common case: a few brackets counted at C speed)
            return data, deep
        deep, beyond = _measure(data)
        if not beyond:  # orjson turns an integer beyond 64 bits into a float without a word
            return data, deep
    try:
        data = json.loads(text, parse_constant=NonFinite)
    except json.JSONDecodeError as err:
        sub.error = f"not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}"
    except RecursionError:
        sub.error = "not valid JSON: nested too deeply"
    else:
        return data, depth(data)
    return None, 0


def _read_structure(data: Any, sub: Submission) -> None:
    if not isinstance(data, dict):
        sub.error = 'expected a JSON object {"student_id": ..., "answers": {...}}'
        return
    sid = data.get("student_id")
    if isinstance(sid, bool) or not isinstance(sid, (str, int)) or not str(sid).strip():
        if sid is not None:
            sub.notes.append("student_id must be text")
    else:
        sub.student_id = str(sid).strip()
    answers = data.get("answers")
    if answers is None:
        sub.notes.append('no "answers" object in the file')
        sub.answers = {}
    elif not isinstance(answers, dict):
        sub.notes.append('"answers" must be an object keyed by question (q1, q2, ...)')
        sub.answers = {}
    else:
        sub.answers = answers
