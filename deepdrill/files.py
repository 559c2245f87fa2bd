"""Output folders that are never left half-written: atomic files, an exclusive lock, and a
build switched over as one unit.

A build writes everything into a hidden staging folder inside its output folder. Only
when all of it is there does :func:`switch_over` move the new entries into place, after
writing down in a journal what it is about to do; a kill during those few renames
leaves the journal, and the next run that opens the folder (:func:`settle`) completes
them. So the key and the sheets beside it always come from one build.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from deepdrill.errors import DeepdrillError

STAGING = ".deepdrill-staging-"  # a build in progress (or killed)
OLD = ".deepdrill-old-"  # a previous build's entries on their way out
JOURNAL = ".deepdrill-switch.json"  # the renames of a switch-over in progress
LOCK = ".deepdrill.lock"
LOCK_WAIT_S = 5.0


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a temporary file beside it, flushed to disk, then
    renamed over it. On failure the temporary file is removed and the old file stays."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def locked(folder: Path, what: str, wait_s: float = LOCK_WAIT_S) -> Iterator[None]:
    """Hold the folder's lock: one deepdrill run writes into a folder at a time. The lock
    goes with the process, so a killed run never leaves the folder locked."""
    folder.mkdir(parents=True, exist_ok=True)
    fh = open(folder / LOCK, "a+b")
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DeepdrillError(
                        f"another deepdrill run is writing into {folder}; wait for it to "
                        f"finish, or {what} into another folder") from None
                time.sleep(0.1)
        yield
    finally:
        fh.close()


def staging(folder: Path) -> Path:
    """A new, empty staging folder inside ``folder`` (same file system: renames are atomic)."""
    stage = folder / f"{STAGING}{os.getpid()}-{secrets.token_hex(3)}"
    stage.mkdir()
    return stage


def switch_over(folder: Path, stage: Path, entries: Sequence[str], managed: Sequence[str]) -> None:
    """Move the staged ``entries`` into ``folder``, and every other ``managed`` entry of a
    previous build out of it, as one unit (see the module's docstring)."""
    old = folder / f"{OLD}{secrets.token_hex(3)}"
    plan = {"staging": stage.name, "old": old.name, "entries": list(entries),
            "remove": [m for m in managed if m not in entries]}
    atomic_write(folder / JOURNAL, orjson.dumps(plan))
    _finish(folder, plan)


def settle(folder: Path) -> list[str]:
    """Complete a switch-over a kill interrupted, and remove what killed builds left; say
    what was done. Call it holding the folder's lock."""
    notes = []
    journal = folder / JOURNAL
    if journal.exists():
        _finish(folder, orjson.loads(journal.read_bytes()))
        notes.append("completed the switch-over of a build that was interrupted in it")
    leftovers = [p for p in folder.glob(".deepdrill-*") if p.is_dir() and
                 p.name.startswith((STAGING, OLD))]
    for p in leftovers:
        shutil.rmtree(p, ignore_errors=True)
    if leftovers:
        notes.append(f"removed what {len(leftovers)} interrupted build(s) left behind")
    return notes


def _finish(folder: Path, plan: dict) -> None:
    """The renames of a switch-over, each done at most once, so a second call after a kill
    completes the first."""
    stage, old = folder / plan["staging"], folder / plan["old"]
    old.mkdir(exist_ok=True)
    for name in plan["entries"]:
        src = stage / name
        if src.exists():
            _move_aside(folder / name, old / name)
            os.rename(src, folder / name)
    for name in plan["remove"]:
        _move_aside(folder / name, old / name)
    _sync(folder)
    (folder / JOURNAL).unlink()
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(stage, ignore_errors=True)


def _move_aside(path: Path, to: Path) -> None:
    if path.exists() or path.is_symlink():
        if to.exists():
            shutil.rmtree(to) if to.is_dir() else to.unlink()
        os.rename(path, to)


def _sync(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """For worker processes (and their pdflatex): be killed when the process that started
    them dies, even by kill -9 (Linux; elsewhere nothing). ``parent``, the starter's pid,
    covers a parent that died before this ran."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def describe(err: OSError) -> str:
    """An OSError as one line: what failed and on which file."""
    what = err.strerror or str(err)
    hint = {errno.ENOSPC: " (the disk is full)", errno.EROFS: " (a read-only file system)",
            errno.EACCES: " (no permission)"}.get(err.errno or 0, "")
    return f"{what}{hint}" + (f": {err.filename}" if err.filename else "")
