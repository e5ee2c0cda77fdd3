"""The HumanRefine tab: drop an image (or send one from the txt2img/img2img gallery), diagnose it,
pick the parts to refine with their strength, candidates and control weight, draw an extra mask,
refine, compare before/after with a slider, look at every candidate with the verification's
numbers, keep / swap candidates / save / send to img2img, and teach the diagnosis verdicts.

``build(backend)`` makes the tab's ``gr.Blocks``; everything it needs from its surroundings is in
``Backend``: inside a WebUI ``webui_backend()`` (nested img2img passes under the WebUI's queue lock),
in tests a bare gradio app with a stand-in host (``tests/tab_app.py``). Only constructor arguments
that gradio 3.41 and 4.x share are used, plus the few that differ by family (``source`` / ``sources``,
``_js`` / ``js``, the mask editor); no ``.style()``. Labels are plain strings, so the WebUI's
localization files can translate them. Areas that receive results have fixed heights (style.css).
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import infotext
from ..options import SCRIPT_OPTION, ScriptArgs, Settings
from . import session as sessions
from .ui import follow_sensitivity, option_component, threshold_state

TAB_ID = "humanrefine"
TITLE = "HumanRefine"
MAX_PARTS = sessions.MAX_PARTS
GALLERY_TABS = ("txt2img", "img2img")
HEIGHT = 440  # px: the input image, the overlay and the mask editor


@dataclass
class Backend:
    """What the tab needs from where it is mounted."""

    make_host: Callable  # (sampler_name, scheduler) -> Host
    settings: Callable[[], Settings]
    model: Callable[[], str]  # the loaded checkpoint's family (hosts.families: "sd15", "sdxl"...)
    labels_dir: Callable[[], Path]
    save_image: Callable  # (PIL image, infotext, seed, prompt) -> path of the saved file
    run_job: Callable = lambda work: work()  # runs the refinement (the WebUI: under its queue lock)
    should_stop: Callable[[], str | None] = lambda: None  # the host's Interrupt, if any
    interrupt: Callable[[], None] = lambda: None
    image_from_gallery: Callable | None = None  # a gallery item sent by "Send to HumanRefine" -> PIL image
    loaded_model: Callable[[], str | None] = lambda: None
    mask_editor: str = "upload"  # "sketch" (gradio 3), "forge" (ForgeCanvas) or "upload"
    register_send: Callable | None = None  # (button, "img2img" | "inpaint", image, infotext) -> None
    progress: Callable[[str], None] = lambda text: None  # also shown by the host (the WebUI's progress bar)
    prepare: Callable[[], None] = lambda: None  # before any diagnosis (the WebUI: its models folder)


def gradio_major() -> int:
    import gradio as gr

    return int(gr.__version__.split(".")[0])


def js(code: str) -> dict:
    """The event argument that runs ``code`` in the browser: ``_js`` on gradio 3, ``js`` on 4."""
    return {"js" if gradio_major() >= 4 else "_js": code}


def image_input(gr, **kwargs):
    sources = {"sources": ["upload", "clipboard"]} if gradio_major() >= 4 else {"source": "upload"}
    return gr.Image(type="pil", image_mode="RGB", height=HEIGHT, interactive=True, **sources, **kwargs)


# --- reading what the widgets hold ----------------------------------------------------------------


def to_array(image) -> np.ndarray | None:
    from ..images import to_rgb_array

    return None if image is None else to_rgb_array(image)


def mask_array(value, shape) -> np.ndarray | None:
    """The drawn/uploaded extra mask as H x W uint8 (255 = refine), or None when nothing is marked.

    gradio 3's sketch tool gives {"image", "mask"}; Forge's canvas an RGBA foreground whose alpha
    is the drawing; an uploaded mask is white where to refine."""
    import cv2
    from PIL import Image

    if isinstance(value, dict):
        value = value.get("mask")
    if value is None:
        return None
    if isinstance(value, Image.Image):
        value = np.asarray(value.getchannel("A") if value.mode in ("RGBA", "LA") else value.convert("L"))
    array = np.asarray(value)
    if array.ndim == 3:
        array = array[..., 3] if array.shape[2] == 4 and array[..., 3].min() < 255 else array[..., :3].max(axis=2)
    array = (array > 127).astype(np.uint8) * 255
    if array.shape != tuple(shape[:2]):
        array = cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return array if array.any() else None


def data_url(array: np.ndarray, quality: int = 92) -> str:
    """A JPEG data URL for showing ``array`` (RGB) in the page."""
    import cv2

    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(array, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("could not encode the picture for the page")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def compare_html(before: np.ndarray | None, after: np.ndarray | None, message: str = "") -> str:
    """The before/after slider (javascript/humanrefine-tab.js moves it: drag, arrow keys, Home/End)."""
    if before is None or after is None:
        text = html.escape(message or "Refine to compare the image before and after here.")
        return f'<div class="humanrefine-compare-empty">{text}</div>'
    return (
        '<div class="humanrefine-compare" tabindex="0" role="slider" aria-label="before / after" '
        'aria-valuemin="0" aria-valuemax="100" aria-valuenow="50" style="--humanrefine-pos: 50%">'
        f'<img class="humanrefine-after" alt="after" draggable="false" src="{data_url(after)}">'
        f'<img class="humanrefine-before" alt="before" draggable="false" src="{data_url(before)}">'
        '<div class="humanrefine-divider"></div>'
        '<span class="humanrefine-tag humanrefine-tag-before">before</span>'
        '<span class="humanrefine-tag humanrefine-tag-after">after</span></div>'
    )


def steps_html(session: sessions.Session | None) -> str:
    """One row per refined step: the decision, the check that decided and the judge's numbers for
    the candidate in use (or, when none passed, for the first one tried)."""
    if session is None or session.result is None:
        return '<p class="humanrefine-muted">Each refined part, its candidates and the checks\' decision.</p>'
    if not session.result.steps:
        return f"<p>{html.escape(session.summary())}</p>"
    columns = ("skeleton", "identity", "colour", "seam", "detail")
    rows = []
    for step in session.result.steps:
        chosen = session.chosen.get(step.index, step.chosen)
        shown = step.candidates[chosen] if chosen is not None else next(
            (c for c in step.candidates if c.measures is not None), None
        )  # fmt: skip
        figures = shown.measures.figures() if shown is not None and shown.measures is not None else {}
        decided = "" if shown is None else ("passed" if shown.passed else shown.check or "host")
        cells = (
            session.step_name(step), session.step_phrase(step).removeprefix(session.step_name(step)).strip(),
            f"{step.passed}/{len(step.candidates)}", decided, *(figures.get(c, "") for c in columns),
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
    heads = ("part", "decision", "passed", "check", "skeleton error", "identity", "colour", "seam", "detail")
    head = "".join(f"<th>{h}</th>" for h in heads)
    table = f'<table class="humanrefine-steps"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="humanrefine-steps-scroll">{table}</div>'  # scrolls inside its column (gradio 3 and 4)


def step_choices(session: sessions.Session | None) -> list[str]:
    if session is None or session.result is None:
        return []
    return [f"{i + 1}: {session.step_name(s)}" for i, s in enumerate(session.result.steps)]


def step_of(session: sessions.Session, choice: str | None):
    names = step_choices(session)
    if not names:
        raise ValueError("refine first")
    position = names.index(choice) if choice in names else 0
    return session.result.steps[position]


def parameters_note(generation: infotext.Generation, size: tuple[int, int] | None, loaded: str | None) -> str:
    if not generation.params and not generation.prompt:
        return "No generation parameters in this image: the prompt below (empty unless you write one) is used."
    said = []
    if generation.seed is not None:
        said.append(f"seed {generation.seed}")
    if generation.size:
        said.append(f"size {generation.size[0]}x{generation.size[1]}")
    if generation.sampler_name:
        said.append(f"sampler {generation.sampler_name}")
    if generation.model:
        said.append(f"model {generation.model}")
    text = "Read from the image: " + (", ".join(said) or "the prompt")
    if size and generation.size and tuple(generation.size) != tuple(size):
        text += f" (the image is {size[0]}x{size[1]})"
    if loaded and generation.model and generation.model.lower() not in loaded.lower():
        text += f". The loaded model is {loaded}: parts will be refined with it."
    return text + "."


def standalone_image_from_gallery(value):
    """A gallery item as gradio sends it outside a WebUI: PIL (gradio 4, ``type="pil"``), an
    ``(image, caption)`` pair, or gradio 3's ``{"name": <temporary file>}`` — read only from
    gradio's temporary folder."""
    from PIL import Image

    while isinstance(value, (list, tuple)) and value and not isinstance(value, Image.Image):
        value = value[0]
    if isinstance(value, Image.Image) or value is None:
        return value
    if isinstance(value, np.ndarray):
        return Image.fromarray(value)
    name = value.get("name") or value.get("path") if isinstance(value, dict) else None
    if not name:
        return None
    path = Path(str(name).split("?", 1)[0]).resolve()
    allowed = Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()
    if allowed not in path.parents:
        raise ValueError("HumanRefine: that gallery file is outside gradio's temporary folder")
    with Image.open(path) as img:
        img.load()
        return img


