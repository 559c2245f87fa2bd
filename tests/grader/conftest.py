"""Fixtures shared by the grader's tests."""

from __future__ import annotations

import pytest

from deepdrill.grader.batch import load_key


@pytest.fixture
def key(example_build):
    return load_key(example_build / "key.json")


@pytest.fixture(scope="session")
def chmod_binds(tmp_path_factory) -> bool:
    """Whether chmod 000 keeps this process out. Not for root, which reads and writes
    anything (unless run without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, e.g.
    ``setpriv --bounding-set -dac_override,-dac_read_search``)."""
    probe = tmp_path_factory.mktemp("probe") / "locked"
    probe.write_text("")
    probe.chmod(0)
    try:
        probe.open().close()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o644)
    return False
