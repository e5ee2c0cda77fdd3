"""The README and docs/ against the code: the README's fresh-machine commands are the ones CI runs,
the option tables are the schema's, every relative link leads somewhere, and the README stays a
short front page."""

import re
from pathlib import Path

import pytest
from conftest import REPO
from markdown_it import MarkdownIt

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


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


def test_ci_runs_the_readme_install_and_diagnose_command():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    first = readme_commands()[0]
    assert first in ci and "pip install -q '.[cli]'" in first and ".venv/bin/humanrefine diagnose" in first


def test_extension_layout():
    for path in ("scripts/humanrefine.py", "install.py", "preload.py", "LICENSE", "style.css", "javascript"):
        assert (REPO / path).exists(), path


def test_docs_option_tables_are_the_schemas():
    from lib_humanrefine.options import markdown_tables

    text = (REPO / "docs" / "options.md").read_text()
    block = text.split("<!-- options:start -->\n", 1)[1].split("\n<!-- options:end -->", 1)[0]
    assert block == markdown_tables(), "regenerate with: python -m lib_humanrefine.options"


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings_and_links(page: Path) -> tuple[set[str], list[str]]:
    """A Markdown page's heading anchors and link targets (code blocks and inline code excluded)."""
    tokens = MarkdownIt("commonmark").parse(page.read_text())
    anchors, links = set(), []
    for previous, token in zip([None, *tokens], tokens):
        if token.type != "inline":
            continue
        if previous is not None and previous.type == "heading_open":
            anchor = unique = github_anchor("".join(child.content for child in token.children or []))
            n = 0
            while unique in anchors:  # GitHub numbers repeated headings: top, top-1, top-2...
                n += 1
                unique = f"{anchor}-{n}"
            anchors.add(unique)
        links += [child.attrs["href"] for child in token.children or [] if child.type == "link_open"]
    return anchors, links


def test_github_anchor_matches_githubs_rules():
    assert github_anchor("How good is the diagnosis?") == "how-good-is-the-diagnosis"
    assert github_anchor("plan.json") == "planjson"
    assert github_anchor("What was tried and not adopted") == "what-was-tried-and-not-adopted"


def test_headings_and_links_are_read_from_markdown(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Top\n\nSee [a](other.md#x) and `[b](not-a-link.md)`.\n\n```\n[c](code.md)\n```\n")
    assert headings_and_links(page) == ({"top", "top-1"}, ["other.md#x"])


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_relative_links_lead_to_existing_files_and_headings(page):
    broken = []
    for link in headings_and_links(page)[1]:
        if re.match(r"[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists() or REPO not in target.parents:
            broken.append(f"{link}: no such file in the repository")
        elif anchor and target.suffix == ".md" and anchor not in headings_and_links(target)[0]:
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: " + "; ".join(broken)


def test_readme_is_a_short_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 220, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(REPO).as_posix())
def test_no_issue_tracker_references(page):
    found = re.findall(r"\(?\bissues? #?\d+\)?", page.read_text(), flags=re.IGNORECASE)
    assert not found, f"{page.relative_to(REPO)} refers to the issue tracker: {found}"
