"""deepdrill: randomized deep-learning exercises, typeset to PDF and graded from JSON."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepdrill")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0.0.0+unknown"
