"""The HTTP routes under bad input, beyond tests/test_api.py: wrong types for every key, bad base64,
odd, huge and animated images, every Pillow mode sent as base64, NaN/inf and huge numbers, unknown
keys, file paths where an image is expected, malformed JSON, oversized and chunked bodies,
authentication, and random payloads (hypothesis). Never a 500; every refusal is one line."""

from __future__ import annotations

import base64
import io
import json

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_bad_input_images import MODES, png_header_only

fastapi = pytest.importorskip("fastapi")
from test_api import b64, make_client  # noqa: E402

from lib_humanrefine import service  # noqa: E402
from lib_humanrefine.webui import api  # noqa: E402


@pytest.fixture(scope="module")
def client(models_ready):
    return make_client()


@pytest.fixture(scope="module")
def small(astronaut):
    """The astronaut at 256 px (a face the detectors find; quick to diagnose)."""
    return cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)


def post(client, route, payload, **kwargs):
    if isinstance(payload, bytes):
        return client.post(f"/humanrefine/v1/{route}", content=payload, headers={"content-type": "application/json"})
    return client.post(f"/humanrefine/v1/{route}", json=payload, **kwargs)


def refused(response, status=422) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail and len(detail) < 600
    return detail


def report_of(response) -> dict:
    """The report without its timings (the only part that differs between two runs)."""
    assert response.status_code == 200, response.text
    report = response.json()["report"]
    report.pop("timings_ms", None)
    return report


def encoded(image: Image.Image, fmt: str, **save) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return base64.b64encode(buffer.getvalue()).decode()


# --- wrong types ---------------------------------------------------------------------------------

WRONG_TYPES = [
    ("diagnose", "image", None, "'image' must be a base64-encoded image"),
    ("diagnose", "image", 1.5, "'image' must be a base64-encoded image"),
    ("diagnose", "image", True, "'image' must be a base64-encoded image"),
    ("diagnose", "image", [], "'image' must be a base64-encoded image"),
    ("diagnose", "image", {"data": "iVBOR"}, "'image' must be a base64-encoded image"),
    ("diagnose", "threshold", [0.5], "'threshold' must be a number"),
    ("diagnose", "threshold", {"value": 0.5}, "'threshold' must be a number"),
    ("diagnose", "threshold", True, "'threshold' must be a number"),
    ("diagnose", "overlay", 1, "'overlay' must be true or false"),
    ("diagnose", "overlay", "true", "'overlay' must be true or false"),
    ("refine", "prompt", 5, "'prompt' must be a string"),
    ("refine", "negative_prompt", {"a": 1}, "'negative_prompt' must be a string"),
    ("refine", "seed", "42", "'seed' must be a number"),
    ("refine", "steps", 20.5, "'steps' must be a whole number"),
    ("refine", "cfg_scale", "7", "'cfg_scale' must be a number"),
    ("refine", "sampler_name", 3, "'sampler_name' must be a string"),
    ("refine", "scheduler", ["Karras"], "'scheduler' must be a string"),
    ("refine", "options", "all", "options must be an object"),
    ("refine", "options", {"policy": ["all"]}, "'policy' must be one of"),
    ("refine", "options", {"hands": {"on": True}}, "'hands' must be true or false"),
    ("refine", "options", {"candidates": [2]}, "'candidates' must be a number"),
    ("refine", "parts", "0", "'parts' must be a list"),
    ("refine", "parts", [0], "'parts' entry must be a JSON object"),
    ("refine", "parts", [{"part": "0"}], "'part' must be a number"),
    ("refine", "parts", [{"part": 0, "denoise": "high"}], "'denoise' must be a number"),
    ("refine", "parts", [{"part": -1}], "'part' must be a whole number from 0 to 10000"),
    ("refine", "return_candidates", 1, "'return_candidates' must be true or false"),
]


@pytest.mark.parametrize("route, key, value, fragment", WRONG_TYPES)
def test_wrong_types_are_named(client, route, key, value, fragment):
    assert fragment in refused(post(client, route, {"image": "A", key: value}))


