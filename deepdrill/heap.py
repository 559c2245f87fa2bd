"""Garbage collection out of the way of work that builds many objects and keeps them.

A class's key, its submissions' results, an export's questions: hundreds of thousands
of objects, all kept to the end and none in a cycle. Each cyclic collection walks every
live object, so collections triggered while such work runs make it grow faster than the
class (for 3,000 students, collecting the files took 0.54 s instead of 0.15 s and
writing the reports 1.15 s instead of 0.28 s; a third of an export's time went to it).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """No cyclic garbage collection inside the block (usable as a decorator too).

    At the end, what was made meanwhile joins the oldest generation directly (a freeze
    and thaw, when nothing else is frozen) rather than being walked by the collection the
    next allocation would start."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
