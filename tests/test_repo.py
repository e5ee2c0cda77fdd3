"""The README's fresh-machine commands are the ones CI runs."""

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


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_ci_runs_the_readme_install_and_diagnose_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    first = readme_commands()[0]
    assert first in ci and "pip install -q '.[cli]'" in first and ".venv/bin/humanrefine diagnose" in first


def test_extension_layout():
    for path in ("scripts/humanrefine.py", "install.py", "preload.py", "LICENSE", "style.css", "javascript"):
        assert (REPO / path).exists(), path


def test_readme_option_tables_are_the_schemas():
    from lib_humanrefine.options import markdown_tables

    text = (REPO / "README.md").read_text()
    block = text.split("<!-- options:start -->\n", 1)[1].split("\n<!-- options:end -->", 1)[0]
    assert block == markdown_tables(), "regenerate with: python -m lib_humanrefine.options"
