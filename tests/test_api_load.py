"""A small run of tools/api_load.py (2 clients x 5 requests on a bare app on loopback, with the
stand-in generation running), so the load check cannot rot; the full figures are in docs/measured.md."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
from conftest import REPO

pytest.importorskip("uvicorn")
_spec = importlib.util.spec_from_file_location("api_load", REPO / "tools" / "api_load.py")
api_load = importlib.util.module_from_spec(_spec)
sys.modules["api_load"] = api_load  # its dataclasses look their module up
_spec.loader.exec_module(api_load)


def test_a_small_load_run_passes_every_check(models_ready, tmp_path, capsys):
    code = api_load.main(["--clients", "2", "--requests", "5", "--max-images", "4", "--max-seconds", "300",
                          "--json", str(tmp_path / "load.json")])  # fmt: skip
    printed = capsys.readouterr().out
    figures = json.loads((tmp_path / "load.json").read_text())
    assert code == 0 and "result            PASS" in printed, printed
    assert figures["ok"] == figures["sent"] == 10 and figures["mismatches"] == figures["failures"] == 0
    assert figures["generations_during_load"] >= 1 and figures["server_alive"]
    if sys.platform.startswith("linux"):
        assert figures["rss_mib_before"] > 50 and abs(figures["rss_growth_mib"]) < 64


def test_cross_talk_and_failures_are_caught(monkeypatch):
    """The checks can fail: an answer meant for another image, and a refused connection."""
    references = [{"width": 1, "parts": []}, {"width": 2, "parts": []}]
    payloads = [("one", "AAAA"), ("two", "BBBB")]
    answers = iter([(200, {"report": {"width": 1, "parts": [], "timings_ms": {"total": 5}}}),  # right
                    (200, {"report": {"width": 1, "parts": []}}),  # image two got image one's answer
                    ConnectionRefusedError(111, "Connection refused")])  # fmt: skip

    def request(*args):
        reply = next(answers)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(api_load, "request", request)
    figures = api_load.Figures()
    api_load.client(0, 3, "http://127.0.0.1:9", None, payloads, references, figures, float("inf"), 1)
    assert (figures.sent, figures.ok, figures.mismatches) == (3, 1, ["two"])
    assert figures.failures == ["one: HTTP None: ConnectionRefusedError: [Errno 111] Connection refused"]


def test_bad_arguments_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        api_load.main(["--clients", "0"])
    assert exit_.value.code == 2 and "--clients 1-64" in capsys.readouterr().err
