"""The README's examples work, and every hook is documented and exercised."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from conftest import REPO

from engine import hookspecs
from engine.config import parse_config

README = (REPO / "README.md").read_text(encoding="utf-8")


def _code_block(after_heading: str, language: str) -> str:
    section = README.split(after_heading, 1)[1]
    match = re.search(rf"```{language}\n(.*?)```", section, re.S)
    assert match, f"no {language} block after {after_heading!r}"
    return match.group(1)


def test_readme_rules_example_is_a_valid_rules_file() -> None:
    """The rules file shown in the README passes validation."""
    config, _ = parse_config(_code_block("## A rules file", "yaml"), "README.md")

    assert [rule.name for rule in config.rules] == ["ERROR_BURST"]
    assert config.rules[0].cooldown_us == 60_000_000


def test_readme_python_example_runs_and_its_assertion_holds() -> None:
    """The engine.testing example in the README runs as written."""
    namespace: dict[str, object] = {}
    exec(_code_block("## Testing rules and plugins in Python", "python"), namespace)
    test_function = namespace["test_three_errors_in_ten_seconds_fire_once"]
    assert callable(test_function)
    test_function()


def test_every_hook_has_a_docstring_saying_when_it_is_called() -> None:
    """Each hook spec documents itself."""
    for name in hookspecs.hook_names():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "called" in doc.lower() or "return" in doc.lower(), name


def test_every_hook_is_listed_in_the_readme_hook_reference() -> None:
    """The README's hook reference names every hook and no hook that does not exist."""
    reference = README.split("### Hooks", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`(engine_[a-z_]+)", reference))

    assert listed == set(hookspecs.hook_names())


def test_every_hook_is_exercised_by_some_test() -> None:
    """Each hook name appears in a test module other than this one."""
    sources = "\n".join(
        path.read_text(encoding="utf-8")
        for path in Path(__file__).parent.rglob("test_*.py")
        if path.name != Path(__file__).name
    )
    missing = [name for name in hookspecs.hook_names() if name not in sources]

    assert missing == []


def test_readme_shows_every_connector_example_as_it_is_shipped() -> None:
    """Each rules file in rules/examples/ appears verbatim in the README."""
    examples = sorted((REPO / "rules" / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        shown = f"`rules/examples/{path.name}`:\n\n```yaml\n"
        assert shown + path.read_text(encoding="utf-8") in README + "\n", path.name