# --- the "Send to HumanRefine" buttons under the txt2img / img2img galleries ------------------------

captured: dict[str, object] = {}  # elem_id -> component of the WebUI's output panels


def on_after_component(component, **kwargs) -> None:
    """``script_callbacks.on_after_component``: remember each gallery and its generation info, and
    add a "Send to HumanRefine" button after the gallery's "Send to extras" button."""
    elem_id = kwargs.get("elem_id") or ""
    for tab in GALLERY_TABS:
        if elem_id in (f"{tab}_gallery", f"generation_info_{tab}"):
            captured[elem_id] = component
        elif elem_id == f"{tab}_send_to_extras":
            captured[f"{tab}_send_to_humanrefine"] = send_button(tab)


def send_button(tab: str):
    tooltip = "Send image and generation parameters to the HumanRefine tab."
    try:
        from modules.ui_components import ToolButton  # type: ignore[import-not-found]

        return ToolButton("🖐️", elem_id=f"{tab}_send_to_humanrefine", tooltip=tooltip)
    except ImportError:
        import gradio as gr

        return gr.Button("Send to HumanRefine", size="sm", elem_id=f"{tab}_send_to_humanrefine")


# --- the tab ------------------------------------------------------------------------------------


@dataclass
class _Run:
    """The refinement running now (the tab runs one at a time)."""

    stop: threading.Event = field(default_factory=threading.Event)
    messages: list[str] = field(default_factory=list)


