"""deepdrill: randomized deep-learning exercises, typeset to PDF and graded from JSON."""

# The one place the version is written: pyproject.toml reads it from here. (Asking the
# installed package's metadata instead took 30 ms of every command's start.)
__version__ = "0.1.0"
