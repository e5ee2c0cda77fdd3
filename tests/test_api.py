"""The HTTP routes on a bare FastAPI app (as the WebUI mounts them in on_app_started), with the
stand-in host doing the "diffusion". Wrong input must give a 4xx with one line, never a 500."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image
from stand_in_host import ShiftHost

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from lib_humanrefine import service  # noqa: E402
from lib_humanrefine.webui import api  # noqa: E402


def b64(array, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def decode(text):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))).convert("RGB"))


def make_client(credentials=None, host_factory=lambda sampler, scheduler: ShiftHost()):
    app = fastapi.FastAPI()
    api.install_routes(app, credentials, lambda payload: service.refine_request(payload, host_factory))
    return TestClient(app)


@pytest.fixture(scope="module")
def client(models_ready):
    return make_client()


@pytest.fixture(scope="module")
def astronaut_b64(astronaut):
    return b64(astronaut)


def test_schema_lists_options_settings_and_routes(client):
    body = client.get("/humanrefine/v1/schema").json()
    assert [o["key"] for o in body["script_args"]][:3] == ["enabled", "policy", "threshold"]
    assert {"candidates", "verify"} <= {o["key"] for o in body["refine_options"]}
    assert "POST /humanrefine/v1/refine" in body["routes"]


def test_diagnose_returns_the_report_and_an_overlay(client, astronaut_b64):
    response = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64, "overlay": True})
    assert response.status_code == 200
    body = response.json()
    assert body["report"]["width"] == 512 and {p["kind"] for p in body["report"]["parts"]} >= {"face"}
    assert decode(body["overlay"]).shape == (512, 512, 3)
    data_url = "data:image/png;base64," + astronaut_b64
    again = client.post("/humanrefine/v1/diagnose", json={"image": data_url}).json()
    assert again["report"]["parts"] == body["report"]["parts"]


def test_refine_changes_only_accepted_regions_and_reports_every_decision(client, astronaut, astronaut_b64):
    payload = {"image": astronaut_b64, "prompt": "an astronaut <humanrefine:off>", "seed": 3, "steps": 4,
               "options": {"verify": False, "candidates": 2}, "return_candidates": True}  # fmt: skip
    response = client.post("/humanrefine/v1/refine", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    out = decode(body["image"])
    (step,) = body["report"]["refinement"]["steps"]
    assert step["accepted"] and len(step["candidates"]) == 2 and body["info"].startswith("P1 face fixed")
    x0, y0, x1, y1 = step["crop"]
    outside = np.ones(out.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(out[outside], astronaut[outside]) and not np.array_equal(out, astronaut)
    assert len(body["candidates"][0]) == 2 and decode(body["candidates"][0][0]).shape == (y1 - y0, x1 - x0, 3)
    assert body["report"]["seed"] == 3 and body["report"]["diagnosis"]["parts"]


def test_refine_with_explicit_parts_and_policy_off(client, astronaut_b64):
    body = client.post("/humanrefine/v1/refine", json={"image": astronaut_b64, "options": {"policy": "off"}}).json()
    assert body["info"] == "nothing to fix" and body["report"]["refinement"]["steps"] == []
    parts = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64}).json()["report"]["parts"]
    face = next(i for i, p in enumerate(parts) if p["kind"] == "face")
    body = client.post("/humanrefine/v1/refine", json={
        "image": astronaut_b64, "options": {"policy": "off", "verify": False}, "parts": [{"part": face, "denoise": 0.6}]
    }).json()  # fmt: skip
    assert [s["kind"] for s in body["report"]["refinement"]["steps"]] == ["face"]


PNG_1x1 = b64(np.zeros((1, 1, 3), np.uint8))


@pytest.mark.parametrize(
    "route, payload, status, fragment",
    [
        ("diagnose", b"not json", 400, "must be JSON"),
        ("diagnose", [1, 2], 422, "must be a JSON object"),
        ("diagnose", {}, 422, "'image' must be a base64-encoded image"),
        ("diagnose", {"image": 17}, 422, "'image' must be a base64-encoded image"),
        ("diagnose", {"image": "@@@not base64"}, 422, "not valid base64"),
        ("diagnose", {"image": base64.b64encode(b"hello world").decode()}, 422, "not an image file that can be read"),
        ("diagnose", {"image": PNG_1x1}, 422, "too small"),
        ("diagnose", {"image": "A", "path": "/etc/passwd"}, 422, "unknown key(s) 'path'"),
        ("diagnose", {"image": "A", "threshold": "0.5"}, 422, "'threshold' must be a number"),
        ("diagnose", b'{"image": "A", "threshold": NaN}', 422, "'threshold' must be a number"),
        ("diagnose", {"image": "A", "threshold": 3}, 422, "from 0.05 to 1"),
        ("diagnose", {"image": "A", "overlay": "yes"}, 422, "'overlay' must be true or false"),
        ("refine", {"image": "A", "options": {"policy": "x", "candidates": 0, "colour": 1}}, 422, "'colour'"),
        ("refine", {"image": "A", "options": [1]}, 422, "options must be an object"),
        ("refine", {"image": "A", "steps": 0}, 422, "'steps' must be a whole number from 1 to 150"),
        ("refine", {"image": "A", "steps": 2.5}, 422, "'steps' must be a whole number"),
        ("refine", {"image": "A", "seed": True}, 422, "'seed' must be a number"),
        ("refine", {"image": "A", "prompt": ["a"]}, 422, "'prompt' must be a string"),
        ("refine", {"image": "A", "parts": {"part": 0}}, 422, "'parts' must be a list"),
        ("refine", {"image": "A", "parts": [{"part": 0, "x": 1}]}, 422, "unknown key(s) 'x'"),
    ],
)
def test_wrong_input_gets_a_4xx_with_one_line(client, route, payload, status, fragment):
    if isinstance(payload, bytes):
        response = client.post(
            f"/humanrefine/v1/{route}", content=payload, headers={"content-type": "application/json"}
        )
    else:
        response = client.post(f"/humanrefine/v1/{route}", json=payload)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert fragment in detail and "\n" not in detail and "Traceback" not in detail


def test_every_option_problem_is_named_at_once(client):
    detail = client.post("/humanrefine/v1/refine", json={
        "image": "A", "options": {"policy": "x", "candidates": 0, "colour": 1}}).json()["detail"]  # fmt: skip
    assert "'colour'" in detail and "'policy'" in detail and "'candidates'" in detail


def test_parts_beyond_the_image_are_refused(client, astronaut_b64):
    response = client.post("/humanrefine/v1/refine", json={"image": astronaut_b64, "parts": [{"part": 99}]})
    assert response.status_code == 422 and "names part(s) [99]" in response.json()["detail"]


def test_oversized_bodies_are_refused_before_reading(client):
    response = client.post("/humanrefine/v1/diagnose", content=b"{}",
                           headers={"content-type": "application/json", "content-length": str(10**9)})  # fmt: skip
    assert response.status_code == 413


def test_api_auth_is_required_when_the_webui_sets_it(models_ready, astronaut_b64):
    guarded = make_client(api.parse_credentials("alice:s3cret,bob:pw:with:colons"))
    assert guarded.get("/humanrefine/v1/schema").status_code == 401
    assert guarded.get("/humanrefine/v1/schema", auth=("alice", "wrong")).status_code == 401
    assert guarded.get("/humanrefine/v1/schema", auth=("alice", "s3cret")).status_code == 200
    assert guarded.get("/humanrefine/v1/schema", auth=("bob", "pw:with:colons")).status_code == 200
    response = guarded.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64})
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Basic"


def test_missing_models_give_503_with_the_command(tmp_path, astronaut_b64, monkeypatch):
    from lib_humanrefine import models

    monkeypatch.setattr(models, "_explicit_dir", tmp_path / "empty")
    monkeypatch.setattr(models, "_verified", set())
    monkeypatch.setattr("lib_humanrefine.detect.runtime._cache", {})
    response = make_client().post("/humanrefine/v1/diagnose", json={"image": astronaut_b64})
    assert response.status_code == 503 and "models fetch" in response.json()["detail"]


def test_a_missing_runtime_gives_503_with_the_install_command_not_an_internal_error(astronaut_b64, monkeypatch):
    import shlex
    import sys

    from lib_humanrefine.detect import runtime

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # importing it fails
    monkeypatch.setattr(runtime, "_cache", {})
    response = make_client().post("/humanrefine/v1/diagnose", json={"image": astronaut_b64})
    detail = response.json()["detail"]
    assert response.status_code == 503 and "internal error" not in detail
    # the pip of the Python that serves the API, not whatever pip is first on the PATH
    assert f"{shlex.quote(sys.executable)} -m pip install ai-edge-litert==2.3.0" in detail


def test_a_bug_of_ours_is_a_500_in_one_line(astronaut_b64, monkeypatch):
    """OpenCV's errors span several lines; the answer's detail and the console's line do not."""

    def broken(payload, settings=None):
        raise RuntimeError("OpenCV(4.10.0) resize.cpp:4152: error: (-215:Assertion failed)\n  !ssize.empty()\n")

    monkeypatch.setattr(service, "diagnose_request", broken)
    logged = []
    monkeypatch.setattr(api, "log", logged.append)
    response = make_client().post("/humanrefine/v1/diagnose", json={"image": astronaut_b64})
    detail = response.json()["detail"]
    assert response.status_code == 500 and "\n" not in detail and "!ssize.empty()" in detail
    assert detail.startswith("HumanRefine: internal error (RuntimeError: ") and detail.endswith("please report this")
    assert len(logged) == 1 and "\n" not in logged[0]


