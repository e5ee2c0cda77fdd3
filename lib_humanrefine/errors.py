"""Errors that carry a one-line message meant for the user."""

from __future__ import annotations


class HumanRefineError(Exception):
    """Base class; ``str(err)`` is a complete, user-facing sentence."""


class ModelsMissing(HumanRefineError):
    """A model file is absent or does not match its pinned SHA-256."""


class BadImage(HumanRefineError):
    """An input image cannot be read or has an unusable shape."""
