"""The package's layers hold: the contracts in ``.importlinter``, run by import-linter.

In the repository ``converters/`` and ``runtime/`` sit beside ``edgelstm/`` and are mapped
to ``edgelstm.converters`` / ``edgelstm.runtime`` by ``pyproject.toml``; import-linter
finds modules by walking the package's folder, so the contracts run on a copy of the
sources laid out as they install. The same copy, with one forbidden import added, shows
that each contract can fail.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def _installed_layout(dest: Path) -> Path:
    """Copy every package's .py files to ``dest`` at the place they install."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(mapping.items()):
        target = dest.joinpath(*package.split("."))
        for source in (ROOT / folder).rglob("*.py"):
            relative = source.relative_to(ROOT / folder)
            if any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                continue
            if package == "edgelstm" and relative.parts[0] in {p.split(".")[1] for p in mapping if p.count(".") == 1}:
                continue  # a mapped subpackage: copied from its own folder
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out)
    return dest


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(CONFIG)!r}, no_cache=True))")
    return subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return _installed_layout(tmp_path_factory.mktemp("layout"))


def test_the_copy_is_what_python_imports(tree):
    # otherwise the contracts could pass on a tree that is not the package
    result = subprocess.run([sys.executable, "-c", "import edgelstm.runtime.stateful as m; print(m.__file__)"],
                            cwd=tree, env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(tree)


def test_the_layer_contracts_hold(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


def test_every_module_of_the_package_is_in_a_layer(tree):
    # a new top-level module outside every layer would escape the contract
    config = configparser.ConfigParser()
    config.read(CONFIG)
    listed = set(config["importlinter:contract:layers"]["layers"].replace(":", " ").split())
    modules = {f"edgelstm.{p.stem if p.is_file() else p.name}" for p in (tree / "edgelstm").iterdir()
               if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert modules - listed == set()
    # and every host tool is also a source of the "no click below the CLI" contract
    layers = config["importlinter:contract:layers"]["layers"].split("\n")
    host = set(next(line for line in layers if "edgelstm.check" in line).replace(":", " ").split())
    click_sources = set(config["importlinter:contract:click-only-in-cli"]["source_modules"].split())
    assert host | {"edgelstm.converters"} <= click_sources


#: (file, line added, contract that must then fail)
FORBIDDEN = [
    ("edgelstm/runtime/stateful.py", "import edgelstm.converters", "cli -> host tools -> converters"),
    ("edgelstm/runtime/stateful.py", "import tensorflow", "never imports TensorFlow"),
    ("edgelstm/core/spec.py", "from edgelstm.runtime import reference", "cli -> host tools -> converters"),
    ("edgelstm/converters/npz.py", "from edgelstm import check", "cli -> host tools -> converters"),
    ("edgelstm/latency.py", "import click", "nothing below the CLI imports click"),
]


@pytest.mark.parametrize("path, line, contract", FORBIDDEN, ids=[f"{p}:{line}" for p, line, _ in FORBIDDEN])
def test_a_forbidden_import_breaks_a_contract(tmp_path, path, line, contract):
    tree = _installed_layout(tmp_path)
    source = tree / path
    source.write_text(source.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    broken = [block for block in result.stdout.split("\n\n") if "BROKEN" in block or "KEPT" in block]
    assert any(contract in block and "BROKEN" in block for block in broken), result.stdout
