"""From a printed code back to the student and the variant in a key.

Every sheet prints a sheet code (in its header table and on every page's foot) and
every question a question code (:mod:`deepdrill.model.codes`). :func:`find` turns
one, as read off a page, into what it names; a code whose check character fails is
matched against the key's codes one misread character away.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from deepdrill.errors import DeepdrillError
from deepdrill.model.codes import near, parse, variant_code

from .batch import check_versions, split_key


@dataclass(frozen=True)
class Found:
    code: str  # as printed, XXXX-XXXX
    student_id: str
    name: str
    folder: str
    label: str | None = None  # None: the code is the sheet's
    variant: dict[str, Any] | None = None

    def describe(self) -> str:
        who = f"{self.student_id} ({self.name}), folder {self.folder}"
        if self.label is None:
            return f"{self.code}: the sheet of {who}"
        kind = self.variant["type"] if self.variant else "?"
        return f"{self.code}: question {self.label} ({kind}) of {who}"


def codes_in(key_path: Path) -> dict[str, Found]:
    """Every code of a key (normalised, without the hyphen) and what it names."""
    try:
        head, lines = split_key(key_path.read_bytes())
        check_versions(head, key_path)
        found: dict[str, Found] = {}
        for entry, line in zip(head["roster"], lines):
            data = line if isinstance(line, dict) else orjson.loads(line)
            who = (entry["id"], entry["name"], entry.get("folder", entry["id"]))
            sheet = variant_code("sheet", entry["seed"])
            found[sheet.replace("-", "")] = Found(sheet, *who)
            for label, v in data["variants"].items():
                code = variant_code(label, v["seed"])
                found[code.replace("-", "")] = Found(code, *who, label, v)
    except OSError as err:
        raise DeepdrillError(f"cannot read key {key_path}: {err.strerror}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise DeepdrillError(f"{key_path} is not a deepdrill answer key ({err})") from None
    return found


def find(key_path: Path, text: str, codes: dict[str, Found] | None = None) -> Found:
    """What a printed code names, or a DeepdrillError saying what it could have been
    (``codes``: the key's, when the caller looks up several)."""
    codes = codes_in(key_path) if codes is None else codes
    code = parse(text)
    if code is not None and code in codes:
        return codes[code]
    guesses = [codes[c].describe() for c in near(text, codes)]
    raw = "".join(text.split()).replace("-", "")
    if code is None and len(raw) == 8 and raw.isalnum():
        why = f"{text!r} fails its check character: a character was misread or mistyped"
    elif code is None:
        why = f"{text!r} is not a code (8 letters and digits, like 4VA4-7P75)"
    else:
        why = f"{text!r} is a valid code, but not one of this key's (another assignment?)"
    hint = ("; one character away in this key: " + "; ".join(guesses)) if guesses else \
        "; no code of this key is one character away"
    raise DeepdrillError(why + hint)
