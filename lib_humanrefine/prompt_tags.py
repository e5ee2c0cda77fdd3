"""Per-prompt switches written in the prompt, like the WebUI's ``<lora:...>`` tags:

    <humanrefine:off>          HumanRefine does nothing for this image
    <humanrefine:on>           on for this image with the accordion's settings, even if it is unticked
    <humanrefine:flagged>      policy for this image (also: all, diagnose = report only)
    <humanrefine:hands>        fix only hands (also: faces, bodies; several tags add up)
    <humanrefine:faces:0.4>    ... with this strength (denoising) for that part kind

The WebUIs remove every ``<name:args>`` tag from the prompt before conditioning (their extra-network
syntax, ``modules/extra_networks.py``); HumanRefine registers ``humanrefine`` as an extra network
so the tag is known there, and reads each image's own prompt, so a batch (or wildcards) can switch
it per image. The pattern below is the hosts' own, so what is parsed here is exactly what they strip.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .options import POLICIES, POLICY_ALIASES, ScriptArgs

NAME = "humanrefine"
EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # modules/extra_networks.py re_extra_net
KIND_WORDS = {"hands": "hands", "hand": "hands", "faces": "faces", "face": "faces", "bodies": "bodies",
              "body": "bodies", "pose": "bodies"}  # fmt: skip
STRENGTH_FIELD = {"hands": "hand_strength", "faces": "face_strength", "bodies": "body_strength"}


@dataclass(frozen=True)
class PromptSwitch:
    """What an image's prompt says about HumanRefine."""

    present: bool = False  # at least one understood tag
    off: bool = False
    policy: str | None = None
    kinds: frozenset[str] = frozenset()  # empty = as the options say
    strengths: dict[str, float] = field(default_factory=dict)  # kind -> denoising strength
    warnings: tuple[str, ...] = ()

    def apply(self, args: ScriptArgs) -> ScriptArgs | None:
        """The options for this image; None when HumanRefine is off for it."""
        if self.off or not (args.enabled or self.present):
            return None
        out = replace(args, enabled=True)
        if self.policy:
            out = replace(out, policy=self.policy)
        if self.kinds:
            out = replace(out, **{kind: kind in self.kinds for kind in STRENGTH_FIELD})
        return replace(out, **{STRENGTH_FIELD[kind]: value for kind, value in self.strengths.items()})


def _tags(prompt: str):
    for match in EXTRA_NETWORK.finditer(prompt or ""):
        if match.group(1).lower() == NAME:
            yield match.group(2)


def parse(prompt: str) -> PromptSwitch:
    """Read every ``<humanrefine:...>`` tag of one prompt; never raises."""
    present = off = False
    policy = None
    kinds: set[str] = set()
    strengths: dict[str, float] = {}
    warnings = []
    for args in _tags(prompt):
        items = [item.strip().lower() for item in args.split(":")]
        word, rest = items[0], items[1:]
        if word == "off":
            off = present = True
        elif word == "on":
            present = True
        elif POLICY_ALIASES.get(word, word) in POLICIES:
            policy, present = POLICY_ALIASES.get(word, word), True
        elif word in KIND_WORDS:
            kind = KIND_WORDS[word]
            kinds.add(kind)
            present = True
            if rest:
                strength = _strength(rest[0])
                if strength is None:
                    warnings.append(f"<{NAME}:{args}>: strength must be a number from 0.05 to 1")
                else:
                    strengths[kind] = strength
            rest = rest[1:]
        else:
            warnings.append(f"<{NAME}:{args}>: unknown switch '{word}' (off, on, all, flagged, diagnose, hands, "
                            "faces, bodies)")  # fmt: skip
            continue
        if rest:
            warnings.append(f"<{NAME}:{args}>: extra values ignored")
    return PromptSwitch(present, off, policy, frozenset(kinds), strengths, tuple(warnings))


def _strength(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if 0.05 <= value <= 1.0 else None


def strip(prompt: str) -> str:
    """The prompt without HumanRefine's tags (other tags stay; the host handles those)."""
    return EXTRA_NETWORK.sub(lambda m: "" if m.group(1).lower() == NAME else m.group(0), prompt or "")
