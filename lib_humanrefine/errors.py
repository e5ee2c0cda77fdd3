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


def failure_on(path, exc: Exception) -> str:
    """One line for an unexpected failure on one image (a HumanRefine bug): a folder run names it and
    goes on, and the user has what to report."""
    detail = " ".join(str(exc).split())[:200]
    return f"{path}: diagnosis failed ({exc.__class__.__name__}{': ' + detail if detail else ''}); please report this"
