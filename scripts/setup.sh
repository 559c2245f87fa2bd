#!/usr/bin/env bash
# Sets deepdrill up on a fresh machine, idempotently:
#   1. TeX Live from Debian's packages, when pdflatex or the LaTeX packages the sheets use are
#      missing (apt-get as root, or with sudo when it needs no password; otherwise it says
#      exactly what to install and carries on without PDFs);
#   2. a virtual environment in .venv with deepdrill installed (editable);
#   3. with --tests: the test tools and PyTorch 2.13.0 (CPU), the tests' oracle.
set -euo pipefail
cd "$(dirname "$0")/.."

TEX_PACKAGES="texlive-latex-base texlive-latex-recommended texlive-pictures lmodern poppler-utils"
TEX_FILES="booktabs.sty geometry.sty amsmath.sty lmodern.sty tikz.sty pgfplots.sty"
WITH_TESTS=0
[ "${1:-}" = "--tests" ] && WITH_TESTS=1

have_tex() {
  command -v pdflatex >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1 || return 1
  for f in $TEX_FILES; do [ -n "$(kpsewhich "$f" 2>/dev/null)" ] || return 1; done
}

if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO="none"; fi
# apt_install WHAT PACKAGES...: Debian's packages when apt-get and root (or sudo) are at hand;
# otherwise say exactly what to ask an administrator for, and carry on without them.
apt_install() {
  local what=$1; shift
  if command -v apt-get >/dev/null 2>&1 && [ "$SUDO" != none ]; then
    echo "setup: installing $what from Debian's packages: $*"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
  else
    echo "setup: $what is missing and cannot be installed from here. Ask an administrator to run:" >&2
    echo "         sudo apt-get install $*" >&2
    return 1
  fi
}

if ! have_tex; then
  apt_install "TeX Live" $TEX_PACKAGES || {
    echo "       (elsewhere: TeX Live with booktabs, geometry, amsmath, lmodern, tikz, pgfplots; and poppler)." >&2
    echo "       Until then use 'deepdrill build --no-pdf'; PDF tests are skipped." >&2; }
fi
# The answer form's tests drive Debian's headless Chromium.
if [ "$WITH_TESTS" = 1 ] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  apt_install "Chromium (for the answer form's browser tests)" chromium chromium-driver || \
    echo "       Until then the browser tests are skipped." >&2
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: deepdrill needs Python 3.11 or newer (found: $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv || { echo "setup: could not create .venv (on Debian: sudo apt-get install python3-venv)" >&2; exit 1; }
fi
# pip's own exit status counts; only the noise of absent local package folders is dropped.
pip_install() { .venv/bin/python -m pip install -q "$@" 2> >(grep -v "is ignored" >&2); }
if [ "$WITH_TESTS" = 1 ]; then
  # torch==2.13.0 exactly (the "oracle" extra): on these machines pip takes the local CPU
  # wheel; a loose requirement would pull a multi-GB CUDA build.
  pip_install -e ".[test,oracle]"
else
  pip_install -e .
fi
.venv/bin/deepdrill --version >/dev/null
echo "setup: ready ($(.venv/bin/deepdrill --version); TeX: $(have_tex && echo yes || echo no))"
