"""The answer key's layout on disk, read the same way by the build (reusing a previous
build's students) and the grader: one JSON document whose first line holds the format,
the assignment, the roster and what the variants share, then one line per student."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from .fields import Field

if TYPE_CHECKING:
    from .variant import Variant

KEY_FORMAT = "deepdrill-key/3"  # what the build writes
KEY_FORMATS_READ = ("deepdrill-key/2", KEY_FORMAT)  # /2 keys are graded as they were
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


MISTAKES_AT = b'"mistakes":\t'  # a variant's mistakes in a line: between two tabs


def student_line(student_id: str, variants: dict[str, dict[str, Any]]) -> bytes:
    """A student's line of the key: their variants (as :meth:`Shared.variant_json` makes
    them), each one's mistakes last and set between two tabs, which JSON takes for
    whitespace: any JSON tool reads the line as before, and :func:`read_line` can leave
    the mistakes unparsed. (JSON text holds no raw tab but as whitespace.)"""
    parts = []
    for label, data in variants.items():
        mistakes = orjson.dumps(data.get("mistakes", []))
        rest = orjson.dumps({k: v for k, v in data.items() if k != "mistakes"})
        parts.append(orjson.dumps(label) + b":" + rest[:-1] + b"," + MISTAKES_AT + mistakes +
                     b"\t}")
    return b'{"id":' + orjson.dumps(student_id) + b',"variants":{' + b",".join(parts) + b"}}"


def read_line(line: bytes | memoryview) -> dict[str, Any]:
    """A student's line, parsed, with each variant's ``"mistakes"`` left as its JSON text
    (bytes) where :func:`student_line` set them apart: a grader needs a question's
    mistakes only for a wrong answer, and they are two thirds of the line (parsing them
    all was a tenth of grading). Any other line is parsed whole."""
    text = bytes(line)
    data = _with_mistakes_unparsed(text) if b"\t" in text else None
    return orjson.loads(text) if data is None else data  # (other tabs: whitespace)


def _with_mistakes_unparsed(text: bytes) -> dict[str, Any] | None:
    """:func:`read_line`'s split at our tabs; None when the tabs are not ours."""
    parts = text.split(b"\t")
    if len(parts) % 2 == 0 or not all(parts[i].endswith(MISTAKES_AT[:-1])
                                      for i in range(0, len(parts) - 1, 2)):
        return None
    try:
        data = orjson.loads(b"null".join(parts[0::2]))
    except orjson.JSONDecodeError:  # tabs that only looked like ours
        return None
    variants = data.get("variants") if type(data) is dict else None
    if type(variants) is not dict:
        return None
    held = [v for v in variants.values() if type(v) is dict and "mistakes" in v]
    if len(held) != len(parts) // 2 or any(v["mistakes"] is not None for v in held):
        return None
    for v, mistakes in zip(held, parts[1::2]):
        v["mistakes"] = mistakes
    return data


class Shared:
    """What a key's variants have in common, stored once in its header (``"shared"``):
    answer fields and mistakes' feedback texts. A student's line names them by index:
    a variant's ``"fields"`` is a list of indices into ``fields``, a mistake's
    ``"feedback"`` an index into ``feedback``.

    A class's variants repeat them: 10,000 students' 160,000 fields differ in some 2,000
    ways (mostly their tolerances' floors), their mistakes say one of 19 texts. Inline,
    they were half of a 100 MB key, and reading them a sixth of the grader's work
    (0.47 of 3.35 million instructions per submission).
    A key of ``deepdrill-key/2`` holds them inline; :meth:`fields_of` and
    :meth:`feedback_of` read both.
    """

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.fields: list[dict[str, Any]] = list(data.get("fields", []))
        self.feedback: list[str] = list(data.get("feedback", []))
        self._field_ids: dict[bytes, int] | None = None
        self._text_ids: dict[str, int] | None = None
        self._field_objects: list[Field] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"fields": self.fields, "feedback": self.feedback}

    # -- writing: a variant as its key line holds it ----------------------------------

    def variant_json(self, variant: Variant) -> dict[str, Any]:
        """``variant.to_json()`` with its fields and feedback texts named by index (added
        to the table when new)."""
        if self._field_ids is None or self._text_ids is None:
            self._field_ids = {orjson.dumps(f): i for i, f in enumerate(self.fields)}
            self._text_ids = {t: i for i, t in enumerate(self.feedback)}
        data = variant.to_json()
        data["fields"] = [self._index(self._field_ids, self.fields, orjson.dumps(f), f)
                          for f in data["fields"]]
        for m in data["mistakes"]:
            m["feedback"] = self._index(self._text_ids, self.feedback, m["feedback"],
                                        m["feedback"])
        return data

    def inline(self, data: dict[str, Any]) -> dict[str, Any]:
        """A variant's JSON from its line with the shared parts written out, as
        :meth:`deepdrill.model.variant.Variant.to_json` makes it (and a /2 key stores it)."""
        return {**data, "fields": [self.fields[f] if type(f) is int else f
                                   for f in data["fields"]],
                "mistakes": [{**m, "feedback": self.feedback_of(m["feedback"])}
                             for m in data.get("mistakes", [])]}

    @staticmethod
    def _index(ids: dict[Any, int], table: list[Any], key: Any, value: Any) -> int:
        i = ids.get(key)
        if i is None:
            i = ids[key] = len(table)
            table.append(value)
        return i

    # -- reading ------------------------------------------------------------------------

    def fields_of(self, stored: list[Any]) -> tuple[Field, ...]:
        """A variant's fields from its line: indices, or (an older key) the fields."""
        if self._field_objects is None:  # made once, before a grader forks its workers
            self._field_objects = [Field.from_json(f) for f in self.fields]
        table = self._field_objects
        return tuple([table[f] if type(f) is int else Field.from_json(f) for f in stored])

    def feedback_of(self, stored: Any) -> str:
        return self.feedback[stored] if type(stored) is int else stored
