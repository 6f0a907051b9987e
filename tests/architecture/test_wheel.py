"""What the built wheel ships: the YAML folders (targets/, quantize/), the runner `bench --device`
copies to a device, and the JSON schemas; built once from a clean copy of the checkout."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from edgekeras.quantize_recipes import recipe_names
from edgekeras.targets import list_targets


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"  # a clean copy: a stale build/ folder in the checkout would leak into the wheel
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("edgekeras", "quantize", "targets"):
        shutil.copytree(REPO / name, src / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp / "dist", src]
    subprocess.run(list(map(str, command)), check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("edgekeras-*.whl")
    return set(zipfile.ZipFile(wheel).namelist())


def _shipped(names, folder):
    prefix = f"edgekeras/_shipped/{folder}/"
    return {Path(n).stem for n in names if n.startswith(prefix) and n.endswith(".yaml")}


def test_the_wheel_ships_every_quantize_recipe_and_target(wheel_names):
    assert _shipped(wheel_names, "quantize") == set(recipe_names())
    assert _shipped(wheel_names, "targets") == {t.name for t in list_targets()}


def test_the_wheel_ships_the_runner_and_the_schemas(wheel_names):
    assert {"edgekeras/schemas/bench.schema.json", "edgekeras/devices/edgekeras_runner.py"} <= wheel_names
    schemas = {p.name for p in (REPO / "edgekeras" / "schemas").glob("*.json")}
    assert {f"edgekeras/schemas/{name}" for name in schemas} <= wheel_names