def build(backend: Backend):
    """The tab's gr.Blocks; inside a WebUI the caller returns it from ``on_ui_tabs``."""
    import gradio as gr

    run = _Run()
    major = gradio_major()

    with gr.Blocks(analytics_enabled=False) as blocks:
        state = gr.State(None)
        with gr.Row(elem_id="humanrefine_top"):
            with gr.Column(elem_id="humanrefine_input_column"):
                image = image_input(gr, label="Image", elem_id="humanrefine_image")
                diagnose = gr.Button("Diagnose", variant="primary", elem_id="humanrefine_diagnose")
                note = gr.Markdown("Drop or paste an image, or send one from txt2img / img2img.",
                                   elem_id="humanrefine_note")  # fmt: skip
                # The accordion's two options, in its order: the sensitivity's help names "the slider above";
                # the slider follows the sensitivity, greyed under a preset with the preset's threshold.
                learned = lambda: backend.settings().learned  # noqa: E731
                starting = threshold_state(SCRIPT_OPTION["sensitivity"].default, learned())
                threshold = option_component(gr, SCRIPT_OPTION["threshold"], "humanrefine_threshold", **starting)
                sensitivity = option_component(gr, SCRIPT_OPTION["sensitivity"], "humanrefine_sensitivity")
                follow_sensitivity(gr, sensitivity, threshold, learned)
                with gr.Accordion("Generation parameters", open=False, elem_id="humanrefine_parameters"):
                    prompt = gr.Textbox(label="Prompt", lines=2, elem_id="humanrefine_prompt")
                    negative = gr.Textbox(label="Negative prompt", lines=2, elem_id="humanrefine_negative")
                    with gr.Row():
                        seed = gr.Number(label="Seed", value=-1, precision=0, elem_id="humanrefine_seed")
                        steps = gr.Slider(1, 150, value=20, step=1, label="Steps", elem_id="humanrefine_steps")
                        cfg = gr.Slider(1, 30, value=7, step=0.5, label="CFG scale", elem_id="humanrefine_cfg")
                    with gr.Row():
                        sampler = gr.Textbox(label="Sampler", value="", elem_id="humanrefine_sampler")
                        scheduler = gr.Textbox(label="Schedule type", value="", elem_id="humanrefine_scheduler")
                    raw = gr.Textbox(label="Infotext", lines=3, interactive=False, elem_id="humanrefine_infotext")
                # Folded away until wanted, except gradio 3's sketch tool: a picture copied into it while
                # folded leaves its canvas without a size (nothing can be drawn).
                sketch = backend.mask_editor == "sketch" and major < 4
                with gr.Accordion("Extra mask", open=sketch, elem_id="humanrefine_mask_accordion"):
                    mask_value, mask_target = mask_editor(gr, backend.mask_editor, major)
                    mask_strength = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Strength of the drawn area",
                                              elem_id="humanrefine_mask_strength")  # fmt: skip
            with gr.Column(elem_id="humanrefine_diagnosis_column"):
                overlay = gr.Image(label="Diagnosis", type="numpy", interactive=False, height=HEIGHT,
                                   elem_id="humanrefine_overlay")  # fmt: skip
                verdict = gr.Markdown("", elem_id="humanrefine_verdict")
                with gr.Row(elem_id="humanrefine_image_teach"):
                    image_fine = gr.Button("Whole image is fine", size="sm", elem_id="humanrefine_image_fine")
                    image_bad = gr.Button("Whole image is malformed", size="sm", elem_id="humanrefine_image_bad")
                rows = []
                with gr.Column(elem_id="humanrefine_parts"):
                    for i in range(MAX_PARTS):
                        rows.append(part_row(gr, i))
                teach_note = gr.Markdown("", elem_id="humanrefine_teach_note")
                with gr.Row():
                    refine = gr.Button("Refine", variant="primary", elem_id="humanrefine_refine")
                    stop = gr.Button("Stop", elem_id="humanrefine_stop")
        progress = gr.Markdown("", elem_id="humanrefine_progress")
        with gr.Row(elem_id="humanrefine_results"):
            with gr.Column(scale=3):
                compare = gr.HTML(compare_html(None, None), elem_id="humanrefine_compare")
                with gr.Row(elem_id="humanrefine_actions"):
                    keep = gr.Button("Keep", variant="primary", interactive=False, elem_id="humanrefine_keep")
                    again = gr.Button("Refine again", interactive=False, elem_id="humanrefine_again")
                    save = gr.Button("Save", interactive=False, elem_id="humanrefine_save")
                    to_img2img = gr.Button("Send to img2img", interactive=False, elem_id="humanrefine_to_img2img",
                                           visible=backend.register_send is not None)  # fmt: skip
                    to_inpaint = gr.Button("Send to inpaint", interactive=False, elem_id="humanrefine_to_inpaint",
                                           visible=backend.register_send is not None)  # fmt: skip
            with gr.Column(scale=2):
                table = gr.HTML(steps_html(None), elem_id="humanrefine_steps_table")
                step_pick = gr.Dropdown(label="Part", choices=[], elem_id="humanrefine_step")
                candidates = gr.Gallery(label="Candidates", columns=5, height=180, allow_preview=True,
                                        object_fit="contain", elem_id="humanrefine_candidates")  # fmt: skip
                use = gr.Dropdown(label="Use", choices=[], elem_id="humanrefine_use")
        result_image = gr.Image(type="pil", visible=False, elem_id="humanrefine_result")
        result_text = gr.Textbox(visible=False, elem_id="humanrefine_result_infotext")
        send_index = gr.Number(value=0, precision=0, visible=False, elem_id="humanrefine_send_index")

        part_inputs = [c for row in rows for c in (row["pick"], row["strength"], row["candidates"], row["control"])]
        row_outputs = [c for row in rows for c in (row["group"], row["pick"], row["strength"], row["candidates"],
                                                   row["control"], row["reasons"])]  # fmt: skip
        actions = [keep, again, save, to_img2img, to_inpaint]
        results = [progress, compare, table, step_pick, candidates, use, result_image, result_text, *actions]

        def cleared_results(message: str = ""):
            return [message, compare_html(None, None), steps_html(None), gr.update(choices=[], value=None), [],
                    gr.update(choices=[], value=None), None, "", *[gr.update(interactive=False)] * 5]  # fmt: skip

        def shown_results(session: sessions.Session, message: str, step_index: int = 0):
            names = step_choices(session)
            gallery, use_update = [], gr.update(choices=[], value=None)
            if names:
                step = session.result.steps[step_index]
                gallery = session.candidate_pictures(step.index)
                use_update = use_choices(session, step)
            pil = pil_image(session.current)
            return [message, compare_html(session.image, session.current), steps_html(session),
                    gr.update(choices=names, value=names[step_index] if names else None), gallery, use_update,
                    pil, session.result_infotext(), *[gr.update(interactive=True)] * 5]  # fmt: skip

        def empty_rows():
            hidden = [gr.update(visible=False), gr.update(value=False), gr.update(), gr.update(), gr.update(), ""]
            return hidden * MAX_PARTS

        # --- reading an image's parameters -------------------------------------------------------------

        def parameters_of(pil, text: str | None = None):
            text = text if text is not None else (infotext.read(pil) if pil is not None else "")
            generation = infotext.parse(text)
            size = None if pil is None else (pil.width, pil.height)
            return [
                text, generation.prompt, generation.negative_prompt,
                -1 if generation.seed is None else generation.seed, generation.steps or 20,
                min(30.0, max(1.0, generation.cfg_scale or 7.0)), generation.sampler_name or "",
                generation.scheduler or "", parameters_note(generation, size, backend.loaded_model()),
            ]  # fmt: skip

        parameter_fields = [raw, prompt, negative, seed, steps, cfg, sampler, scheduler, note]
        reset_outputs = [state, overlay, verdict, teach_note, *row_outputs, *results]

        def reset():
            return [None, None, "", "", *empty_rows(), *cleared_results()]

        def uploaded(pil):
            mask_update = [pil] if mask_target is not None else []
            return [*parameters_of(pil), *reset(), *mask_update]

        mask_outputs = [mask_target] if mask_target is not None else []
        image.upload(uploaded, [image], [*parameter_fields, *reset_outputs, *mask_outputs], show_progress="hidden")
        image.clear(lambda: [*parameters_of(None, ""), *reset(), *[None] * len(mask_outputs)], None,
                    [*parameter_fields, *reset_outputs, *mask_outputs], show_progress="hidden")  # fmt: skip

        # --- diagnose ----------------------------------------------------------------------------------

        def do_diagnose(pil, text, sensitivity_value, threshold_value):
            from . import user_message

            if pil is None:
                return [gr.update(), None, None, "Drop or paste an image first.", "", *empty_rows(), *cleared_results()]
            try:
                backend.prepare()
                args = ScriptArgs(enabled=True, sensitivity=sensitivity_value, threshold=float(threshold_value))
                session = sessions.diagnose(to_array(pil), text or "", args, backend.settings())
            except Exception as exc:  # one line; the image stays where it is
                return [gr.update(), None, None, f"Diagnosis failed: {user_message(exc)}", "", *empty_rows(),
                        *cleared_results()]  # fmt: skip
            d = session.diagnosis
            flagged = sum(r.flagged for r in session.rows)
            summary = (f"**{d.verdict} {d.score:.2f}** — {len(d.parts)} parts, {flagged} flagged "
                       f"(threshold {d.threshold:.2f}). Tick what to refine.")  # fmt: skip
            if len(d.parts) > MAX_PARTS:
                summary += f" The {MAX_PARTS} worst of {len(d.parts)} parts are listed."
            if not d.parts:
                summary += " No person was found: draw a mask to refine an area."
            updates = []
            for i in range(MAX_PARTS):
                if i < len(session.rows):
                    r = session.rows[i]
                    reasons = "; ".join(r.reasons) or "no reason to suspect it"
                    updates += [gr.update(visible=True), gr.update(value=r.flagged, label=r.title),
                                gr.update(value=r.strength), gr.update(value=r.candidates),
                                gr.update(value=r.control, label=r.control_label), reasons]  # fmt: skip
                else:
                    updates += [gr.update(visible=False), gr.update(value=False), gr.update(), gr.update(),
                                gr.update(), ""]  # fmt: skip
            return [gr.update(), session, session.overlay, summary, "", *updates, *cleared_results()]

        diagnose_outputs = [note, state, overlay, verdict, teach_note, *row_outputs, *results]
        diagnose_event = dict(fn=do_diagnose, inputs=[image, raw, sensitivity, threshold], outputs=diagnose_outputs,
                              show_progress="minimal")  # fmt: skip
        diagnose.click(**diagnose_event)

        # --- refine ------------------------------------------------------------------------------------

        def picks_of(session: sessions.Session, values) -> list[sessions.Pick]:
            picks = []
            for i, r in enumerate(session.rows):
                ticked, strength, count, control = values[4 * i : 4 * i + 4]
                if ticked:
                    picks.append(sessions.Pick(r.index, float(strength), int(count), float(control)))
            return picks

        def do_refine(session, *values):
            from . import user_message

            parts = values[: 4 * MAX_PARTS]
            (prompt_v, negative_v, seed_v, steps_v, cfg_v, sampler_v, scheduler_v, mask_v, mask_strength_v) = values[
                4 * MAX_PARTS :
            ]
            if session is None:
                yield ["Diagnose the image first.", *[gr.update()] * (len(results) - 1), session]
                return
            try:
                picks = picks_of(session, parts)
                extra = mask_array(mask_v, session.image.shape)
                if not picks and extra is None:
                    raise ValueError("tick at least one part (or draw a mask) to refine")
            except Exception as exc:
                yield [str(exc), *[gr.update()] * (len(results) - 1), session]
                return
            run.stop.clear()
            run.messages[:] = ["starting"]
            outcome: dict = {}

            def progress(text: str) -> None:
                run.messages.append(text)
                backend.progress(text)

            def should_stop():
                return "interrupted" if run.stop.is_set() else backend.should_stop()

            def work():
                host = backend.make_host(sampler_v or None, scheduler_v or None)
                args = ScriptArgs(enabled=True)
                return session.refine(
                    picks, host, args, backend.settings(), backend.model(), prompt_v or "", negative_v or "",
                    None if seed_v is None else int(seed_v), int(steps_v), float(cfg_v), extra_mask=extra,
                    mask_strength=float(mask_strength_v), progress=progress, should_stop=should_stop,
                )  # fmt: skip

            def target():
                try:
                    outcome["result"] = backend.run_job(work)
                except Exception as exc:  # the image is kept; say why in one line
                    outcome["error"] = user_message(exc)

            thread = threading.Thread(target=target, name="humanrefine-tab-refine", daemon=True)
            started = time.monotonic()
            thread.start()
            shown = None
            while thread.is_alive():
                thread.join(0.25)
                text = f"Refining: {run.messages[-1]} ({time.monotonic() - started:.0f} s)"
                if text != shown:
                    shown = text
                    yield [text, *[gr.update()] * (len(results) - 1), session]
            if "error" in outcome:
                yield [f"Refinement failed: {outcome['error']}. The image is unchanged.",
                       *[gr.update()] * (len(results) - 1), session]  # fmt: skip
                return
            took = time.monotonic() - started
            ended = "Stopped" if session.result.stopped else "Done"
            message = f"{ended} in {took:.1f} s (seed {session.seed}): {session.summary()}"
            yield [*shown_results(session, message), session]

        refine_inputs = [state, *part_inputs, prompt, negative, seed, steps, cfg, sampler, scheduler, mask_value,
                         mask_strength]  # fmt: skip
        refine.click(do_refine, refine_inputs, [*results, state], show_progress="hidden")

        def do_stop():
            run.stop.set()
            backend.interrupt()
            return "Stopping after the current pass…"

        # Not queued: it must run while the refinement holds the queue (gradio 3 runs one event at a time).
        stop.click(do_stop, None, [progress], show_progress="hidden", queue=False)

        def next_seed(session, current):
            base = session.seed if session is not None and session.seed is not None else int(current or 0)
            return base + 1

        again.click(next_seed, [state, seed], [seed], show_progress="hidden").then(
            do_refine, refine_inputs, [*results, state], show_progress="hidden"
        )

        # --- candidates ----------------------------------------------------------------------------

        def use_choices(session, step):
            options = session.candidate_options(step.index)
            chosen = session.chosen.get(step.index, step.chosen)
            labels = [label for label, _ in options]
            value = next((label for label, v in options if v == chosen), labels[0])
            return gr.update(choices=labels, value=value)

        def show_step(session, choice):
            try:
                step = step_of(session, choice)
            except Exception:
                return [], gr.update(choices=[], value=None)
            return session.candidate_pictures(step.index), use_choices(session, step)

        step_pick.input(show_step, [state, step_pick], [candidates, use], show_progress="hidden")

        def use_candidate(session, choice, label):
            try:
                step = step_of(session, choice)
                value = dict(session.candidate_options(step.index))[label]
                session.choose(step.index, value)
            except Exception as exc:
                return [str(exc), gr.update(), gr.update(), gr.update(), gr.update()]
            return [f"{session.step_name(step)}: using {label}.", compare_html(session.image, session.current),
                    steps_html(session), pil_image(session.current), session.result_infotext()]  # fmt: skip

        use.input(use_candidate, [state, step_pick, use], [progress, compare, table, result_image, result_text],
                  show_progress="hidden")  # fmt: skip

        # --- keep / save ---------------------------------------------------------------------------

        def do_keep(session):
            if session is None or session.current is None:
                return [
                    gr.update(),
                    gr.update(),
                    "Nothing to keep yet.",
                    gr.update(),
                    *[gr.update()] * len(mask_outputs),
                ]
            pil = pil_image(session.current)
            text = session.result_infotext()
            kept = "Kept: the refined image is now the image; diagnosing it again."
            return [pil, text, kept, "Diagnosing the kept image…", *[pil] * len(mask_outputs)]

        keep.click(do_keep, [state], [image, raw, note, verdict, *mask_outputs], show_progress="hidden").then(
            **diagnose_event
        )

        def do_save(session, text):
            from . import user_message

            if session is None or session.current is None:
                return "Nothing to save yet."
            try:
                path = backend.save_image(pil_image(session.current), text, session.seed, session.used.prompt)
            except Exception as exc:
                return f"Not saved: {user_message(exc)}"
            return f"Saved to {path}"

        save.click(do_save, [state, result_text], [progress], show_progress="hidden")

        if backend.register_send is not None:
            backend.register_send(to_img2img, "img2img", result_image, result_text)
            backend.register_send(to_inpaint, "inpaint", result_image, result_text)

        # --- teach -----------------------------------------------------------------------------------

        def teach_note_text(folder) -> str:
            from .. import teach
            from ..errors import CannotWrite

            try:
                return teach.train_note(folder)
            except CannotWrite:  # the verdict is written; a labels.csv that cannot be read again says nothing here
                return ""

        def teacher(row: int | None, malformed: bool):
            def teach(session):
                from . import user_message

                if session is None:
                    return "Diagnose the image first."
                try:
                    part = None if row is None else session.rows[row].index
                    taught = session.teach(backend.labels_dir(), part, malformed)
                except Exception as exc:
                    return f"Not written: {user_message(exc)}"
                what = "whole image" if row is None else session.rows[row].label
                verdict = "malformed" if malformed else "fine"
                held = teach_note_text(backend.labels_dir())
                if not taught.new:
                    return f"Already in the labels: {what} is {verdict} ({taught.path.name}). {held}"
                return f"Taught: {what} is {verdict} → {taught.path} (labels.csv line {taught.row}). {held}"

            return teach

        image_fine.click(teacher(None, False), [state], [teach_note], show_progress="hidden")
        image_bad.click(teacher(None, True), [state], [teach_note], show_progress="hidden")
        for i, row in enumerate(rows):
            row["fine"].click(teacher(i, False), [state], [teach_note], show_progress="hidden")
            row["bad"].click(teacher(i, True), [state], [teach_note], show_progress="hidden")

        # --- "Send to HumanRefine" from the galleries -------------------------------------------------

        def received(gallery_value, info_json, index):
            try:
                pil = (backend.image_from_gallery or standalone_image_from_gallery)(gallery_value)
            except Exception as exc:
                pil, text = None, ""
                message = f"Could not take the image: {exc}"
            else:
                text = infotext_at(info_json, index) or (infotext.read(pil) if pil is not None else "")
                message = None
            fields = parameters_of(pil, text)
            if message:
                fields[-1] = message
            return [pil, *fields, *reset(), *([pil] if mask_target is not None else [])]

        for tab in GALLERY_TABS:
            button = captured.get(f"{tab}_send_to_humanrefine")
            gallery = captured.get(f"{tab}_gallery")
            info = captured.get(f"generation_info_{tab}")
            if button is None or gallery is None or info is None:
                continue
            button.click(
                received, [gallery, info, send_index], [image, *parameter_fields, *reset_outputs, *mask_outputs],
                show_progress="hidden", **js(f"(g, info, i) => humanrefineFromGallery('{tab}', g, info)"),
            )  # fmt: skip

    return blocks


