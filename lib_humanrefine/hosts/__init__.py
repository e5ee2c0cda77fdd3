"""Hosts run inpaint requests with a diffusion model. ``base`` defines the contract; the WebUI
adapters (A1111, Forge family) live beside it and import WebUI modules lazily."""

from .base import Control, Host, InpaintRequest

__all__ = ["Control", "Host", "InpaintRequest"]
