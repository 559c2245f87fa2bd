"""The examples in the modules' docstrings are run, so they stay true."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ("deepdrill", "deepdrill.generator", "deepdrill.generator.types", "deepdrill.grader")


def modules():
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        for info in pkgutil.iter_modules(path, package + "."):
            if not info.ispkg:
                yield info.name


@pytest.mark.parametrize("name", sorted(modules()))
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
