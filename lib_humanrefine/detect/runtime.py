"""LiteRT (``ai-edge-litert``) interpreters, created once per process and model.

MediaPipe's own Python runtime breaks inside the WebUIs' pinned environments, so its ``.tflite``
files run here through LiteRT on the CPU. An interpreter is not thread-safe: ``run`` holds a
per-model lock around set/invoke/get.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

import numpy as np

from .. import models
from ..deps import DEPENDENCIES, install_command, pip_install_command
from ..errors import HumanRefineError

LITERT_PIN = DEPENDENCIES["ai_edge_litert"].distribution  # the version install.py installs


def _threads() -> int:
    """``$HUMANREFINE_THREADS`` (1-64), else 2; a wrong value falls back to 2 instead of failing at import."""
    text = os.environ.get("HUMANREFINE_THREADS", "2")
    return int(text) if text.strip().isdigit() and 1 <= int(text) <= 64 else 2


NUM_THREADS = _threads()


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise HumanRefineError(
            f"HumanRefine needs the LiteRT runtime: {install_command('ai_edge_litert')} (import failed: {exc})"
        ) from None
    return Interpreter


@dataclass
class Model:
    """One loaded model with its input shape and output tensors by index."""

    name: str
    interpreter: object
    input_index: int
    input_shape: tuple[int, ...]
    output_details: list[dict]
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def input_size(self) -> tuple[int, int]:
        """(height, width) of the NHWC input."""
        return int(self.input_shape[1]), int(self.input_shape[2])

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """Invoke on one NHWC float32 tensor; outputs in the model's output order."""
        with self.lock:
            try:
                self.interpreter.set_tensor(self.input_index, tensor.astype(np.float32, copy=False))
                self.interpreter.invoke()
                return [self.interpreter.get_tensor(d["index"]).copy() for d in self.output_details]
            except (RuntimeError, ValueError) as exc:
                raise HumanRefineError(
                    f"LiteRT failed running the model {self.name} ({_first_line(exc)}); reinstall the runtime: "
                    f"{pip_install_command('--force-reinstall', LITERT_PIN)}"
                ) from None


_cache: dict[tuple[str, str], Model] = {}
_cache_lock = threading.Lock()


def load(name: str) -> Model:
    """The process-wide Model for a registered file name (verified on first use)."""
    path = models.model_path(name)
    key = (name, str(path))
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            interpreter_class = _interpreter_class()
            try:
                interpreter = interpreter_class(model_path=str(path), num_threads=NUM_THREADS)
                interpreter.allocate_tensors()
            except (RuntimeError, ValueError, OSError) as exc:
                raise HumanRefineError(
                    f"LiteRT could not load the model {path} ({_first_line(exc)}); fetch the models again with "
                    f"{models.fetch_command()} --force, or reinstall the runtime: "
                    f"{pip_install_command(LITERT_PIN)}"
                ) from None
            inp = interpreter.get_input_details()[0]
            model = Model(
                name=name,
                interpreter=interpreter,
                input_index=inp["index"],
                input_shape=tuple(int(v) for v in inp["shape"]),
                output_details=list(interpreter.get_output_details()),
            )
            _cache[key] = model
    return model


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:160] if lines else exc.__class__.__name__


def output_by_name(model: Model, outputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs keyed by tensor name (handy where a model's output order is not obvious)."""
    return {d["name"]: out for d, out in zip(model.output_details, outputs)}
