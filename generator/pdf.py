"""LaTeX to PDF: one pdflatex run for many sheets, then split per student.

Running LaTeX once per student would cost a process start and a font load per
sheet. Instead many sheets go into one document (the sheet template records in
``<job>.pagemap`` the page each sheet starts on) and pikepdf cuts the result
into per-student files. pdflatex always runs with shell escape disabled.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pikepdf

from deepdrill.errors import DeepdrillError
from deepdrill.files import die_with_parent

from .render import Sheet, render_document

PDFLATEX_TIMEOUT = 600  # seconds for one document
INSTALL_HINT = ("install TeX Live: on Debian/Ubuntu `sudo apt-get install texlive-latex-base "
                "texlive-latex-recommended texlive-pictures lmodern` (what scripts/setup.sh "
                "installs), or build with --no-pdf")


def pdflatex() -> str:
    path = shutil.which("pdflatex")
    if path is None:
        raise DeepdrillError(f"pdflatex not found; {INSTALL_HINT}")
    return path


def compile_tex(tex: str, workdir: Path, job: str = "sheet") -> Path:
    """Compile a LaTeX document once; return the PDF. Errors quote LaTeX's own message."""
    (workdir / f"{job}.tex").write_text(tex, encoding="utf-8")
    cmd = [pdflatex(), "-no-shell-escape", "-interaction=nonstopmode", "-halt-on-error",
           f"-jobname={job}", f"{job}.tex"]
    env = {**os.environ, "openout_any": "p", "openin_any": "p"}
    try:
        proc = subprocess.run(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=PDFLATEX_TIMEOUT,
                              preexec_fn=die_with_parent)  # a killed build leaves no pdflatex
    except subprocess.TimeoutExpired:
        raise DeepdrillError(f"pdflatex took more than {PDFLATEX_TIMEOUT} s on {job}") from None
    pdf = workdir / f"{job}.pdf"
    if proc.returncode != 0 or not pdf.exists():
        raise DeepdrillError(f"pdflatex failed on {job}: {_latex_error(workdir / f'{job}.log')}")
    return pdf


def _latex_error(log: Path) -> str:
    try:
        lines = log.read_text(encoding="latin-1").splitlines()
    except OSError:
        return "no log written"
    for i, line in enumerate(lines):
        if line.startswith("!"):
            return " ".join(s.strip() for s in lines[i:i + 3])
    return "see " + str(log)


def page_starts(pagemap: Path, count: int) -> list[int]:
    """0-based first page of each sheet, from the pagemap the sheet template writes."""
    starts = [-1] * count
    for line in pagemap.read_text().split("\n"):
        if line.strip():
            index, page = line.split()
            starts[int(index)] = int(page) - 1
    if -1 in starts:
        raise DeepdrillError(f"{pagemap}: a sheet is missing from the page map")
    return starts


def split(pdf: Path, starts: Sequence[int], outputs: Sequence[Path]) -> list[int]:
    """Write pages [starts[i], starts[i+1]) of ``pdf`` to ``outputs[i]``; return the counts."""
    with pikepdf.open(pdf) as src:
        ends = [*starts[1:], len(src.pages)]
        for start, end, out in zip(starts, ends, outputs):
            dst = pikepdf.new()
            dst.pages.extend(src.pages[start:end])
            out.parent.mkdir(parents=True, exist_ok=True)
            dst.save(out)
    return [end - start for start, end in zip(starts, ends)]


def assemble(runs: Sequence[tuple[Path, int, int]], out: Path) -> None:
    """One PDF of page runs (source, first page, page count), in order; consecutive runs
    of one source are copied together, so its fonts are shared, not repeated."""
    merged: list[list] = []
    for src, start, n in runs:
        if merged and merged[-1][0] == src and merged[-1][1] + merged[-1][2] == start:
            merged[-1][2] += n
        else:
            merged.append([src, start, n])
    sources: dict[Path, pikepdf.Pdf] = {}
    try:
        with pikepdf.new() as dst:
            for src, start, n in merged:
                if src not in sources:
                    sources[src] = pikepdf.open(src)
                dst.pages.extend(sources[src].pages[start:start + n])
            dst.save(out)
    finally:
        for pdf in sources.values():
            pdf.close()


def typeset(sheets: Sequence[Sheet], solutions: bool, workdir: Path,
            outputs: Sequence[Path]) -> tuple[Path, list[int], list[int]]:
    """Compile sheets as one document and write each sheet's pages to its output; return
    the document, and each sheet's first page and page count in it."""
    workdir.mkdir(parents=True, exist_ok=True)
    pdf = compile_tex(render_document(list(sheets), solutions), workdir)
    starts = page_starts(workdir / "sheet.pagemap", len(sheets))
    return pdf, starts, split(pdf, starts, outputs)
