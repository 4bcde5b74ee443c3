"""Check the distributions: build, contents, twine, and a fresh install that runs the example.

Run by ``tox -e package`` (which provides ``build`` and ``twine``)::

    python .ci/check_package.py --work-dir /tmp/package-check

1. ``python -m build`` makes the sdist and the wheel;
2. the wheel holds the package with every shipped model (each file named in a
   manifest) and the example, and nothing of ``docs/``, ``tests/`` or
   ``training/``; the sdist holds those too;
3. ``twine check`` passes;
4. a fresh virtual environment installs the wheel with the ``cpu`` extra and
   ``rrlyrae-feh predict --example`` predicts every star of the example, run
   from outside the repository so that only the installed package is seen.
"""

import argparse
import json
import subprocess
import sys
import tarfile
import time
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "rrlyrae_metallicity"
# In the sdist, besides the package: what a user rebuilding the models or
# the documentation, or running the tests, needs.
SDIST_REQUIRED = ("pyproject.toml", "README.md", "LICENSE", "CITATION.cff", "CHANGELOG.md",
                  "docs/conf.py", "docs/index.rst", "docs/model_card.rst",
                  "docs/_ext/generated_pages.py", "tests/test_inference.py",
                  "training/__main__.py")
WHEEL_FORBIDDEN = ("docs/", "tests/", "training/", ".ci/")


def run(*command, **kwargs):
    print("$", " ".join(str(c) for c in command), flush=True)
    return subprocess.run([str(c) for c in command], check=True, **kwargs)


def expected_package_data():
    """Package-data paths the wheel must hold: every model member and manifest, the example."""
    root = REPO / PACKAGE / "data"
    paths = {f"{PACKAGE}/data/models/default.json"}
    for manifest in sorted(root.glob("models/*/manifest.json")):
        name = manifest.parent.name
        paths.add(f"{PACKAGE}/data/models/{name}/manifest.json")
        # A composite model (``components``) has a manifest and no files of its own.
        paths.update(f"{PACKAGE}/data/models/{name}/{member['file']}"
                     for member in json.loads(manifest.read_text()).get("members", []))
    paths.update(f"{PACKAGE}/data/example/{p.name}" for p in (root / "example").iterdir()
                 if p.is_file())
    return paths


def check_wheel(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(expected_package_data() - names)
    if missing:
        raise SystemExit(f"the wheel lacks package data: {missing}")
    leaked = sorted(n for n in names if n.startswith(WHEEL_FORBIDDEN))
    if leaked:
        raise SystemExit(f"the wheel holds files that are not part of the package: {leaked[:5]}")
    top = {n.split("/")[0] for n in names}
    if top - {PACKAGE} - {n for n in top if n.endswith(".dist-info")}:
        raise SystemExit(f"the wheel holds more than the package: {sorted(top)}")
    return names


def check_sdist(sdist):
    with tarfile.open(sdist) as archive:
        names = {"/".join(n.split("/")[1:]) for n in archive.getnames()}
    missing = sorted(set(SDIST_REQUIRED) - names)
    missing += sorted(expected_package_data() - names)
    if missing:
        raise SystemExit(f"the sdist lacks: {missing}")
    built = sorted(n for n in names if n.startswith(("docs/_build/", "docs/api/", "runs/")))
    if built:
        raise SystemExit(f"the sdist holds build products or runs: {built[:5]}")
    return names


def fresh_install(wheel, work_dir):
    env_dir = work_dir / "venv"
    venv.create(env_dir, with_pip=True, clear=True)
    bin_dir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    run(bin_dir / "python", "-m", "pip", "install", "--quiet", f"{wheel}[cpu]")
    outside = work_dir / "elsewhere"
    outside.mkdir(exist_ok=True)
    start = time.perf_counter()
    result = run(bin_dir / "rrlyrae-feh", "predict", "--example", cwd=outside,
                 capture_output=True, text=True)
    print(result.stdout + result.stderr)
    print(f"rrlyrae-feh predict --example took {time.perf_counter() - start:.1f} s")
    if "[Fe/H] predicted for 20 of 20 stars" not in result.stderr:
        raise SystemExit("the installed wheel did not predict every star of the example")
    origin = run(bin_dir / "python", "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)",
                 cwd=outside, capture_output=True, text=True).stdout.strip()
    if not origin.startswith(str(env_dir)):
        raise SystemExit(f"the fresh environment imported {PACKAGE} from {origin}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True,
                        help="scratch folder for the distributions and the fresh environment")
    args = parser.parse_args(argv)
    dist = args.work_dir / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.iterdir():
        old.unlink()
    run(sys.executable, "-m", "build", "--outdir", dist, REPO)
    wheel, = dist.glob("*.whl")
    sdist, = dist.glob("*.tar.gz")
    wheel_names = check_wheel(wheel)
    sdist_names = check_sdist(sdist)
    print(f"wheel {wheel.name}: {wheel.stat().st_size / 1e6:.2f} MB, {len(wheel_names)} files")
    print(f"sdist {sdist.name}: {sdist.stat().st_size / 1e6:.2f} MB, {len(sdist_names)} files")
    run(sys.executable, "-m", "twine", "check", "--strict", wheel, sdist)
    fresh_install(wheel, args.work_dir)
    print("package check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