def infotext_at(info_json, index) -> str:
    """The infotext of gallery image ``index`` from a WebUI's generation info (JSON with ``infotexts``)."""
    try:
        texts = json.loads(info_json or "{}").get("infotexts") or []
        index = int(index or 0)
    except (ValueError, TypeError, AttributeError):
        return ""
    return texts[index] if 0 <= index < len(texts) and isinstance(texts[index], str) else ""


def pil_image(array):
    from PIL import Image

    return None if array is None else Image.fromarray(array)


def part_row(gr, i: int) -> dict:
    """One part: tick it, its strength, candidates and control weight, its reasons, teach buttons."""
    row = {}
    with gr.Group(visible=False, elem_id=f"humanrefine_part_{i}", elem_classes=["humanrefine-part"]) as group:
        row["group"] = group
        with gr.Row():
            row["pick"] = gr.Checkbox(label=f"Part {i + 1}", value=False, elem_id=f"humanrefine_part_{i}_pick",
                                      min_width=160)  # fmt: skip
            row["strength"] = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Strength",
                                        elem_id=f"humanrefine_part_{i}_strength")  # fmt: skip
            row["candidates"] = gr.Slider(1, 4, value=1, step=1, label="Candidates",
                                          elem_id=f"humanrefine_part_{i}_candidates")  # fmt: skip
            row["control"] = gr.Slider(0.0, 2.0, value=1.0, step=0.05, label="Control weight",
                                       elem_id=f"humanrefine_part_{i}_control")  # fmt: skip
        with gr.Row():
            row["reasons"] = gr.Markdown("", elem_id=f"humanrefine_part_{i}_reasons")
            row["fine"] = gr.Button("This is fine", size="sm", elem_id=f"humanrefine_part_{i}_fine")
            row["bad"] = gr.Button("This is malformed", size="sm", elem_id=f"humanrefine_part_{i}_bad")
    return row


