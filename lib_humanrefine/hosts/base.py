"""The contract between the refinement engine and whatever runs the diffusion model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

CONTROL_KINDS = ("depth", "openpose", "reference")


@dataclass
class Control:
    """One ControlNet-style condition. ``image`` is sized like the generation (w, h); for
    ``reference`` it is the appearance reference and ``fidelity`` its style fidelity."""

    kind: str  # "depth" | "openpose" | "reference"
    weight: float
    start: float = 0.0  # guidance start, fraction of the schedule
    end: float = 1.0
    fidelity: float | None = None  # reference only
    image: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self):
        if self.kind not in CONTROL_KINDS:
            raise ValueError(f"unknown control kind {self.kind!r}")

    def describe(self) -> dict:
        out = {"kind": self.kind, "weight": self.weight, "start": self.start, "end": self.end}
        if self.fidelity is not None:
            out["fidelity"] = self.fidelity
        return out


@dataclass
class InpaintRequest:
    """Inpaint ``image`` (an RGB crop) where ``mask`` is white, generating at ``size``."""

    image: np.ndarray = field(repr=False)  # H x W x 3 uint8, the crop
    mask: np.ndarray = field(repr=False)  # H x W uint8, 255 = repaint
    size: tuple[int, int]  # (w, h) generation size, multiples of 8
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    cfg_scale: float
    denoising_strength: float
    controls: list[Control] = field(default_factory=list)
    label: str = ""  # what is being fixed, for progress text and logs ("P1 left hand")


class HostInterrupted(Exception):
    """The user pressed Interrupt or Skip during a pass, or the host cannot go on: the pass's result
    must not be used and no further pass is tried for this image."""

    def __init__(self, reason: str = "interrupted"):
        super().__init__(reason)
        self.reason = reason


class HostOutOfMemory(HostInterrupted):
    """A pass ran out of (GPU) memory: the host has given memory back; trying again would fail too."""

    def __init__(self, detail: str = ""):
        super().__init__("out of memory")
        self.detail = detail


class Host(Protocol):
    """Runs one request; returns the inpainted crop (any size; the engine resizes it to the crop)."""

    def inpaint(self, request: InpaintRequest) -> np.ndarray: ...
