"""The public API is exactly what each package's `__all__` lists (as httpx's tests/test_exported_members.py): the
top-level names of `triage`, and the curated API each subpackage offers the others."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import triage


def _subpackages(package: ModuleType) -> list[str]:
    return [info.name for info in pkgutil.iter_modules(package.__path__) if info.ispkg]


def _all_packages(package: ModuleType) -> list[str]:
    names = []
    for name in _subpackages(package):
        full = f"{package.__name__}.{name}"
        names.append(full)
        names += _all_packages(importlib.import_module(full))
    return names


@pytest.mark.parametrize("name", ["triage", *_all_packages(triage)])
def test_all_is_complete_and_importable(name: str) -> None:
    package = importlib.import_module(name)
    public = {n for n in dir(package) if not n.startswith("_")} - set(_subpackages(package))
    assert public == set(package.__all__)
    for member in package.__all__:
        assert getattr(package, member) is not None


def test_exceptions_form_one_tree() -> None:
    errors = [getattr(triage, name) for name in triage.__all__ if name.endswith(("Error", "Failed", "Denied"))]
    assert errors and all(issubclass(error, triage.TriageError) for error in errors)