def mask_editor(gr, kind: str, major: int):
    """(the component whose value holds the mask, the component the image is copied into or None)."""
    label = "Draw over what should also be refined (white)"
    if kind == "forge":
        from modules_forge.forge_canvas.canvas import ForgeCanvas  # type: ignore[import-not-found]

        canvas = ForgeCanvas(
            elem_id="humanrefine_mask", height=HEIGHT, scribble_color="#FFFFFF", scribble_color_fixed=True,
            scribble_alpha_fixed=True, scribble_softness_fixed=True,
        )  # fmt: skip
        return canvas.foreground, canvas.background
    if kind == "sketch" and major < 4:
        editor = gr.Image(label=label, source="upload", tool="sketch", type="numpy", height=HEIGHT,
                          brush_color="#ffffff", interactive=True, elem_id="humanrefine_mask")  # fmt: skip
        return editor, editor
    upload = gr.Image(label="Extra mask: upload a black-and-white image, white = also refine", type="numpy",
                      height=HEIGHT // 2, interactive=True, elem_id="humanrefine_mask",
                      **({"sources": ["upload", "clipboard"]} if major >= 4 else {"source": "upload"}))  # fmt: skip
    return upload, None


# --- inside a WebUI -------------------------------------------------------------------------------


def webui_backend() -> Backend:
    from modules import shared  # type: ignore[import-not-found]

    from ..hosts.webui import WebUIHost, current_family, stop_reason
    from . import current_settings, run_in_webui_queue, set_progress, use_webui_models_dir

    def make_host(sampler_name, scheduler):
        settings = current_settings()
        choices = {"depth": settings.depth_model, "openpose": settings.pose_model}
        return WebUIHost.standalone(known_sampler(sampler_name), known_scheduler(scheduler), choices)

    def loaded_model():
        info = getattr(shared.sd_model, "sd_checkpoint_info", None)
        return getattr(info, "name_for_extra", None)

    mask = "upload"
    try:
        import modules_forge.forge_canvas.canvas  # type: ignore[import-not-found]  # noqa: F401

        mask = "forge"
    except ImportError:
        mask = "sketch" if gradio_major() < 4 else "upload"
    return Backend(
        make_host=make_host, settings=current_settings,
        model=lambda: current_family().key,
        labels_dir=webui_labels_dir, save_image=webui_save, run_job=run_in_webui_queue, should_stop=stop_reason,
        interrupt=lambda: shared.state.interrupt(), image_from_gallery=webui_image_from_gallery,
        loaded_model=loaded_model, mask_editor=mask, register_send=webui_register_send, progress=set_progress,
        prepare=use_webui_models_dir,
    )  # fmt: skip


