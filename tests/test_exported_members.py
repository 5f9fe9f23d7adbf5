"""The public API is exactly what `triage.__all__` lists (as httpx's tests/test_exported_members.py)."""

from __future__ import annotations

import triage


def test_all_is_complete_and_importable() -> None:
    public = {name for name in dir(triage) if not name.startswith("_")}
    assert public == set(triage.__all__)
    for name in triage.__all__:
        assert getattr(triage, name) is not None


def test_exceptions_form_one_tree() -> None:
    errors = [getattr(triage, name) for name in triage.__all__ if name.endswith(("Error", "Failed", "Denied"))]
    assert errors and all(issubclass(error, triage.TriageError) for error in errors)
