"""``python -m lib_humanrefine refine IMAGE --url ...`` against the real routes served on loopback
(uvicorn in a thread), with the stand-in host doing the "diffusion"."""

from __future__ import annotations

import json
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image
from stand_in_host import ShiftHost

uvicorn = pytest.importorskip("uvicorn")
fastapi = pytest.importorskip("fastapi")

from lib_humanrefine import service  # noqa: E402
from lib_humanrefine.webui import api  # noqa: E402


def serve(credentials=None):
    app = fastapi.FastAPI()
    api.install_routes(app, credentials, lambda payload: service.refine_request(payload, lambda s, sch: ShiftHost()))
    return serve_app(app)


@pytest.fixture(scope="module")
def server(models_ready):
    server, thread, url = serve(api.parse_credentials("ann:pw"))
    yield url
    server.should_exit = True
    thread.join(5)


def test_refine_client_writes_the_refined_image_and_the_report(server, cli, tmp_path, astronaut):
    source = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(source)
    out = tmp_path / "out"
    code, stdout, err = cli("refine", source, "--url", server, "--user", "ann:pw", "--seed", "5", "--steps", "3",
                            "--options", '{"verify": false}', "--out", out)  # fmt: skip
    assert code == 0, err
    refined = np.asarray(Image.open(out / "0000_astronaut_refined.png").convert("RGB"))
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["images"]
    assert entry["info"].startswith("P1 face fixed") and "P1 face fixed" in stdout
    (step,) = entry["report"]["refinement"]["steps"]
    x0, y0, x1, y1 = step["crop"]
    outside = np.ones(refined.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(refined[outside], astronaut[outside]) and not np.array_equal(refined, astronaut)
    assert report["complete"] is True and entry["report"]["seed"] == 5


def test_refine_client_errors_are_one_line(server, cli, tmp_path, astronaut):
    source = tmp_path / "a.png"
    Image.fromarray(astronaut).save(source)
    code, _out, err = cli("refine", source, "--url", server, "--out", tmp_path / "o1")
    assert code == 2 and "HTTP 401" in err and "--user USER:PASSWORD" in err and "Traceback" not in err
    code, _out, err = cli("refine", source, "--url", server, "--user", "ann:pw", "--options", '{"colour": 1}',
                          "--out", tmp_path / "o2")  # fmt: skip
    assert code == 2 and "HTTP 422" in err and "unknown option(s) 'colour'" in err
    code, _out, err = cli("refine", source, "--url", "http://127.0.0.1:9", "--out", tmp_path / "o3")
    assert code == 2 and "cannot reach http://127.0.0.1:9" in err and "--api" in err
    code, _out, err = cli("refine", source, "--url", server, "--options", "[1]", "--out", tmp_path / "o4")
    assert code == 2 and "--options must be a JSON object" in err


def test_bench_reports_the_share_of_steps_the_verification_accepted(server, cli, tmp_path, astronaut):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("path,label\na.png,0\n")
    out = tmp_path / "bench.json"
    code, _stdout, err = cli("bench", "--data", tmp_path, "--json", out, "--refine-url", server, "--user", "ann:pw",
                             "--refine-steps", "2", "--refine-options", '{"verify": false}')  # fmt: skip
    assert code == 0, err
    refine = json.loads(out.read_text())["refine"]
    assert refine["images"] == 1 and refine["steps"] == 1 and refine["share_accepted"] == 1.0
    code, _stdout, err = cli("bench", "--data", tmp_path, "--refine-url", server, "--user", "ann:pw")
    refine = json.loads(_stdout[_stdout.index("{") :])["refine"]
    assert refine["share_accepted"] in (0.0, 1.0) and sum(refine["kept_because"].values()) + refine["accepted"] == 1


# --- a server that answers something other than a refine result ------------------------------------


def serve_app(app):
    """``app`` on a loopback port in a thread: (server, thread, its URL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def png_b64(array) -> str:
    import base64
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def wrong_server(astronaut):
    """The schema as HumanRefine's; the refine route answers whatever ``answer["body"]`` holds
    (JSON text), after ``answer["delay"]`` seconds."""
    import asyncio

    from fastapi.responses import Response

    answer = {"body": "{}", "delay": 0.0}
    app = fastapi.FastAPI()

    @app.get("/humanrefine/v1/schema")
    def schema():
        return service.schema()

    async def refine(request):
        await request.body()  # the whole upload, as a WebUI reads it
        await asyncio.sleep(answer["delay"])
        return Response(answer["body"], media_type="application/json")

    app.add_route("/humanrefine/v1/refine", refine, methods=["POST"])  # Starlette's: the request, unannotated

    server, thread, url = serve_app(app)
    yield url, answer
    server.should_exit = True
    thread.join(5)


def _answers(astronaut):
    import base64

    good = png_b64(astronaut[:64, :64])
    report = {"refinement": {"steps": []}}

    def body(**fields):
        return json.dumps({"info": "nothing to fix", "report": report, **fields})

    jpeg = io_bytes(astronaut[:64, :64], "JPEG")
    return {
        "no image": (body(), "without an 'image'"),
        "not base64": (body(image="not base64 at all!"), "an 'image' that is not base64"),
        "truncated": (body(image=good[: len(good) // 2 // 4 * 4]), "an 'image' that does not decode"),
        "a list": (json.dumps([{"image": good}]), "a JSON list"),
        "a JPEG": (body(image=base64.b64encode(jpeg).decode()), "an 'image' that is not a PNG"),
        "empty image": (body(image=""), "without an 'image'"),
        "not a PNG at all": (body(image=base64.b64encode(b"hello").decode()), "an 'image' that is not a PNG"),
        "no report": (json.dumps({"image": good, "info": "x"}), "without the 'info' line or the 'report'"),
        "not JSON": ("<html>hello</html>", "did not answer with JSON"),
    }


def io_bytes(array, fmt: str) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_the_client_checks_the_answer_before_writing_anything(wrong_server, cli, tmp_path, astronaut):
    url, answer = wrong_server
    source = tmp_path / "a.png"
    Image.fromarray(astronaut[:128, :128]).save(source)
    for n, (case, (body, fragment)) in enumerate(_answers(astronaut).items()):
        answer["body"] = body
        out = tmp_path / f"o{n}"
        code, _stdout, err = cli("refine", source, "--url", url, "--out", out)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "Traceback" not in err, (case, err)
        assert lines[0].startswith(f"error: {url}/humanrefine/v1/refine ") and fragment in lines[0], (case, err)
        assert sorted(p.name for p in out.iterdir()) == ["report.json"], case  # no result file, not even empty
        assert json.loads((out / "report.json").read_text())["complete"] is False
    answer["body"] = json.dumps({"image": png_b64(astronaut[:128, :128]), "info": "nothing to fix",
                                 "report": {"refinement": {"steps": []}}})  # fmt: skip
    code, _stdout, err = cli("refine", source, "--url", url, "--out", tmp_path / "good")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "good" / "0000_a_refined.png")), astronaut[:128, :128])


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("127.0.0.1:7860", "has no scheme: write http://127.0.0.1:7860"),
        ("localhost:7860", "has no scheme: write http://localhost:7860"),
        ("ftp://127.0.0.1:21", "must be an http:// or https:// address"),
        ("file:///etc/passwd", "must be an http:// or https:// address"),
        ("http://", "needs a host"),
        ("http://127.0.0.1:port", "needs a host and, if any, a port number"),
        ("http://127.0.0.1:99999", "needs a host and, if any, a port number"),
        ("http://127.0.0.1:7860/?x=1", "has a ?query or #fragment"),
    ],
)
def test_a_url_that_is_not_a_webuis_address_is_refused_before_any_work(cli, tmp_path, astronaut, url, fragment):
    source = tmp_path / "a.png"
    Image.fromarray(astronaut[:64, :64]).save(source)
    start = time.monotonic()
    code, _stdout, err = cli("refine", source, "--url", url, "--out", tmp_path / "out")
    assert code == 2 and err.strip().startswith(f"error: --url {url!r} ") and fragment in err, err
    assert len(err.strip().splitlines()) == 1 and time.monotonic() - start < 5
    assert not (tmp_path / "out").exists()  # refused before the output folder was made
    code, _stdout, err = cli("bench", "--data", tmp_path, "--refine-url", url)
    assert code == 2 and "--refine-url" in err and fragment in err and len(err.strip().splitlines()) == 1


def test_timeout_bounds_the_wait_for_an_answer(wrong_server, cli, tmp_path, astronaut):
    url, answer = wrong_server
    source = tmp_path / "a.png"
    Image.fromarray(astronaut[:64, :64]).save(source)
    answer["delay"] = 5.0
    try:
        start = time.monotonic()
        code, _stdout, err = cli("refine", source, "--url", url, "--timeout", "0.5", "--out", tmp_path / "out")
    finally:
        answer["delay"] = 0.0
    assert code == 2 and err.strip() == f"error: {url}/humanrefine/v1/refine did not answer within 0.5 s (--timeout)"
    assert time.monotonic() - start < 4
    for bad in ("0", "-1", "nan", "inf", "soon"):
        code, _stdout, err = cli("refine", source, "--url", url, "--timeout", bad)
        assert code == 2 and "--timeout" in err and "seconds above 0" in err


def test_bench_checks_the_refine_url_before_scoring(cli, tmp_path, astronaut, models_ready):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("path,label\na.png,0\n")
    start = time.monotonic()
    code, stdout, err = cli("bench", "--data", tmp_path, "--refine-url", "http://127.0.0.1:9")
    assert code == 2 and stdout == "" and err.strip().startswith("error: cannot reach http://127.0.0.1:9 (")
    assert "score=" not in err and time.monotonic() - start < 10  # no image was scored
    for limit in ("-1", "0"):
        code, _stdout, err = cli("bench", "--data", tmp_path, "--refine-url", "http://127.0.0.1:9", "--refine-limit",
                                 limit)  # fmt: skip
        assert code == 2 and err.strip() == "error: --refine-limit and --refine-steps must be at least 1"


def test_a_refine_failure_in_bench_keeps_the_diagnosis_figures(wrong_server, cli, tmp_path, astronaut, models_ready):
    url, answer = wrong_server
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("path,label\na.png,0\n")
    answer["body"] = json.dumps(["not", "a", "result"])
    out = tmp_path / "bench.json"
    code, stdout, err = cli("bench", "--data", tmp_path, "--no-stability", "--refine-url", url, "--json", out)
    figures = json.loads(out.read_text())
    assert code == 2 and json.loads(stdout) == figures and figures["n_neg"] == 1 and "latency_ms_p50" in figures
    assert figures["refine"]["images"] == 0 and "a JSON list" in figures["refine"]["error"]
    last = err.strip().splitlines()[-1]
    assert last == f"error: --refine-url: {url}/humanrefine/v1/refine answered a JSON list, not a refine result; " \
                   "is it HumanRefine's WebUI?" and "Traceback" not in err  # fmt: skip


def test_refine_reads_the_generation_parameters_of_a_webui_image(server, cli, tmp_path, astronaut):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "an astronaut\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 77, Size: 512x512")
    source = tmp_path / "webui.png"
    Image.fromarray(astronaut).save(source, pnginfo=info)
    code, stdout, err = cli("refine", source, "--url", server, "--user", "ann:pw", "--options", '{"verify": false}',
                            "--out", tmp_path / "out")  # fmt: skip
    assert code == 0, err
    assert "from the image's infotext: prompt, seed 77, steps 3, CFG 5, sampler Euler a" in stdout
    (entry,) = json.loads((tmp_path / "out" / "report.json").read_text())["images"]
    assert entry["report"]["seed"] == 77
    code, stdout, err = cli("refine", source, "--url", server, "--user", "ann:pw", "--options", '{"verify": false}',
                            "--seed", "8", "--out", tmp_path / "given")  # fmt: skip
    assert code == 0, err
    (entry,) = json.loads((tmp_path / "given" / "report.json").read_text())["images"]
    assert entry["report"]["seed"] == 8 and "seed 77" not in stdout