def known_sampler(name: str | None) -> str:
    from modules import sd_samplers  # type: ignore[import-not-found]

    return name if name and sd_samplers.find_sampler_config(name) is not None else "Euler a"


def known_scheduler(name: str | None) -> str:
    try:
        from modules import sd_schedulers  # type: ignore[import-not-found]

        return name if name and name in sd_schedulers.schedulers_map else "Automatic"
    except ImportError:
        return "Automatic"


def webui_outputs_dir() -> Path:
    try:
        from modules import paths_internal  # type: ignore[import-not-found]

        return Path(paths_internal.default_output_dir)
    except (ImportError, AttributeError):
        from modules import paths  # type: ignore[import-not-found]

        return Path(paths.data_path) / "outputs"


def webui_labels_dir() -> Path:
    from . import current_settings

    return Path(current_settings().labels_dir or webui_outputs_dir() / "humanrefine-labels")


def webui_save(image, text: str, seed, prompt: str) -> str:
    """Save like the img2img tab (its folder, name pattern and format) with the infotext."""
    from modules import images, shared  # type: ignore[import-not-found]

    folder = shared.opts.outdir_samples or shared.opts.outdir_img2img_samples
    path, _ = images.save_image(image, folder, "", seed, prompt, shared.opts.samples_format, info=text,
                                suffix="-humanrefine")  # fmt: skip
    return path


