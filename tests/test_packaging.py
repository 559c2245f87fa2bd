"""`pip install .` (not editable) ships the templates and schemas; the command works anywhere."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(ROOT)], check=True, capture_output=True)
    return next(dist.glob("deepdrill-*.whl"))


def test_wheel_contains_templates_and_schemas(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "deepdrill/templates/sheet.tex.j2" in names
    assert "deepdrill/templates/conv2d_forward/problem.tex.j2" in names
    assert "deepdrill/grader/schemas/submission.schema.json" in names
    assert "deepdrill/generator/schemas/assignment.schema.json" in names
    assert not any(n.startswith(("tests/", "generator/", "grader/")) for n in names)


def test_wheel_carries_the_version_the_package_says(wheel):
    """pyproject.toml reads the version from deepdrill/__init__.py: one place to change it."""
    import deepdrill

    assert wheel.name.startswith(f"deepdrill-{deepdrill.__version__}-")
    meta = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".dist-info/METADATA"))
    assert f"Version: {deepdrill.__version__}\n" in zipfile.ZipFile(wheel).read(meta).decode()


def test_installed_command_works_from_any_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}

    def deepdrill(*args):
        code = "import sys; from deepdrill.cli import main; sys.argv[0] = 'deepdrill'; main()"
        return subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=True).stdout

    where = subprocess.run([sys.executable, "-c", "import deepdrill; print(deepdrill.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True).stdout
    assert where.startswith(str(target))
    assert "conv2d_forward" in deepdrill("list")
    assert r"\documentclass" in deepdrill("solve", "conv2d_forward", "--tex")
    assert '"$schema"' in deepdrill("schema")
    (tmp_path / "a.toml").write_text('title = "t"\nseed = 1\n[[questions]]\n'
                                     'type = "conv2d_forward"\npoints = 1\n')
    deepdrill("build", "a.toml", "--variants", "2", "--no-pdf", "-q")
    assert (tmp_path / "output" / "a" / "key.json").exists()
