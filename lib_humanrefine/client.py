"""A client of the WebUI's ``POST /humanrefine/v1/refine`` route (``python -m lib_humanrefine refine
IMAGE --url http://127.0.0.1:7860``): the diffusion runs in the WebUI, this machine only sends the
image and writes the answer. Standard library only (urllib)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

from .errors import HumanRefineError


class RouteError(HumanRefineError):
    """The WebUI answered with an error or could not be reached; one line."""


def post_json(url: str, path: str, payload: dict, auth: str | None = None, timeout: float = 3600) -> dict:
    request = urllib.request.Request(
        url.rstrip("/") + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except (ValueError, AttributeError):
            detail = ""
        if exc.code == 404:
            detail = "no such route: is HumanRefine installed and the WebUI started with --api?"
        elif exc.code == 401:
            detail = detail or "not authenticated"
            detail += "; give --user USER:PASSWORD as in the WebUI's --api-auth"
        raise RouteError(f"{url}{path} answered HTTP {exc.code}: {detail or exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RouteError(f"cannot reach {url} ({reason}): is the WebUI running with --api?") from None
    except ValueError:
        raise RouteError(f"{url}{path} did not answer with JSON") from None


def refine_payload(image_bytes: bytes, prompt: str, negative_prompt: str, seed: int, steps: int, cfg_scale: float,
                   sampler: str | None, options: dict) -> dict:  # fmt: skip
    payload = {
        "image": base64.b64encode(image_bytes).decode(), "prompt": prompt, "negative_prompt": negative_prompt,
        "seed": seed, "steps": steps, "cfg_scale": cfg_scale, "options": options,
    }  # fmt: skip
    if sampler:
        payload["sampler_name"] = sampler
    return payload
