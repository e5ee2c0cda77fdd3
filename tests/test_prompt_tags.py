import itertools
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib_humanrefine import prompt_tags
from lib_humanrefine.options import ScriptArgs

ON = ScriptArgs(enabled=True)
OFF = ScriptArgs(enabled=False)

# the WebUI's own parser (modules/extra_networks.py parse_prompt), as it strips every tag
HOST_TAG = re.compile(r"<(\w+):([^>]+)>")

words = st.sampled_from(["off", "on", "all", "flagged", "diagnose", "hands", "faces", "bodies", "hand", "zzz", ""])
tags = st.builds(
    lambda name, word, value: f"<{name}:{word}{value}>",
    st.sampled_from(["humanrefine", "HumanRefine", "lora", "humanrefiner"]),
    words,
    st.sampled_from(["", ":0.4", ":2", ":x", ":0.3:1"]),
)
plain = st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=12)
prompts = st.lists(st.one_of(tags, plain), max_size=6).map("".join)
anything = st.lists(st.one_of(tags, st.text(max_size=12)), max_size=6).map("".join)


def host_strip(prompt):
    return HOST_TAG.sub("", prompt)


@given(anything)
def test_any_prompt_parses_without_raising(prompt):
    switch = prompt_tags.parse(prompt)
    for value in switch.strengths.values():
        assert 0.05 <= value <= 1.0
    args = switch.apply(ON)
    assert args is None or args.enabled
    assert all("\n" not in w for w in switch.warnings)


@given(prompts)
def test_stripping_our_tags_changes_nothing_the_host_conditions_on(prompt):
    stripped = prompt_tags.strip(prompt)
    assert host_strip(stripped) == host_strip(prompt)
    assert not prompt_tags.parse(stripped).present and not prompt_tags.parse(stripped).warnings
    assert prompt_tags.strip(stripped) == stripped


@given(st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=20), st.text(max_size=0) | words)
def test_text_around_a_tag_is_kept(text, word):
    assert prompt_tags.strip(f"{text}<humanrefine:off>{text}") == text + text
    assert prompt_tags.strip(f"{text}<lora:x:1>") == f"{text}<lora:x:1>"


@pytest.mark.parametrize("order", list(itertools.permutations(["<humanrefine:off>", "<humanrefine:hands:0.6>",
                                                                "<humanrefine:on>"])))  # fmt: skip
def test_off_wins_in_any_order(order):
    assert prompt_tags.parse("a photo " + " ".join(order)).apply(ON) is None


def test_switches_change_the_options_for_that_image():
    assert prompt_tags.parse("a woman waving").apply(ON) == ON
    assert prompt_tags.parse("a woman waving").apply(OFF) is None
    on = prompt_tags.parse("a woman <humanrefine:on>").apply(OFF)
    assert on == ScriptArgs(enabled=True)  # on without the accordion
    hands = prompt_tags.parse("x <humanrefine:hands:0.6>").apply(ON)
    assert (hands.hands, hands.faces, hands.bodies, hands.hand_strength) == (True, False, False, 0.6)
    both = prompt_tags.parse("<humanrefine:faces:0.4> <humanrefine:hands>").apply(ON)
    assert (both.hands, both.faces, both.bodies, both.face_strength, both.hand_strength) == (
        True,
        True,
        False,
        0.4,
        0.5,
    )
    assert prompt_tags.parse("<humanrefine:flagged>").apply(ON).policy == "flagged"
    assert prompt_tags.parse("<humanrefine:diagnose>").apply(ON).policy == "off"
    assert prompt_tags.parse("<HumanRefine:OFF>").off


@pytest.mark.parametrize(
    "prompt, fragment",
    [
        ("<humanrefine:hnads>", "unknown switch 'hnads'"),
        ("<humanrefine:hands:lots>", "strength must be a number"),
        ("<humanrefine:faces:3>", "strength must be a number"),
        ("<humanrefine:off:now>", "extra values ignored"),
    ],
)
def test_mistakes_are_reported_not_fatal(prompt, fragment):
    switch = prompt_tags.parse(prompt)
    assert any(fragment in w for w in switch.warnings)
    assert "\n" not in " ".join(switch.warnings)


def test_unknown_only_tags_do_not_switch_it_on():
    assert prompt_tags.parse("<humanrefine:hnads>").apply(OFF) is None
