"""TEST DOUBLES for the refinement engine — no diffusion model is involved anywhere here.

``ShiftHost`` returns the request's crop with the masked pixels' values shifted by an amount
that depends only on the seed, so every result is deterministic and traceable to its seed. By
default the shift is at most 2 levels, which the judge keeps as it would a generation that blends
in; ``ShiftHost(spread=50)`` makes candidates that differ plainly (the judge sees a colour cast).
"""

from __future__ import annotations

import numpy as np

from lib_humanrefine.hosts.base import InpaintRequest


class ShiftHost:
    """Test double: masked pixels + (seed mod spread) per channel; records every request."""

    def __init__(self, spread: int = 3):
        self.requests: list[InpaintRequest] = []
        self.spread = spread

    def shift(self, seed: int) -> int:
        return seed % self.spread

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        self.requests.append(request)
        assert request.image.shape[:2] == (request.size[1], request.size[0])
        out = request.image.astype(np.int32)
        out[request.mask > 0] += self.shift(request.seed)
        return np.clip(out, 0, 255).astype(np.uint8)


class IdentityHost:
    """Test double: returns the crop unchanged."""

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        return request.image.copy()


class BrokenHost:
    """Test double: fails like a host whose model or ControlNet is missing."""

    def inpaint(self, request: InpaintRequest) -> np.ndarray:
        raise RuntimeError("ControlNet is not installed")
