"""A client of the WebUI's ``POST /humanrefine/v1/refine`` route (``python -m lib_humanrefine refine
IMAGE --url http://127.0.0.1:7860``): the diffusion runs in the WebUI, this machine only sends the
image and writes the answer. Standard library only (urllib).

Nothing the server sends is trusted: the address is checked before any work (http or https, a
host, a port that is a number), the server is asked for its schema first (``check_server``: the
route is there, the credentials work), and each answer is checked (``refine_answer``: a JSON object
with a base64 PNG that decodes completely, the info line and the report) before anything is
written. Every failure is one line naming the server."""

from __future__ import annotations

import base64
import binascii
import io
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from .errors import BadArgument, BadImage, HumanRefineError, shown

REFINE_ROUTE = "/humanrefine/v1/refine"
SCHEMA_ROUTE = "/humanrefine/v1/schema"
DEFAULT_TIMEOUT = 3600.0  # seconds for one answer: a refine waits in the WebUI's queue behind other jobs
CHECK_TIMEOUT = 30.0  # seconds for the schema asked before any work
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class RouteError(HumanRefineError):
    """The WebUI answered with an error or could not be reached; one line."""


def checked_url(url: str, flag: str = "--url") -> str:
    """``url`` without a trailing slash when it is an http(s) address with a host (and a numeric port
    if any); BadArgument saying what to write otherwise. urllib would otherwise open ``file:`` and
    ``ftp:`` addresses, or read ``host:port`` as a scheme."""
    text = str(url).strip()
    if "://" not in text and text:
        raise BadArgument(f"{flag} {shown(url)} has no scheme: write http://{text} (or https://)")
    try:
        parts = urllib.parse.urlsplit(text)
    except ValueError:  # e.g. an unbalanced [ in the host
        raise BadArgument(f"{flag} {shown(url)} is not an address, e.g. http://127.0.0.1:7860") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadArgument(f"{flag} {shown(url)} must be an http:// or https:// address, e.g. http://127.0.0.1:7860")
    try:
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number or out of range
        port_ok = False
    if not parts.hostname or not port_ok:
        raise BadArgument(f"{flag} {shown(url)} needs a host and, if any, a port number, e.g. http://127.0.0.1:7860")
    if parts.query or parts.fragment:
        raise BadArgument(f"{flag} {shown(url)} has a ?query or #fragment: give the WebUI's address alone")
    return text.rstrip("/")


def _request(url: str, path: str, payload: dict | None, auth: str | None, timeout: float):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, headers={"Content-Type": "application/json"})
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        if exc.code == 404:
            detail = "no such route: is HumanRefine installed and the WebUI started with --api?"
        elif exc.code == 401:
            detail = detail or "not authenticated"
            detail += "; give --user USER:PASSWORD as in the WebUI's --api-auth"
        detail = " ".join(str(detail or exc.reason).split())[:300]
        raise RouteError(f"{url}{path} answered HTTP {exc.code}: {detail}") from None
    except (TimeoutError, urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
            raise RouteError(f"{url}{path} did not answer within {timeout:g} s (--timeout)") from None
        raise RouteError(f"cannot reach {url} ({reason}): is the WebUI running with --api?") from None
    except (ValueError, RecursionError):
        raise RouteError(f"{url}{path} did not answer with JSON: is {url} a WebUI?") from None


def post_json(url: str, path: str, payload: dict, auth: str | None = None, timeout: float = DEFAULT_TIMEOUT):
    """The JSON the server answers (any JSON value: the caller checks its shape)."""
    return _request(url, path, payload, auth, timeout)


def check_server(url: str, auth: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> dict:
    """Ask for the routes' schema before any work: proves the address, the route and the credentials."""
    schema = _request(url, SCHEMA_ROUTE, None, auth, min(timeout, CHECK_TIMEOUT))
    if not isinstance(schema, dict) or f"POST {REFINE_ROUTE}" not in (schema.get("routes") or {}):
        raise RouteError(f"{url}{SCHEMA_ROUTE} answered something other than HumanRefine's schema: is {url} a WebUI?")
    return schema


@dataclass
class RefineAnswer:
    png: bytes  # the refined image, a PNG that decodes completely
    info: str  # the one-line result ("P1 face fixed ...")
    report: dict  # diagnosis, refinement (its steps), seed


def refine_answer(answer, where: str) -> RefineAnswer:
    """The refine route's answer, checked: RouteError naming ``where`` when it is not one."""
    from .images import decode

    def wrong(what: str) -> RouteError:
        return RouteError(f"{where} answered {what}, not a refine result; is it HumanRefine's WebUI?")

    if not isinstance(answer, dict):
        raise wrong(f"a JSON {type(answer).__name__}")
    image = answer.get("image")
    if not isinstance(image, str) or not image:
        raise wrong("without an 'image'")
    try:
        png = base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise wrong("an 'image' that is not base64") from None
    if not png.startswith(PNG_SIGNATURE):
        raise wrong("an 'image' that is not a PNG")
    try:
        decode(io.BytesIO(png))  # every pixel: a truncated file fails here, before anything is written
    except BadImage as exc:
        raise wrong(f"an 'image' that does not decode ({exc})") from None
    info, report = answer.get("info"), answer.get("report")
    refinement = report.get("refinement") if isinstance(report, dict) else None
    steps = refinement.get("steps") if isinstance(refinement, dict) else None
    if not isinstance(info, str) or not isinstance(steps, list) or not all(_is_step(s) for s in steps):
        raise wrong("without the 'info' line or the 'report' with its refinement steps")
    return RefineAnswer(png, info, report)


def _is_step(step) -> bool:
    return isinstance(step, dict) and isinstance(step.get("accepted"), bool) and isinstance(step.get("reason"), str)


def refine_payload(image_bytes: bytes, prompt: str, negative_prompt: str, seed: int, steps: int, cfg_scale: float,
                   sampler: str | None, options: dict) -> dict:  # fmt: skip
    payload = {
        "image": base64.b64encode(image_bytes).decode(), "prompt": prompt, "negative_prompt": negative_prompt,
        "seed": seed, "steps": steps, "cfg_scale": cfg_scale, "options": options,
    }  # fmt: skip
    if sampler:
        payload["sampler_name"] = sampler
    return payload