@pytest.mark.parametrize("body", [b'"an image"', b"42", b"null", b"true", b"[]"])
def test_a_body_that_is_not_an_object(client, body):
    assert "must be a JSON object" in refused(post(client, "diagnose", body))


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"{'image': 'A'}", b"\xff\xfe{}", b"[" * 100_000 + b"]" * 100_000, b"image=abc"],
    ids=["empty", "unclosed", "single-quotes", "not-utf8", "nested-100000-deep", "form"],
)
def test_bodies_that_are_not_json(client, body):
    assert refused(post(client, "diagnose", body), 400) == "HumanRefine: the request body must be JSON"


# --- numbers: NaN, infinities, huge integers -------------------------------------------------------

HUGE = b"9" * 400  # a JSON integer no float can hold


@pytest.mark.parametrize(
    "route, body, fragment",
    [
        ("diagnose", b'{"image": "A", "threshold": NaN}', "'threshold' must be a number"),
        ("diagnose", b'{"image": "A", "threshold": Infinity}', "'threshold' must be a number"),
        ("diagnose", b'{"image": "A", "threshold": -Infinity}', "'threshold' must be a number"),
        ("diagnose", b'{"image": "A", "threshold": 1e400}', "'threshold' must be a number"),
        ("diagnose", b'{"image": "A", "threshold": ' + HUGE + b"}", "'threshold' must be a number"),
        (
            "refine",
            b'{"image": "A", "seed": ' + HUGE + b"}",
            "'seed' must be a whole number from -1 to 4294967295",
        ),
        ("refine", b'{"image": "A", "seed": Infinity}', "'seed' must be a whole number"),
        ("refine", b'{"image": "A", "cfg_scale": NaN}', "'cfg_scale' must be a number"),
        ("refine", b'{"image": "A", "steps": 1e30}', "'steps' must be a whole number"),
        ("refine", b'{"image": "A", "options": {"threshold": NaN}}', "'threshold' must be between"),
        ("refine", b'{"image": "A", "options": {"candidates": ' + HUGE + b"}}", "'candidates' must be a number"),
        ("refine", b'{"image": "A", "options": {"hand_strength": "inf"}}', "'hand_strength' must be between"),
        ("refine", b'{"image": "A", "parts": [{"part": 0, "denoise": NaN}]}', "'denoise' must be a number"),
        ("refine", b'{"image": "A", "parts": [{"part": ' + HUGE + b"}]}", "'part' must be a whole number"),
    ],
    ids=[
        "nan",
        "inf",
        "-inf",
        "1e400",
        "huge-threshold",
        "huge-seed",
        "inf-seed",
        "nan-cfg",
        "1e30-steps",
        "nan-option",
        "huge-option",
        "inf-text-option",
        "nan-denoise",
        "huge-part",
    ],  # fmt: skip
)
def test_nan_infinite_and_huge_numbers(client, route, body, fragment):
    detail = refused(post(client, route, body))
    assert fragment in detail and len(detail) < 300  # a 400-digit number is not echoed whole


# --- unknown keys --------------------------------------------------------------------------------


def test_unknown_keys_everywhere_are_named_and_cut(client):
    assert "unknown key(s) 'colour'" in refused(post(client, "diagnose", {"image": "A", "colour": 1}))
    assert "unknown option(s) 'colour'" in refused(post(client, "refine", {"image": "A", "options": {"colour": 1}}))
    assert "unknown key(s) 'x'" in refused(post(client, "refine", {"image": "A", "parts": [{"part": 0, "x": 1}]}))
    many = {"image": "A", **{f"key{i:04d}": i for i in range(1000)}}
    detail = refused(post(client, "diagnose", many))
    assert "'key0000'" in detail and "and 990 more" in detail
    long_name = {"image": "A", "k" * 10_000: 1}
    assert "..." in refused(post(client, "diagnose", long_name))
    detail = refused(post(client, "refine", {"image": "A", "options": {"policy": "x" * 100_000}}))
    assert "'policy' must be one of all, flagged, off" in detail


# --- base64 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "'image' must be a base64-encoded image"),
        ("abc", "not valid base64"),  # bad padding
        ("ab$d", "not valid base64"),
        ("iVBORw0KGgo-_AAA", "not valid base64"),  # the URL-safe alphabet
        ("data:image/png;base64,", "'image' is empty"),
        ("data:image/png;base64,%%%%", "not valid base64"),
        ("    \n\t", "'image' is empty"),
        (base64.b64encode(b"%PDF-1.4\n1 0 obj").decode(), "not an image file that can be read"),
        (base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode(), "not an image file that can be read"),
    ],
    ids=["empty", "padding", "alphabet", "url-safe", "empty-data-url", "bad-data-url", "blank", "pdf", "svg"],
)
def test_bad_base64(client, text, fragment):
    assert fragment in refused(post(client, "diagnose", {"image": text}))


