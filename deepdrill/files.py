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
import errno
import fcntl
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from deepdrill.errors import DeepdrillError


def _token(n: int) -> str:
    """2n random hex digits for a file name (what secrets.token_hex gives, without
    importing secrets: hashlib and OpenSSL, 5 ms of every command's start)."""
    return os.urandom(n).hex()


STAGING = ".deepdrill-staging-"  # a build in progress (or killed)
OLD = ".deepdrill-old-"  # a previous build's entries on their way out
JOURNAL = ".deepdrill-switch.json"  # the renames of a switch-over in progress
LOCK = ".deepdrill.lock"
LOCK_WAIT_S = 5.0


def temp_beside(path: Path, data: bytes | Iterable[bytes | list[bytes]]) -> Path:
    """``data`` on disk (flushed and forced) in a new hidden file beside ``path``, to be
    renamed over it; removed again if writing fails (a full disk, say). ``data`` may come
    in pieces, each written as it is made (the disk works while the next is made); a
    piece may be a list of buffers, written as they are (:func:`write_all`)."""
    tmp = path.with_name(f".{path.name}.{_token(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        try:
            if isinstance(data, (bytes, bytearray, memoryview)):
                write_all(fd, [data])
            else:
                for piece in data:
                    write_all(fd, piece if isinstance(piece, list) else [piece])
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


IOV_MAX = 1024  # buffers one writev takes (Linux)


def write_all(fd: int, buffers: Sequence[bytes | bytearray | memoryview]) -> None:
    """Every buffer written to ``fd``, in order, with writev: a class's report is ten
    thousand entries of JSON, written as they are rather than first joined into one
    copy (42 MB of copying, and fresh memory for it, while the grader waits)."""
    pending = list(buffers)
    i = 0
    while i < len(pending):
        batch = pending[i:i + IOV_MAX]
        done = os.writev(fd, batch)
        if done == 0 and any(batch):
            raise OSError(errno.EIO, "a write wrote nothing")
        for b in batch:  # step past what was written
            if done < len(b):
                break
            done -= len(b)
            i += 1
        if done:  # a buffer written in part: its rest comes next
            pending[i] = memoryview(pending[i])[done:]


def read_soon(path: Path) -> Callable[[], bytes]:
    """Start reading a file in a thread now; the function returned waits for its bytes (or
    raises the OSError reading it raised). The kernel's copy of a class's key (50 MB,
    30 ms) then happens while the grader's modules load: that work holds the interpreter,
    a file's read does not."""
    import threading

    got: list[Any] = []

    def read() -> None:
        try:
            got.append(path.read_bytes())
        except OSError as err:
            got.append(err)

    reader = threading.Thread(target=read, name="deepdrill-read", daemon=True)
    reader.start()

    def result() -> bytes:
        reader.join()
        if isinstance(got[0], OSError):
            raise got[0]
        return got[0]
    return result


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: the old file stays until the new one is on disk."""
    tmp = temp_beside(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_out(path: Path, data: bytes) -> Path:
    """A result file written whole (its folder made if need be), or a DeepdrillError that
    says what failed; the previous file stays until the new one is on disk."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as err:
        raise DeepdrillError(f"cannot write {path}: {describe(err)}") from None
    return path


def remove_temps(folder: Path, name: str) -> None:
    """The temporary files a killed writer of ``name`` left in ``folder``."""
    for tmp in folder.glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()


_HELD: set[str] = set()  # the folders whose lock this process holds


@contextlib.contextmanager
def locked(folder: Path, what: str, wait_s: float | None = None) -> Iterator[None]:
    """Only this process writes into ``folder`` until the block ends (nested use in one
    process is fine). The lock is the kernel's (``flock`` on a file in the folder), so a
    killed run never leaves it held; another run waits ``wait_s``, then refuses, saying
    to ``what`` into another folder. OSError if the folder cannot be made or opened."""
    wait_s = LOCK_WAIT_S if wait_s is None else wait_s
    here = os.path.abspath(folder)
    if here in _HELD:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = _open_lock(folder / LOCK)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DeepdrillError(
                        f"another deepdrill run is writing into {folder} (waited {wait_s:g} s);"
                        f" let it finish, or {what} into another folder with --out") from None
                time.sleep(0.1)
        _HELD.add(here)
        try:
            yield
        finally:
            _HELD.discard(here)
    finally:
        os.close(fd)  # releases the lock


def _open_lock(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:  # a read-only folder may hold the lock file of an earlier run
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        try:
            return os.open(path, os.O_RDONLY)  # flock needs no write access
        except OSError:
            raise err from None


def staging(folder: Path) -> Path:
    """A new, empty staging folder inside ``folder`` (same file system: renames are atomic)."""
    stage = folder / f"{STAGING}{os.getpid()}-{_token(3)}"
    stage.mkdir()
    return stage


def switch_over(folder: Path, stage: Path, entries: Sequence[str], managed: Sequence[str]) -> None:
    """Move the staged ``entries`` into ``folder``, and every other ``managed`` entry of a
    previous build out of it, as one unit (see the module's docstring)."""
    old = folder / f"{OLD}{_token(3)}"
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


@contextlib.contextmanager
def janitor(folder: Path) -> Iterator[None]:
    """A small watcher process that tidies ``folder`` (:func:`settle`) if this process dies
    inside the block, even by ``kill -9``: it completes an interrupted switch-over and
    removes the staging folder, so a killed run leaves nothing behind. It learns of the
    death when its end of a pipe from this process closes; it runs in its own session, so
    a Ctrl-C to the terminal does not stop it before it has tidied."""
    import subprocess  # (here: grading, which needs no janitor, starts without it)

    proc = subprocess.Popen([sys.executable, "-m", "deepdrill.files", str(folder)],
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        yield
    except BaseException:  # the janitor tidies once this process lets go of the folder
        with contextlib.suppress(OSError):
            proc.stdin.close()  # type: ignore[union-attr]
        proc.returncode = 0  # detached: it finishes on its own and is never waited for
        raise
    with contextlib.suppress(OSError):
        proc.stdin.write(DONE)  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


DONE = b"done\n"


def _watch(folder: Path) -> None:
    """The janitor's side: wait for the end of the pipe; tidy unless told it went well."""
    said = sys.stdin.buffer.read()
    if said != DONE:
        with locked(folder, "tidy", wait_s=60):
            settle(folder)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int | None = None) -> None:
    """For worker processes (and their pdflatex): be killed when the process that started
    them dies, even by kill -9 (Linux; elsewhere nothing). ``parent``, the starter's pid,
    covers a parent that died before this ran."""
    import ctypes  # (imported by the workers that need it, not by every command)

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def describe(err: OSError) -> str:
    """An OSError as one line: what failed and on which file."""
    what = err.strerror or str(err)
    hint = {errno.ENOSPC: " (the disk is full)", errno.EROFS: " (a read-only file system)",
            errno.EACCES: " (no permission)"}.get(err.errno or 0, "")
    name = err.filename
    name = getattr(name, "name", name)  # a library may name the open file object instead
    if isinstance(name, str) and (m := re.fullmatch(r"<_io\.\w+ name='(.*)'>", name)):
        name = m.group(1)  # ... or its repr
    return f"{what}{hint}" + (f": {name}" if isinstance(name, (str, os.PathLike)) else "")


if __name__ == "__main__":  # the janitor (see janitor())
    _watch(Path(sys.argv[1]))
