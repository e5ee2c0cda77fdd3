"""Generation parameters ("infotext") as the WebUIs write them into images, read and extended.

The format: the prompt (one or more lines), then ``Negative prompt: ...`` (optional), then one
line of ``Key: value`` pairs separated by commas, values holding a comma or colon JSON-quoted::

    a photo of a woman waving
    Negative prompt: blurry
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1234, Size: 512x768, Model: v1-5-pruned

PNGs carry it in the ``parameters`` text chunk, JPEG and WebP in the EXIF UserComment. Parsed
here without the WebUI, so the tab reads the same values inside and outside one (the WebUI's own
parser also moves style text out of the prompt, which must not happen to a refine prompt).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

NEGATIVE = "Negative prompt:"
# One "Key: value" pair of the parameters line; the value is JSON-quoted or runs to the next comma.
_PAIR = re.compile(r'\s*([\w][\w \-/+()]*):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_EXIF_USER_COMMENT = 0x9286
_EXIF_IFD = 0x8769


@dataclass
class Generation:
    """What an infotext says about how the image was made (None: not said)."""

    prompt: str = ""
    negative_prompt: str = ""
    params: dict[str, str] = field(default_factory=dict)  # the parameters line, values unquoted

    @property
    def seed(self) -> int | None:
        return _int(self.params.get("Seed"))

    @property
    def steps(self) -> int | None:
        return _int(self.params.get("Steps"))

    @property
    def cfg_scale(self) -> float | None:
        try:
            return float(self.params["CFG scale"])
        except (KeyError, ValueError):
            return None

    @property
    def size(self) -> tuple[int, int] | None:
        match = _SIZE.match(self.params.get("Size", ""))
        return (int(match.group(1)), int(match.group(2))) if match else None

    @property
    def model(self) -> str | None:
        return self.params.get("Model") or self.params.get("Model hash")

    @property
    def sampler_name(self) -> str | None:
        return self.params.get("Sampler")

    @property
    def scheduler(self) -> str | None:
        return self.params.get("Schedule type")

    @property
    def generated(self) -> bool:
        """True when the text looks like a WebUI's (it has sampling parameters)."""
        return "Steps" in self.params or "Sampler" in self.params


def _int(text: str | None) -> int | None:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return None


def quote(value: object) -> str:
    """A value as the parameters line holds it: JSON-quoted when it has a comma, colon or newline."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if any(c in text for c in ",:\n") else text


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def parse_params(line: str) -> dict[str, str]:
    return {key.strip(): unquote(value.strip()) for key, value in _PAIR.findall(line)}


def parse(text: str | None) -> Generation:
    """An infotext → Generation. A last line with fewer than three ``Key: value`` pairs is prompt text."""
    lines = (text or "").strip().split("\n")
    params: dict[str, str] = {}
    if len(lines) and len(_PAIR.findall(lines[-1])) >= 3:
        params = parse_params(lines.pop())
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith(NEGATIVE):
            in_negative, line = True, line[len(NEGATIVE) :].strip()
        (negative if in_negative else prompt).append(line)
    return Generation("\n".join(prompt).strip(), "\n".join(negative).strip(), params)


def compose(generation: Generation, extra: dict[str, object] | None = None) -> str:
    """The infotext of ``generation`` with ``extra`` parameters set (replacing same-named ones)."""
    params = dict(generation.params)
    for key, value in (extra or {}).items():
        params.pop(key, None)
        if value is not None:
            params[key] = str(value)
    lines = [generation.prompt] if generation.prompt else []
    if generation.negative_prompt:
        lines.append(f"{NEGATIVE} {generation.negative_prompt}")
    if params:
        lines.append(", ".join(f"{key}: {quote(value)}" for key, value in params.items()))
    return "\n".join(lines)


def read(image) -> str:
    """The infotext a PIL image carries (PNG text chunk, or EXIF UserComment), else ""."""
    info = getattr(image, "info", None) or {}
    text = info.get("parameters")
    if isinstance(text, str) and text.strip():
        return text
    try:
        comment = image.getexif().get_ifd(_EXIF_IFD).get(_EXIF_USER_COMMENT)
    except Exception:  # no or broken EXIF: no infotext
        return ""
    return _user_comment(comment)


def _user_comment(comment) -> str:
    """EXIF UserComment: 8 bytes naming the encoding (the WebUIs write UNICODE = UTF-16 big-endian)."""
    if isinstance(comment, str):
        return comment.strip("\x00").strip()
    if not isinstance(comment, (bytes, bytearray)) or len(comment) < 8:
        return ""
    head, body = bytes(comment[:8]), bytes(comment[8:])
    for encoding in ("utf-16-be", "utf-16-le") if head.startswith(b"UNICODE") else ("utf-8", "latin-1"):
        try:
            text = body.decode(encoding).strip("\x00").strip()
        except UnicodeDecodeError:
            continue
        if text.isprintable() or "\n" in text:
            return text
    return ""
