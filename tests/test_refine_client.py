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
