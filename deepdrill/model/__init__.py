"""What the generator and the grader share: answer fields, tolerances, stored variants.

Dependencies point one way: ``generator -> model <- grader``. The generator never
imports the grader; the grader reads stored variants and may call a type's pure steps.
"""

from .fields import Field, Kind, Shape, integer, real
from .tolerance import Mode, Tolerance, entries_match
from .variant import Mistake, Variant

__all__ = ["Field", "Kind", "Mistake", "Mode", "Shape", "Tolerance", "Variant", "entries_match",
           "integer", "real"]
