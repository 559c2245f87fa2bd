"""Shared fixtures: the example assignment and roster, and a quick (no-PDF) build of them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deepdrill.generator.assignment import load_assignment, load_roster
from deepdrill.generator.build import build

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="session")
def examples() -> Path:
    return EXAMPLES


@pytest.fixture(scope="session")
def example_assignment():
    return load_assignment(EXAMPLES / "assignment.toml")


@pytest.fixture(scope="session")
def example_students():
    return load_roster(EXAMPLES / "roster.csv")[0]


@pytest.fixture(scope="session")
def example_build(tmp_path_factory, example_assignment, example_students) -> Path:
    """The example assignment built for the example roster without PDFs (read-only)."""
    out = tmp_path_factory.mktemp("example") / "out"
    build(example_assignment, example_students, out, pdf=False, workers=1)
    return out


@pytest.fixture(autouse=True, scope="session")
def torch_single_thread():
    """The oracle's tensors are tiny: torch's thread pool only costs time on 2 cores."""
    try:
        import torch
    except ImportError:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def needs_pdflatex():
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (scripts/setup.sh installs it)")