def test_data_url_prefix_and_wrapped_lines_are_accepted(client, small):
    plain = b64(small)
    reference = report_of(post(client, "diagnose", {"image": plain}))
    wrapped = "\n".join(plain[i : i + 76] for i in range(0, len(plain), 76))  # `base64` without -w0
    for text in (wrapped, "data:image/png;base64," + wrapped, "data:application/octet-stream;base64," + plain):
        assert report_of(post(client, "diagnose", {"image": text})) == reference


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_and_corrupted_images(client, small, fmt):
    raw = base64.b64decode(encoded(Image.fromarray(small), fmt))
    half = base64.b64encode(raw[: len(raw) // 2]).decode()
    assert "damaged or truncated image" in refused(post(client, "diagnose", {"image": half}))
    flipped = bytearray(raw)
    flipped[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # zeros in the middle of the data
    response = post(client, "diagnose", {"image": base64.b64encode(bytes(flipped)).decode()})
    assert response.status_code in (200, 422)  # some decoders shrug damage off; never a 500
    if response.status_code == 422:
        refused(response)


# --- odd and huge images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [(9000, 9000), (10_000, 10_000), (20_000, 20_000)], ids=["over-our-limit", "pillow-warns", "pillow-bomb"]
)
def test_decompression_bombs_are_refused_before_decoding(client, tmp_path, size):
    data = png_header_only(tmp_path / "bomb.png", *size).read_bytes()
    detail = refused(post(client, "diagnose", {"image": base64.b64encode(data).decode()}))
    assert "too large" in detail and "64 megapixels" in detail


@pytest.mark.parametrize("shape", [(1, 1), (8, 400), (15, 15)])
def test_too_small_images(client, shape):
    assert "too small" in refused(post(client, "diagnose", {"image": b64(np.zeros((*shape, 3), np.uint8))}))


@pytest.mark.parametrize("shape", [(16, 16), (16, 3000), (3000, 16), (20, 20000), (16, 8000), (8000, 16)])
def test_thin_and_tiny_images_are_diagnosed(client, shape):
    response = post(client, "diagnose", {"image": b64(np.full((*shape, 3), 128, np.uint8))})
    assert response.status_code == 200 and response.json()["report"]["parts"] == []
    body = post(client, "refine", {"image": b64(np.full((*shape, 3), 128, np.uint8))}).json()
    assert body["info"] == "nothing to fix" and service.decode_image(body["image"]).shape == (*shape, 3)


def test_an_image_longer_than_the_base64_limit_is_refused_unread(client, small, monkeypatch):
    monkeypatch.setattr(service, "MAX_BASE64_CHARS", 1000)
    assert "'image' is too large" in refused(post(client, "diagnose", {"image": b64(small)}))


def test_oversized_chunked_bodies_are_refused_while_reading(client, monkeypatch):
    monkeypatch.setattr(api, "MAX_BODY_BYTES", 10_000)
    sent = []

    def chunks():
        for _ in range(100):  # no content-length: a chunked upload of 100 kB
            sent.append(1)
            yield b" " * 1000

    response = client.post("/humanrefine/v1/diagnose", content=chunks(), headers={"content-type": "application/json"})
    assert refused(response, 413).startswith("HumanRefine: request body too large")


# --- every Pillow mode, animation, orientation -----------------------------------------------------

MODE_FORMATS = [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("RGBA", "PNG"), ("RGBA", "WEBP"),
                ("I;16", "PNG"), ("I", "PNG"), ("I", "TIFF"), ("F", "TIFF"), ("CMYK", "JPEG"), ("CMYK", "TIFF"),
                ("YCbCr", "JPEG"), ("LAB", "TIFF"), ("RGB", "BMP"), ("RGB", "TIFF"), ("RGB", "WEBP"),
                ("P", "GIF")]  # fmt: skip


def in_mode(rgb: np.ndarray, mode: str) -> Image.Image:
    image = Image.fromarray(rgb)
    if mode in ("I;16", "I", "F"):
        grey = np.asarray(image.convert("L")).astype(np.float32)
        values = {"I;16": grey * 257, "I": grey * 257, "F": grey / 255}[mode]
        return Image.fromarray(values.astype({"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]),
                               mode={"I;16": "I;16", "I": "I", "F": "F"}[mode])  # fmt: skip
    return image.convert(mode)


@pytest.mark.parametrize("mode, fmt", MODE_FORMATS, ids=[f"{m}-{f}" for m, f in MODE_FORMATS])
def test_every_pillow_mode_as_base64(client, small, mode, fmt):
    assert mode in MODES or mode in ("RGB", "YCbCr", "LAB")
    response = post(client, "diagnose", {"image": encoded(in_mode(small, mode), fmt)})
    assert response.status_code == 200, response.text
    report = response.json()["report"]
    assert (report["width"], report["height"]) == (256, 256)
    if mode != "1":  # a dithered 1-bit picture may hide the face; every other mode shows it
        assert "face" in {p["kind"] for p in report["parts"]}, mode


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_give_their_first_frame(client, small, fmt):
    frames = [Image.fromarray(small), Image.fromarray(np.zeros_like(small)), Image.fromarray(small[:, ::-1])]
    animated = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], lossless=True)
    first = encoded(frames[0], fmt, lossless=True)
    report = report_of(post(client, "diagnose", {"image": animated}))
    assert report["parts"] and report == report_of(post(client, "diagnose", {"image": first}))


def test_exif_rotation_is_applied(client, small):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored on its side; displayed turned 90 degrees clockwise
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(small[:, :200])))  # 200 wide, 256 high shown
    upright = post(client, "diagnose", {"image": b64(small[:, :200])}).json()["report"]
    rotated = post(client, "diagnose", {"image": encoded(stored, "JPEG", exif=exif, quality=95)}).json()["report"]
    assert (rotated["width"], rotated["height"]) == (200, 256)
    assert [p["kind"] for p in rotated["parts"]] == [p["kind"] for p in upright["parts"]]


