"""Every hook is documented: a docstring following the template, and an entry in the hook docs."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from balsam_agent import hookspecs

#: The README's "Plugin hooks" section documents every hook for plugin authors.
README = Path(__file__).resolve().parents[2] / "README.md"

HOOKS = sorted(name for name, value in vars(hookspecs).items()
               if name.startswith("balsam_") and inspect.isfunction(value))


def _hook_section() -> str:
    text = README.read_text()
    assert "## Plugin hooks" in text, "no 'Plugin hooks' section in README.md"
    return text.split("## Plugin hooks", 1)[1].split("\n## ", 1)[0]


def test_there_are_hooks() -> None:
    assert "balsam_schedulers" in HOOKS and "balsam_step_timeout" in HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_docstring_follows_the_template(name: str) -> None:
    function = getattr(hookspecs, name)
    doc = inspect.getdoc(function) or ""
    assert doc, f"{name} has no docstring"
    assert ":return:" in doc, f"{name}: docstring says nothing of what it returns"
    assert "Called" in doc, f"{name}: docstring does not say when it is called"
    for parameter in inspect.signature(function).parameters:
        assert f":param {parameter}:" in doc, f"{name}: parameter {parameter} undocumented"
    if getattr(function, "balsam_spec", {}).get("firstresult"):
        assert "first non-None" in doc, f"{name} is firstresult but does not say so"


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_listed_in_the_plugin_hooks_section(name: str) -> None:
    assert f"`{name}(" in _hook_section(), f"{name} is missing from the 'Plugin hooks' documentation"
