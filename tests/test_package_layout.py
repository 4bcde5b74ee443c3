"""The package's shape: a light import and no private name crossing a module border."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rrlyrae_metallicity

PACKAGE = Path(rrlyrae_metallicity.__file__).parent
REPO = Path(__file__).resolve().parents[1]


def _private_imports(path, own_packages):
    """``(line, text)`` of every ``from <own module> import _name`` in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not isinstance(node, ast.ImportFrom):
            continue
        module = node.module or ""
        internal = node.level > 0 or module.split(".")[0] in own_packages
        for alias in node.names:
            if internal and alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append((node.lineno, f"from {'.' * node.level}{module} import "
                                           f"{alias.name}"))
    return found


def _sources():
    yield from PACKAGE.rglob("*.py")
    if (REPO / "training").is_dir():
        yield from (REPO / "training").rglob("*.py")


def test_no_module_imports_another_modules_private_names():
    offenders = [f"{path.relative_to(path.parents[1])}:{line}: {text}"
                 for path in _sources()
                 for line, text in _private_imports(path, {"rrlyrae_metallicity", "training"})]
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("heavy", ["scipy", "astroquery", "onnxruntime", "matplotlib", "dask",
                                   "pandas", "rrlyrae_metallicity.gaia.readers",
                                   "rrlyrae_metallicity.catalogue"])
def test_import_is_light(heavy):
    code = f"import sys, rrlyrae_metallicity; print({heavy!r} in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False", f"import rrlyrae_metallicity imports {heavy}"


@pytest.mark.skipif(not os.environ.get("RRLYRAE_TESTS_INSTALLED"),
                    reason="tox -e test sets RRLYRAE_TESTS_INSTALLED (a wheel, not the source tree)")
def test_tests_run_against_the_installed_package():
    installed = Path(rrlyrae_metallicity.__file__).resolve()
    assert "site-packages" in installed.parts, installed
    assert not installed.is_relative_to((REPO / "rrlyrae_metallicity").resolve())