# --- file paths where an image is expected ---------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "file:///etc/passwd", "C:\\Windows\\win.ini", "../../../../etc/hosts", "~/.ssh/id_rsa",
     "\\\\server\\share\\photo.png", "/dev/zero", "http://127.0.0.1:7860/file=outputs/x.png"],
)  # fmt: skip
def test_a_path_given_as_the_image_is_refused(client, path):
    detail = refused(post(client, "diagnose", {"image": path}))
    assert "not valid base64" in detail or "not an image file" in detail


def test_a_readable_image_file_named_in_the_request_is_never_opened(client, small, tmp_path, monkeypatch):
    """A path made of base64 letters, naming a real image relative to the server's folder: the
    route decodes the text as base64 (garbage) and never opens a file."""
    (tmp_path / "imgs").mkdir()
    Image.fromarray(small).save(tmp_path / "imgs" / "photo12", format="PNG")
    monkeypatch.chdir(tmp_path)
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(fp) or real_open(fp, *a, **k))
    for text in ("imgs/photo12", str(tmp_path / "imgs" / "photo12")):
        refused(post(client, "diagnose", {"image": text}))
        refused(post(client, "refine", {"image": text}))
    assert all(isinstance(fp, io.BytesIO) for fp in opened)  # only bytes from the request, never a path
    assert "unknown key(s) 'path'" in refused(post(client, "diagnose", {"path": "imgs/photo12"}))


# --- authentication --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(models_ready):
    return make_client(api.parse_credentials("alice:s3cret,bob:"))


def basic(text: bytes) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(text).decode()}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer s3cret"}, {"Authorization": "Basic !!!"}, {"Authorization": "Basic"},
     basic(b"alice"), basic(b"alice:wrong"), basic(b"ALICE:s3cret"), basic(b"\xff\xfe:\xff"), basic(b":"),
     basic(b"mallory:s3cret")],
    ids=["none", "bearer", "bad-base64", "empty", "no-colon", "wrong", "user-case", "not-utf8", "blank", "unknown"],
)  # fmt: skip
def test_every_route_refuses_without_the_right_credentials(guarded, headers, small):
    for method, route, payload in (("get", "schema", None), ("post", "diagnose", {"image": b64(small)}),
                                   ("post", "refine", {"image": b64(small)})):  # fmt: skip
        response = guarded.request(method, f"/humanrefine/v1/{route}", headers=headers, json=payload)
        assert refused(response, 401) == "HumanRefine: not authenticated (--api-auth is set)"
        assert response.headers["www-authenticate"] == "Basic"


