"""A variant: one seeded instance of an exercise, stored whole.

A variant holds everything needed to typeset, grade or export it later: the type
and its version, the parameters as printed, the answers, the answer fields with
their shapes, weights and tolerances, and the answers that typical mistakes
produce. The grader and the exporters work from stored variants and never draw
them again; the grader may re-run the type's pure steps on a student's values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .fields import Field

if TYPE_CHECKING:
    from .key import Shared


@dataclass(frozen=True)
class Mistake:
    """A wrong answer the grader can recognise and name.

    ``answers`` holds only the fields where the mistake changes the answer.
    """

    name: str
    feedback: str
    answers: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "feedback": self.feedback, "answers": self.answers}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Mistake":
        return cls(data["name"], data["feedback"], data["answers"])


@dataclass(frozen=True)
class Variant:
    """``values`` (not stored) holds every step's value when the variant was just solved,
    so the worked solution reads them instead of computing them again."""

    type: str
    seed: int
    params: dict[str, Any]
    answers: dict[str, Any]
    fields: tuple[Field, ...]
    mistakes: tuple[Mistake, ...] = ()
    version: int = 1
    values: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "version": self.version,
            "seed": self.seed,
            "params": self.params,
            "answers": self.answers,
            "fields": [f.to_json() for f in self.fields],
            "mistakes": [m.to_json() for m in self.mistakes],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Variant":
        return cls(
            type=data["type"],
            seed=data["seed"],
            params=data["params"],
            answers=data["answers"],
            fields=tuple(Field.from_json(f) for f in data["fields"]),
            mistakes=tuple(Mistake.from_json(m) for m in data.get("mistakes", [])),
            version=data.get("version", 1),
        )


class StoredVariant(Variant):
    """A variant as a grader reads it from a key's line: the same, except that its fields
    and mistakes' feedback are the key's shared ones (:class:`deepdrill.model.key.Shared`),
    and its mistakes are parsed (:func:`deepdrill.model.key.read_line` leaves them as JSON
    text) and become objects only when first asked for. A grader asks for them only for a
    wrong answer, and most answers of a class are not; a key holds some twenty mistakes
    per student."""

    @classmethod
    def read(cls, data: dict[str, Any], shared: Shared) -> "StoredVariant":
        v = object.__new__(cls)
        v.__dict__.update(type=data["type"], seed=data["seed"], params=data["params"],
                          answers=data["answers"], fields=shared.fields_of(data["fields"]),
                          version=data.get("version", 1), values=None,
                          _mistakes_json=data.get("mistakes", ()), _shared=shared)
        return v

    @functools.cached_property
    def mistakes(self) -> tuple[Mistake, ...]:  # type: ignore[override]
        feedback = self.__dict__["_shared"].feedback_of
        stored = self.__dict__["_mistakes_json"]
        if type(stored) is bytes:  # still JSON text (deepdrill.model.key.read_line)
            stored = orjson.loads(stored)
        return tuple(Mistake(m["name"], feedback(m["feedback"]), m["answers"])
                     for m in stored)
