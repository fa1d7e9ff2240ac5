"""Tools the CI installs (``.ci/run``): where one is missing, a test skips on a developer's
machine and says what to install, but fails when ``CI=true``, so a CI that lost a tool
(a failed install, a changed image) goes red instead of green with fewer tests.

The GPU tests are the one expected skip on CI (it has no GPU); they do not use this.
"""
import importlib
import os

import pytest


def on_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(reason):
    """Skip, saying ``reason``; on CI, which installs every tool these tests need, fail instead."""
    if on_ci():
        pytest.fail(f"CI=true and this test's tool is missing (.ci/run installs it): {reason}", pytrace=False)
    pytest.skip(reason)


def require_module(name, install):
    """Import ``name`` (``install`` says how to get it), or ``missing``. Only a missing module
    skips: one that is installed but fails to import raises, as a broken install should."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name.split(".")[0]:
            raise                   # installed, but something it imports is missing: broken
        missing(f"{name} is not installed ({install})")


def torch():
    """PyTorch (CPU), the test oracle for layers: never a dependency of firecaffe."""
    return require_module("torch", "pip install torch, CPU build: a test oracle only")


def mpi4py():
    return require_module("mpi4py", "pip install 'firecaffe[mpich]'")
