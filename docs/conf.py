"""Sphinx configuration of the rrlyrae_metallicity documentation (astropy style)."""

import os
import sys
from datetime import date
from pathlib import Path

from sphinx_astropy.conf.v3 import *  # noqa: F403

import rrlyrae_metallicity

DOCS = Path(__file__).resolve().parent
# The extension (docs/_ext/).
sys.path.insert(0, str(DOCS / "_ext"))

project = "rrlyrae_metallicity"
author = "rrlyrae_metallicity developers"
copyright = f"{date.today().year}, {author}"
version = rrlyrae_metallicity.__version__.split("+")[0]
release = rrlyrae_metallicity.__version__

extensions += [  # noqa: F405
    "sphinx.ext.doctest",
    "generated_pages",
]
exclude_patterns += ["_generated"]  # noqa: F405
templates_path = []

# The machines this project is built on have no internet: intersphinx would
# fail to fetch its inventories (a warning, hence an error with -W). Build with
# DOCS_OFFLINE=0 to link to the Python, NumPy and astropy documentation.
if os.environ.get("DOCS_OFFLINE", "1") == "1":
    intersphinx_mapping.clear()  # noqa: F405
else:
    intersphinx_mapping.update({  # noqa: F405
        "astropy": ("https://docs.astropy.org/en/stable/", None),
        "onnxruntime": ("https://onnxruntime.ai/docs/api/python/", None),
    })

html_theme_options = {"github_url": "https://github.com/rrlyrae-metallicity/rrlyrae_metallicity"}
html_title = f"{project} {version}"
html_static_path = []

# automodapi: no inheritance diagrams (they need graphviz) and one page per object.
automodapi_inheritance_diagram = False
automodsumm_inherited_members = False
numpydoc_show_class_members = False

# The plot directive runs the examples during the build; the figures are real.
plot_include_source = True
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 100)]
plot_rcparams = {"figure.autolayout": True}

# The doctest builder (tox -e docs runs it after html) executes the
# ``.. doctest::`` blocks of the narrative pages.
doctest_global_setup = "import numpy as np"
# Only the explicit ``.. doctest::`` blocks of the narrative pages: the
# docstring examples shown by automodapi are run by pytest in their modules'
# own namespaces.
doctest_test_doctest_blocks = ""