def test_a_failing_host_keeps_the_image_and_says_why(models_ready, astronaut, astronaut_b64):
    from stand_in_host import BrokenHost

    body = make_client(host_factory=lambda s, sch: BrokenHost()).post(
        "/humanrefine/v1/refine", json={"image": astronaut_b64}).json()  # fmt: skip
    assert np.array_equal(decode(body["image"]), astronaut)
    assert "ControlNet is not installed" in body["info"]


def test_json_answers_are_valid_json(client, astronaut_b64):
    text = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64}).text
    json.loads(text)  # no NaN / Infinity tokens
    assert "NaN" not in text and "Infinity" not in text


def test_bodies_without_a_length_are_bounded_too(client, monkeypatch):
    monkeypatch.setattr(api, "MAX_BODY_BYTES", 1000)
    response = client.post("/humanrefine/v1/diagnose", content=iter([b"{" + b" " * 600, b" " * 600 + b"}"]),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 413


def test_diagnose_takes_a_sensitivity_preset_or_a_threshold(client, astronaut_b64):
    from lib_humanrefine.diagnose import learned

    body = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64, "sensitivity": "strict"}).json()
    assert body["report"]["threshold"] == learned.sensitivity_threshold("strict")
    body = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64, "learned": False}).json()
    assert body["report"]["threshold"] == learned.sensitivity_threshold("balanced", learned=False)
    assert body["report"]["image_score"] is None  # the learned check did not run
    body = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64, "threshold": 0.3}).json()
    assert body["report"]["threshold"] == 0.3
    response = client.post("/humanrefine/v1/diagnose", json={"image": astronaut_b64, "threshold": 0.3,
                                                             "sensitivity": "strict"})  # fmt: skip
    assert response.status_code == 422 and "not both" in response.json()["detail"]