def webui_image_from_gallery(value):
    from modules import infotext_utils  # type: ignore[import-not-found]

    return infotext_utils.image_from_url_text(value)


def webui_register_send(button, tabname: str, image, text) -> None:
    """The WebUI's own "send to" wiring (image, size, prompts and seed pasted into the target tab)."""
    from modules import infotext_utils  # type: ignore[import-not-found]

    infotext_utils.register_paste_params_button(infotext_utils.ParamBinding(
        paste_button=button, tabname=tabname, source_text_component=text, source_image_component=image,
    ))  # fmt: skip


def on_ui_tabs():
    """``script_callbacks.on_ui_tabs``."""
    return [(build(webui_backend()), TITLE, TAB_ID)]


def standalone_save(folder: Path) -> Callable:
    """Backend.save_image outside a WebUI: PNGs with the infotext in ``folder``, never replacing a file."""

    def save(image, text: str, seed, prompt: str) -> str:
        from ..atomic import output_folder, png_bytes, write_bytes

        out = output_folder(folder, flag="output folder")
        numbers = [int(p.name.split("-", 1)[0]) for p in out.glob("*-humanrefine.png") if p.name[:5].isdigit()]
        return str(write_bytes(out / f"{1 + max(numbers, default=0):05d}-humanrefine.png",
                               png_bytes(image, {"parameters": text})))  # fmt: skip

    return save
