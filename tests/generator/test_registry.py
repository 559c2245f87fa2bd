"""The registry of exercise types: a type is imported when first asked for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from deepdrill.generator import types
from deepdrill.generator.exercise import all_types

TYPES_DIR = Path(types.__file__).parent


def test_every_type_module_is_listed_and_registers_its_id():
    on_disk = {p.stem for p in TYPES_DIR.glob("*.py") if p.stem != "__init__"}
    assert set(types.MODULES) == on_disk
    assert [t.id for t in all_types()] == sorted(types.MODULES)


def test_asking_for_one_type_imports_only_it_and_grading_needs_no_sympy():
    # in a fresh interpreter: what grading a cross-entropy and a layer table imports
    code = """
import sys
from deepdrill.generator.exercise import get
from deepdrill.grader.score import grade_question
from deepdrill.generator.exercise import make_variant
for t in ("cross_entropy", "cnn_layer_table"):
    v = make_variant(t, 3)
    grade_question(v, {k: 0 for k in v.answers}, 10)
loaded = sorted(m.rsplit(".", 1)[1] for m in sys.modules
                if m.startswith("deepdrill.generator.types."))
print(" ".join(loaded), "sympy" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    # cross_entropy builds on softmax's steps
    assert out == ["cnn_layer_table", "cross_entropy", "softmax", "False"]


def test_an_unknown_type_names_every_known_one():
    code = """
from deepdrill.errors import DeepdrillError
from deepdrill.generator.exercise import get
try:
    get("nope")
except DeepdrillError as err:
    print(err)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "unknown exercise type 'nope'" in out
    assert all(t in out for t in types.MODULES)
