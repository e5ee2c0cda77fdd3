"""Errors that carry a one-line message meant for the user."""

from __future__ import annotations


class HumanRefineError(Exception):
    """Base class; ``str(err)`` is a complete, user-facing sentence."""


class ModelsMissing(HumanRefineError):
    """A model file is absent or does not match its pinned SHA-256."""


class BadImage(HumanRefineError):
    """An input image cannot be read or has an unusable shape."""


class BadArgument(HumanRefineError):
    """An option or argument is outside what the command or function accepts."""


class CannotWrite(HumanRefineError):
    """An output file or folder cannot be written (permissions, full disk, a folder in the way)."""


def shown(value: object, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that quote what the user sent."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def shown_names(names: list[str], most: int = 10) -> str:
    """Names the user sent (unknown keys), quoted and cut, at most ``most`` of them."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(shown(name, 40) for name in names[:most]) + more


def failure_on(path, exc: Exception) -> str:
    """One line for an unexpected failure on one image (a HumanRefine bug): a folder run names it and
    goes on, and the user has what to report."""
    detail = " ".join(str(exc).split())[:200]
    return f"{path}: diagnosis failed ({exc.__class__.__name__}{': ' + detail if detail else ''}); please report this"
