"""The README and docs/ against the code: the README's fresh-machine commands are the ones CI runs,
and the option tables are the schema's."""

import re

from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", quick)


def test_readme_has_exactly_two_setup_commands():
    commands = readme_commands()
    assert len(commands) == 2
    assert "diagnose" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_commands():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for command in readme_commands():
        assert command in ci, f".ci/run lacks the README's command: {command}"


def test_extension_layout():
    for path in ("scripts/humanrefine.py", "install.py", "preload.py", "LICENSE", "style.css", "javascript"):
        assert (REPO / path).exists(), path


def test_docs_option_tables_are_the_schemas():
    from lib_humanrefine.options import markdown_tables

    text = (REPO / "docs" / "options.md").read_text()
    block = text.split("<!-- options:start -->\n", 1)[1].split("\n<!-- options:end -->", 1)[0]
    assert block == markdown_tables(), "regenerate with: python -m lib_humanrefine.options"
