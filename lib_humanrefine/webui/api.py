"""HTTP routes (``on_app_started``; only with the WebUI's ``--api``, like its own API):

- ``POST /humanrefine/v1/diagnose`` — base64 image → report (no diffusion; runs beside generations)
- ``POST /humanrefine/v1/refine`` — image + options + prompts → refined image + report (queued
  like the WebUI's own jobs; Interrupt works)
- ``GET /humanrefine/v1/schema`` — what both accept

Wrong input gets a 4xx with ``{"detail": "<one line>"}``, never a 500. ``--api-auth`` credentials
are required exactly as for the WebUI's own API. ``install_routes`` takes the refine runner, so the
routes are tested in CI on a bare FastAPI app with a stand-in host.
"""

# No "from __future__ import annotations" here: FastAPI reads the route functions' annotations
# (``request: Request``) at registration, and Request is imported inside install_routes.
import base64
import binascii
import json
import secrets
from collections.abc import Callable

from .. import service
from ..errors import HumanRefineError, ModelsMissing
from ..options import BadOptions, parse_request_options
from . import current_settings, log, run_in_webui_queue, set_progress, use_webui_models_dir, user_message

PREFIX = "/humanrefine/v1"
MAX_BODY_BYTES = service.MAX_BASE64_CHARS + 1_000_000


def parse_credentials(api_auth: str | None) -> dict[str, str] | None:
    """``--api-auth "user:pass,user2:pass2"`` → {user: pass}; None when not set."""
    if not api_auth:
        return None
    pairs = (entry.split(":", 1) for entry in api_auth.split(",") if ":" in entry)
    return {user.strip(): password for user, password in pairs}


def authorised(header: str | None, credentials: dict[str, str] | None) -> bool:
    if credentials is None:
        return True
    if not header or not header.lower().startswith("basic "):
        return False
    try:
        user, _, password = base64.b64decode(header[6:], validate=True).decode("utf8").partition(":")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    expected = credentials.get(user)
    return expected is not None and secrets.compare_digest(password.encode(), expected.encode())


def install_routes(app, credentials: dict[str, str] | None, run_refine: Callable[[dict], dict]) -> None:
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import ClientDisconnect

    def error(status: int, message: str, **headers) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status, headers=headers or None)

    async def guarded(request: Request, work: Callable[[dict], dict] | None):
        try:
            return await answer(request, work)
        except ClientDisconnect:  # gone mid-upload: nothing was run, and nobody reads an answer
            log(f"{request.url.path}: the client went away while sending its request; nothing was done")
            return error(400, "HumanRefine: the request ended before its body was complete")

    async def answer(request: Request, work: Callable[[dict], dict] | None):
        length = request.headers.get("content-length")
        declared_too_large = bool(length and length.isdigit() and int(length) > MAX_BODY_BYTES)
        if not authorised(request.headers.get("authorization"), credentials):
            if not declared_too_large:  # drain, keeping nothing, so a client still sending gets the answer
                received = 0
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > MAX_BODY_BYTES:
                        break
            return error(401, "HumanRefine: not authenticated (--api-auth is set)", **{"WWW-Authenticate": "Basic"})
        if declared_too_large:
            return error(413, f"HumanRefine: request body too large ({length} bytes; at most {MAX_BODY_BYTES})")
        body = bytearray()  # read before answering (a client still sending gets the answer), bounded
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error(413, f"HumanRefine: request body too large (more than {MAX_BODY_BYTES} bytes)")
        if work is None:
            return JSONResponse(service.schema())
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            return error(400, "HumanRefine: the request body must be JSON")
        try:
            return JSONResponse(await run_in_threadpool(work, payload))
        except service.BadRequest as exc:
            return error(422, str(exc))
        except ModelsMissing as exc:
            return error(503, user_message(exc))
        except HumanRefineError as exc:  # the setup (runtime, model files), named with its fix: not a bug
            log(f"{request.url.path} failed: {user_message(exc)}")
            return error(503, user_message(exc))
        except Exception as exc:  # a bug of ours: say so in one line (OpenCV's messages span lines), keep the server up
            detail = f"{exc.__class__.__name__}: {' '.join(str(exc).split())[:300]}"
            log(f"{request.url.path} failed: {detail}")
            return error(500, f"HumanRefine: internal error ({detail}); please report this")

    async def diagnose(request: Request):
        return await guarded(request, lambda payload: service.diagnose_request(payload, current_settings()))

    async def refine(request: Request):
        return await guarded(request, run_refine)

    async def schema(request: Request):
        return await guarded(request, None)

    app.add_api_route(f"{PREFIX}/diagnose", diagnose, methods=["POST"])
    app.add_api_route(f"{PREFIX}/refine", refine, methods=["POST"])
    app.add_api_route(f"{PREFIX}/schema", schema, methods=["GET"])


def webui_refine(payload: dict) -> dict:
    """The refine route inside the WebUI: one job at a time under the WebUI's queue lock, shown in
    its progress bar, interruptible, through nested passes of the loaded model."""

    from ..hosts.webui import WebUIHost, current_family, stop_reason

    use_webui_models_dir()
    settings = current_settings()
    try:  # the request may choose the ControlNet models (refine_request reports bad options)
        options = payload.get("options") if isinstance(payload, dict) else None
        settings = parse_request_options(options, settings)[1]
    except BadOptions:
        pass
    choices = {"depth": settings.depth_model, "openpose": settings.pose_model}

    def make_host(sampler_name, scheduler):
        return WebUIHost.standalone(sampler_name or "Euler a", scheduler or "Automatic", choices)

    def work():
        set_progress("diagnosing")  # /sdapi/v1/progress shows it until the first pass names its part
        model = current_family().key
        return service.refine_request(
            payload, make_host, settings, model, progress=set_progress, should_stop=stop_reason
        )

    return run_in_webui_queue(work)


def on_app_started(demo, app) -> None:
    from modules import shared  # type: ignore[import-not-found]

    opts = shared.cmd_opts
    if not (getattr(opts, "api", False) or getattr(opts, "nowebui", False)):
        return
    use_webui_models_dir()  # the diagnose route may come before any generation has set it
    install_routes(app, parse_credentials(getattr(opts, "api_auth", None)), webui_refine)
