"""The one root exception for deepdrill's own errors."""

from __future__ import annotations


class DeepdrillError(Exception):
    """An error the user can act on; the CLI prints it as one line.

    ``exercise`` and ``seed`` say which variant it concerns, when it concerns one.
    """

    def __init__(self, message: str, *, exercise: str | None = None, seed: int | None = None):
        super().__init__(message)
        self.message = message
        self.exercise = exercise
        self.seed = seed

    def __str__(self) -> str:
        where = []
        if self.exercise:
            where.append(self.exercise)
        if self.seed is not None:
            where.append(f"seed {self.seed}")
        return f"{self.message} ({', '.join(where)})" if where else self.message


class ParamError(DeepdrillError):
    """Parameters of an exercise that cannot be solved or typeset."""


class InternalError(DeepdrillError):
    """A bug in deepdrill itself (an exercise type's own code failed), never the user's fault."""