def test_credentials_with_an_empty_password_work(guarded):
    assert guarded.get("/humanrefine/v1/schema", headers=basic(b"bob:")).status_code == 200
    assert guarded.get("/humanrefine/v1/schema", headers=basic(b"alice:s3cret")).status_code == 200


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(guarded, monkeypatch):
    monkeypatch.setattr(api, "MAX_BODY_BYTES", 10)
    read = []

    def chunks():
        read.append(1)
        yield b"{}"

    response = guarded.post("/humanrefine/v1/diagnose", content=chunks(), headers={"content-length": str(10**9)})
    assert response.status_code == 401


def test_api_auth_without_a_colon_lets_nobody_in():
    assert api.parse_credentials("alice") == {}
    assert not api.authorised("Basic " + base64.b64encode(b"alice:").decode(), {})
    assert api.parse_credentials("") is None and api.authorised(None, None)


def test_wrong_methods_are_4xx(client):
    assert client.get("/humanrefine/v1/diagnose").status_code == 405
    assert client.post("/humanrefine/v1/schema", json={}).status_code == 405


# --- random payloads -------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
ANY_KEY = st.sampled_from(sorted(service.REFINE_KEYS | service.DIAGNOSE_KEYS)) | st.text(max_size=8)
OPTION_KEY = st.sampled_from([o["key"] for o in service.schema()["refine_options"]])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(["diagnose", "refine"]),
    payload=st.dictionaries(ANY_KEY, JSON_VALUES, max_size=5),
    options=st.dictionaries(OPTION_KEY, JSON_VALUES, max_size=4),
)
def test_random_payloads_never_get_a_500(client, route, payload, options):
    if route == "refine" and payload.get("options") is not None:
        payload["options"] = options
    payload.setdefault("image", "A")  # no diffusion or diagnosis of random images: the checks are the subject
    response = client.post(f"/humanrefine/v1/{route}", content=json.dumps(payload).encode(),
                           headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code in (400, 422), response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and len(detail) < 800


def test_a_float_rgb_tiff_is_diagnosed(client, small):
    import base64
    import io

    tifffile = pytest.importorskip("tifffile")
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, small.astype(np.float32) / 255.0, photometric="rgb")
    answer = post(client, "diagnose", {"image": base64.b64encode(buffer.getvalue()).decode()})
    assert answer.status_code == 200 and report_of(answer) == report_of(post(client, "diagnose", {"image": b64(small)}))


SERVE = """
import sys, fastapi, uvicorn
from lib_humanrefine.webui import api
app = fastapi.FastAPI()
api.install_routes(app, None, lambda payload: {})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
"""


def test_a_client_that_goes_away_mid_upload_leaves_one_line_in_the_console(tmp_path):
    """A real server in its own process: its console, not a test client's exception."""
    import os
    import socket
    import subprocess
    import sys
    import time

    from conftest import REPO

    pytest.importorskip("uvicorn")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    console = open(tmp_path / "console.txt", "w+")  # noqa: SIM115 - closed below
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], cwd=REPO, stdout=console, stderr=console,
                              env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for route in ("diagnose", "refine"):
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(f"POST /humanrefine/v1/{route} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             'Content-Length: 100000\r\n\r\n{"image": "iVBOR'.encode())  # fmt: skip
                time.sleep(0.3)
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port)) as sock:  # still serving
            sock.sendall(b"GET /humanrefine/v1/schema HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        server.terminate()
        server.wait(10)
        console.seek(0)
        text = console.read()
        console.close()
    assert "Traceback" not in text and "ClientDisconnect" not in text, text
    went = [line for line in text.splitlines() if "went away" in line]
    assert went == [f"[HumanRefine] /humanrefine/v1/{route}: the client went away while sending its request; nothing "
                    "was done" for route in ("diagnose", "refine")]  # fmt: skip
