"""Shared pytest configuration: tests that need the Gaia archive run on request."""

import pytest


def pytest_addoption(parser):
    try:
        parser.addoption(
            "--remote-data",
            action="store_true",
            default=False,
            help="run the tests marked remote_data (they query the Gaia archive)",
        )
    except ValueError:
        # pytest-remotedata (part of pytest-astropy) already defines it, as
        # --remote-data=none|astropy|any.
        pass


def pytest_collection_modifyitems(config, items):
    if config.getoption("--remote-data") in (True, "any", "astropy"):
        return
    skip = pytest.mark.skip(reason="needs --remote-data (Gaia archive)")
    for item in items:
        if "remote_data" in item.keywords:
            item.add_marker(skip)
